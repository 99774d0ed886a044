using System.Net;
using System.Net.Http.Headers;
using Grpc.Core;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Failures the gRPC library produces around the worker's handlers (message size, framing, unknown
/// method, the caller's deadline) still carry an <c>rs-reason</c>, with the status ERRORS.md gives it.
/// </summary>
public sealed class ErrorReasonTests
{
    [Fact]
    public async Task UnaryCall_MessageOverWorkerLimit_MessageTooLargeAndWorkerKeepsServing()
    {
        await using var worker = await TestWorker.StartAsync(o =>
        {
            o.MaxMessageBytes = 2 << 20;
            o.MaxUnaryObjectBytes = 512 << 10;
        });
        var client = await worker.ConnectAsync(o => o.MaxUnaryObjectBytes = 256 << 10);
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", "Put", RawWire.Field(2, new byte[(2 << 20) + 1]), client.SessionToken);

        Assert.Equal(StatusCode.ResourceExhausted, status);
        Assert.Equal("MESSAGE_TOO_LARGE", reason);
        Assert.Equal("ok", await client.GetAsync(await client.PutAsync("ok").Within()).Within());
    }

    [Fact]
    public void UnavailableSentByAWorker_IsTheTransientWorkerUnavailableException()
    {
        // A cluster worker says UNAVAILABLE itself when the worker it forwards to, or the directory, does not answer.
        var error = Internal.ExceptionFactory.FromReason("UNAVAILABLE", "Holder 'default/H' lives on worker w, which does not answer; try again.",
            _ => null, "ListKeys", "http://10.0.0.1:7480", ObjectId.Empty, default, inner: null);

        var unavailable = Assert.IsType<WorkerUnavailableException>(error);
        Assert.True(unavailable.IsTransient);
        Assert.Contains("does not answer", unavailable.Message);
    }

    [Fact]
    public async Task Call_UnknownMethod_Unimplemented()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", "Teleport", [], client.SessionToken);

        Assert.Equal(StatusCode.Unimplemented, status);
        Assert.Equal("UNIMPLEMENTED", reason);
    }

    [Fact]
    public async Task UnaryCall_TwoMessages_ProtocolError()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        byte[] twoEmptyMessages = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

        var (status, reason) = await RawHttp2Async(worker.Address, "/raysharing.v1.Objects/Stats", new ByteArrayContent(twoEmptyMessages), client.SessionToken, timeout: null);

        Assert.Equal(StatusCode.Internal, status);
        Assert.Equal("PROTOCOL_ERROR", reason);
        Assert.NotNull(await client.GetStoreStatsAsync().Within());
    }

    [Fact]
    public async Task PutStream_PastCallersDeadline_DeadlineExceededWithTimeoutReason()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        // A put stream whose first message never finishes arriving: the worker waits for its header, so it has sent
        // no response headers when the deadline ends the call, and the status comes back whole in a trailers-only
        // response (once the header is in, the worker answers with headers first and the later trailers race the reset).
        var header = RawWire.Field(1, [0x10, 0x02, 0x20, 0x0a]);
        using var content = new StalledContent([0, .. BitConverter.GetBytes(IPAddress.HostToNetworkOrder(header.Length)), .. header[..2]]);

        var (status, reason) = await RawHttp2Async(worker.Address, "/raysharing.v1.Objects/PutStream", content, client.SessionToken, timeout: "300m");

        Assert.Equal(StatusCode.DeadlineExceeded, status);
        Assert.Equal("TIMEOUT", reason);
        // The handler unwinds after the call has ended and leaves nothing behind.
        await Bounded.Eventually(async () => (await client.GetStoreStatsAsync().Within()).UsedBytes == 0, TimeSpan.FromSeconds(10), "the stalled put leaves nothing in the store");
    }

    /// <summary>A gRPC call made by hand over HTTP/2, to send what no gRPC library sends; the status from headers or trailers.</summary>
    private static async Task<(StatusCode Status, string? Reason)> RawHttp2Async(string address, string path, HttpContent content, ObjectId session, string? timeout)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, address + path)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = content,
        };
        content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        request.Headers.Add("rs-session-token", session.ToString());
        if (timeout is not null)
        {
            request.Headers.Add("grpc-timeout", timeout);
        }

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).Within();
        try
        {
            await (await response.Content.ReadAsStreamAsync().Within()).CopyToAsync(Stream.Null).Within();
        }
        catch (HttpProtocolException)
        {
            // A call ended at its deadline is reset after its status was sent, as gRPC servers do.
        }

        string? Value(string name) =>
            response.Headers.TryGetValues(name, out var values) || response.TrailingHeaders.TryGetValues(name, out values) ? values.First() : null;
        return ((StatusCode)int.Parse(Value("grpc-status") ?? "-1"), Value("rs-reason"));
    }

    /// <summary>Sends its bytes, then nothing more until disposed.</summary>
    private sealed class StalledContent(byte[] first) : HttpContent
    {
        private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(first);
            await stream.FlushAsync();
            await _disposed.Task;
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            _disposed.TrySetResult();
            base.Dispose(disposing);
        }
    }
}
