using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using RaySharing.Internal.Channel;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using RaySharing.Worker.Transport.Channel;

namespace RaySharing.Tests.Channel;

/// <summary>
/// A handler with test semantics: HELLO accepts one token; PUT echoes its payload reversed; GET echoes it;
/// BORROW waits the milliseconds its payload names (honouring cancellation); RELEASE throws; BULK_PUT reads
/// its body in three uneven pieces and answers its length and CRC-32; BULK_GET sends the shared test body.
/// </summary>
internal sealed class ChannelTestHandler : IChannelHandler
{
    public static readonly byte[] Token = [.. Enumerable.Range(1, 16).Select(i => (byte)i)];

    private readonly TaskCompletionSource<Exception> _bodyFailure = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _closed;

    /// <summary>The body BULK_GET sends (as two segments); set by the test.</summary>
    public ReadOnlyMemory<byte> Body { get; set; }

    /// <summary>The exception a BULK_PUT's body read ended with, when it failed.</summary>
    public Task<Exception> BodyFailure => _bodyFailure.Task;

    public int ClosedConnections => Volatile.Read(ref _closed);

    public async ValueTask HandleAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        switch (request.Op)
        {
            case ChannelOp.Hello:
                if (request.Payload.Length == 48 && request.Payload.Span[..16].SequenceEqual(Token))
                {
                    request.Connection.Session = "session";
                }
                else
                {
                    response.Fail(ErrorReasons.SessionExpired, "No session has this token.");
                }

                break;
            case ChannelOp.Put:
                var reversed = request.Payload.ToArray();
                Array.Reverse(reversed);
                response.Payload.Write(reversed);
                break;
            case ChannelOp.Get:
                response.Payload.Write(request.Payload.Span);
                break;
            case ChannelOp.Borrow:
                await Task.Delay(BinaryPrimitives.ReadInt32LittleEndian(request.Payload.Span), cancellationToken).ConfigureAwait(false);
                response.Payload.Write("slept"u8);
                break;
            case ChannelOp.Release:
                throw new InvalidOperationException("A fault in the handler.");
            case ChannelOp.BulkPut:
                await ReadBodyAsync(request, response, cancellationToken).ConfigureAwait(false);
                break;
            case ChannelOp.BulkGet:
                BinaryPrimitives.WriteUInt32LittleEndian(response.Payload.GetSpan(4), Crc32.HashToUInt32(Body.Span));
                response.Payload.Advance(4);
                var half = Body.Length / 2;
                await response.SendBodyAsync(Segments(Body[..half], Body[half..]), cancellationToken).ConfigureAwait(false);
                break;
            default:
                response.Fail(ErrorReasons.Unimplemented, "Not in the test handler.");
                break;
        }
    }

    public void ConnectionClosed(ChannelConnectionState connection) => Interlocked.Increment(ref _closed);

    /// <summary>A sequence of two segments, so bodies are sent segment by segment as from a native store.</summary>
    public static ReadOnlySequence<byte> Segments(ReadOnlyMemory<byte> first, ReadOnlyMemory<byte> second) => RaySharing.Wire.Sequences.Of([first, second]);

    private async ValueTask ReadBodyAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        var destination = new byte[request.BodyLength];
        try
        {
            // Uneven pieces, as into the segments of a native destination.
            var first = (int)Math.Min(destination.Length, 1000);
            var second = (destination.Length - first) / 3;
            await request.ReadBodyAsync(destination.AsMemory(0, first), cancellationToken).ConfigureAwait(false);
            await request.ReadBodyAsync(destination.AsMemory(first, second), cancellationToken).ConfigureAwait(false);
            await request.ReadBodyAsync(destination.AsMemory(first + second), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _bodyFailure.TrySetResult(ex);
            throw;
        }

        var answer = response.Payload.GetSpan(12);
        BinaryPrimitives.WriteInt64LittleEndian(answer, destination.LongLength);
        BinaryPrimitives.WriteUInt32LittleEndian(answer[8..], Crc32.HashToUInt32(destination));
        response.Payload.Advance(12);
    }
}

/// <summary>A listener with the test handler on loopback TCP (port 0) and a Unix socket in the temp folder.</summary>
internal sealed class ChannelServer : IAsyncDisposable
{
    private ChannelServer(ChannelListener listener, ChannelTestHandler handler)
    {
        Listener = listener;
        Handler = handler;
    }

    public ChannelListener Listener { get; }

    public ChannelTestHandler Handler { get; }

    public ChannelEndpoint Tcp => ChannelEndpoint.Tcp("127.0.0.1", Listener.TcpEndPoint!.Port);

    public ChannelEndpoint Unix => ChannelEndpoint.Unix(Listener.UnixSocketPath!);

    public static string TempSocketPath() => Path.Combine(Path.GetTempPath(), $"rs-{Guid.NewGuid():N}.sock");

    public static ChannelServer Start(Action<ChannelListenerOptions>? configure = null)
    {
        var options = new ChannelListenerOptions { TcpEndPoint = new IPEndPoint(IPAddress.Loopback, 0), UnixSocketPath = TempSocketPath() };
        configure?.Invoke(options);
        var handler = new ChannelTestHandler();
        var listener = new ChannelListener(options, handler);
        listener.Start();
        return new ChannelServer(listener, handler);
    }

    public ChannelEndpoint Endpoint(string transport) => transport == "tcp" ? Tcp : Unix;

    /// <summary>A call connection that said HELLO.</summary>
    public async Task<ChannelConnection> ConnectAsync(string transport = "tcp")
    {
        var connection = await ChannelConnection.ConnectAsync(Endpoint(transport)).Within();
        using var reply = await connection.SendAsync(ChannelOp.Hello, HelloPayload()).Within();
        if (!reply.IsOk)
        {
            throw new InvalidOperationException($"HELLO failed: {reply.ReadError()}");
        }

        return connection;
    }

    /// <summary>A body connection that said HELLO.</summary>
    public async Task<ChannelBodyConnection> ConnectBodyAsync(string transport = "tcp")
    {
        var connection = await ChannelBodyConnection.ConnectAsync(Endpoint(transport)).Within();
        using var reply = await connection.ExchangeAsync(ChannelOp.Hello, HelloPayload()).Within();
        if (!reply.IsOk)
        {
            throw new InvalidOperationException($"HELLO failed: {reply.ReadError()}");
        }

        return connection;
    }

    public static byte[] HelloPayload(byte[]? token = null) => [.. token ?? ChannelTestHandler.Token, .. new byte[32]];

    public ValueTask DisposeAsync() => new(Listener.StopAsync().Within());
}
