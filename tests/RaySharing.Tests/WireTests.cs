using Grpc.Core;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>What the worker does with bytes no well-behaved client sends.</summary>
public sealed class WireTests
{
    [Theory]
    [InlineData("Get")]
    [InlineData("GetStream")]
    [InlineData("Borrow")]
    public async Task ObjectCall_GarbageEnvelope_InvalidEnvelopeAndWorkerKeepsServing(string method)
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var good = await client.PutAsync("ok", holder).Within();
        using var wire = new RawWire(worker.Address);
        var garbage = new byte[] { 0x99, 0x01, 0xc4, 0x03, 1, 2, 3 };

        var (status, reason) = method == "GetStream"
            ? await StreamAsync(worker.Address, client.SessionToken, garbage)
            : await wire.CallAsync("raysharing.v1.Objects", method, RawWire.Field(1, garbage), client.SessionToken);

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_ENVELOPE", reason);
        Assert.Equal("ok", await client.GetAsync(good).Within());
    }

    [Fact]
    public async Task Register_TruncatedEnvelope_InvalidEnvelopeAndNothingRegistered()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var good = await client.PutAsync(1, holder).Within();
        using var wire = new RawWire(worker.Address);
        var envelope = good.ToEnvelopeBytes();
        var holderRef = RawWire.Field(2, System.Text.Encoding.UTF8.GetBytes("H"));
        var body = RawWire.Field(1, holderRef).Concat(RawWire.Field(2, "k"u8.ToArray())).Concat(RawWire.Field(3, envelope)).Concat(RawWire.Field(3, envelope[..^3])).ToArray();

        var (status, reason) = await wire.CallAsync("raysharing.v1.Holders", "Register", body, client.SessionToken);

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_ENVELOPE", reason);
        Assert.Empty(await holder.ListKeysAsync().Within());
    }

    [Fact]
    public async Task Call_WithoutSessionHeader_InvalidRequest()
    {
        await using var worker = await TestWorker.StartAsync();
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", "Stats", [], session: null);

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_REQUEST", reason);
    }

    [Fact]
    public async Task Call_UnknownSession_SessionExpired()
    {
        await using var worker = await TestWorker.StartAsync();
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", "Stats", [], ObjectId.NewId());

        Assert.Equal(StatusCode.FailedPrecondition, status);
        Assert.Equal("SESSION_EXPIRED", reason);
    }

    [Fact]
    public async Task Call_MalformedProtobuf_InvalidRequestAndWorkerKeepsServing()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        using var wire = new RawWire(worker.Address);

        var (status, reason) = await wire.CallAsync("raysharing.v1.Holders", "Fetch", [0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01], client.SessionToken);

        Assert.Equal(StatusCode.InvalidArgument, status);
        Assert.Equal("INVALID_REQUEST", reason);
        Assert.NotNull(await client.GetOrCreateHolderAsync("still-serving").Within());
    }

    private static async Task<(StatusCode, string?)> StreamAsync(string address, ObjectId session, byte[] envelope)
    {
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(address);
        var bytes = Marshallers.Create<byte[]>(b => b, b => b);
        var method = new Method<byte[], byte[]>(MethodType.ServerStreaming, "raysharing.v1.Objects", "GetStream", bytes, bytes);
        var headers = new Metadata { { "rs-session-token", session.ToString() } };
        using var call = channel.CreateCallInvoker().AsyncServerStreamingCall(method, null, new CallOptions(headers, DateTime.UtcNow.AddSeconds(10)), RawWire.Field(1, envelope));
        try
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None).Within())
            {
            }

            return (StatusCode.OK, null);
        }
        catch (RpcException ex)
        {
            return (ex.StatusCode, ex.Trailers.GetValue("rs-reason"));
        }
    }
}
