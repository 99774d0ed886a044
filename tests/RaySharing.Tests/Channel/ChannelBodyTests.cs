using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Net;
using System.Net.Sockets;
using RaySharing.Internal.Channel;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using Xunit;

namespace RaySharing.Tests.Channel;

public sealed class ChannelBodyTests
{
    private static readonly Lazy<byte[]> BigBody = new(() =>
    {
        var bytes = new byte[256 * 1024 * 1024];
        new Random(7).NextBytes(bytes);
        return bytes;
    });

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task BulkPut_256MiB_ArrivesWholeByCrc(string transport)
    {
        await using var server = ChannelServer.Start();
        await using var body = await server.ConnectBodyAsync(transport).Within();
        var data = BigBody.Value;
        var progress = new LastProgress();

        using var reply = await body.ExchangeAsync(ChannelOp.BulkPut, new byte[16], ChannelTestHandler.Segments(data.AsMemory(0, 12345), data.AsMemory(12345)), progress).Within(TimeSpan.FromMinutes(2));

        Assert.True(reply.IsOk, reply.IsOk ? null : reply.ReadError().ToString());
        Assert.Equal(data.LongLength, BinaryPrimitives.ReadInt64LittleEndian(reply.Payload.Span));
        Assert.Equal(Crc32.HashToUInt32(data), BinaryPrimitives.ReadUInt32LittleEndian(reply.Payload.Span[8..]));
        Assert.Equal(data.LongLength, progress.Last);
    }

    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task BulkGet_256MiB_ReceivedIntoMemoryWholeByCrc(string transport)
    {
        await using var server = ChannelServer.Start();
        server.Handler.Body = BigBody.Value;
        await using var body = await server.ConnectBodyAsync(transport).Within();

        using var reply = await body.ExchangeAsync(ChannelOp.BulkGet, new byte[16]).Within();
        Assert.True(reply.HasBody);
        Assert.Equal(BigBody.Value.LongLength, reply.BodyLength);
        var destination = new byte[reply.BodyLength];
        await body.ReadBodyAsync(destination).Within(TimeSpan.FromMinutes(2));

        Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(reply.Payload.Span), Crc32.HashToUInt32(destination));
        Assert.Equal(0, body.BodyRemaining);

        // The connection goes on after a whole body.
        using var again = await body.ExchangeAsync(ChannelOp.Ping, new byte[] { 5 }).Within();
        Assert.Equal(new byte[] { 5 }, again.Payload.ToArray());
    }

    [Fact]
    public async Task BulkGet_IntoBufferWriterAndStream_SameBytesWithProgress()
    {
        await using var server = ChannelServer.Start();
        var data = BigBody.Value.AsMemory(0, 9 * 1024 * 1024 + 3);
        server.Handler.Body = data;
        await using var pool = new ChannelBodyPool(server.Unix);
        var body = await pool.RentAsync().Within();
        using (var hello = await body.ExchangeAsync(ChannelOp.Hello, ChannelServer.HelloPayload()).Within())
        {
            Assert.True(hello.IsOk);
        }

        using (var reply = await body.ExchangeAsync(ChannelOp.BulkGet, new byte[16]).Within())
        {
            var writer = new ArrayBufferWriter<byte>();
            var progress = new LastProgress();
            await body.ReadBodyAsync(writer, progress).Within();
            Assert.True(writer.WrittenSpan.SequenceEqual(data.Span));
            Assert.Equal(data.Length, progress.Last);
        }

        using (var reply = await body.ExchangeAsync(ChannelOp.BulkGet, new byte[16]).Within())
        {
            var stream = new MemoryStream();
            await body.ReadBodyAsync(stream).Within();
            Assert.True(stream.ToArray().AsSpan().SequenceEqual(data.Span));
        }

        // Back to the pool whole, and rented again: the same connection, still bound to its session.
        await pool.ReturnAsync(body).Within();
        var same = await pool.RentAsync().Within();
        Assert.Same(body, same);
        using var put = await same.ExchangeAsync(ChannelOp.BulkPut, new byte[16], new MemoryStream(data.ToArray()), data.Length).Within();
        Assert.Equal(Crc32.HashToUInt32(data.Span), BinaryPrimitives.ReadUInt32LittleEndian(put.Payload.Span[8..]));
        await pool.ReturnAsync(same).Within();
    }

    [Fact]
    public async Task BulkPut_HandlerLeavesBodyUnread_RestDiscardedAndNextRequestServed()
    {
        await using var server = ChannelServer.Start();
        await using var body = await server.ConnectBodyAsync().Within();

        // PUT does not read bodies: the transport drops the 3 MiB and parses the next frame after them.
        using (var reply = await body.ExchangeAsync(ChannelOp.Put, new byte[] { 1, 2 }, new ReadOnlySequence<byte>(BigBody.Value.AsMemory(0, 3 * 1024 * 1024))).Within())
        {
            Assert.Equal(new byte[] { 2, 1 }, reply.Payload.ToArray());
        }

        using var ping = await body.ExchangeAsync(ChannelOp.Ping, new byte[] { 7 }).Within();
        Assert.Equal(new byte[] { 7 }, ping.Payload.ToArray());
    }

    [Fact]
    public async Task BulkGet_CanceledMidBody_ConnectionBrokenNotPooledAndServerLetsGo()
    {
        await using var server = ChannelServer.Start();
        server.Handler.Body = BigBody.Value;
        await using var pool = new ChannelBodyPool(server.Tcp);
        var body = await pool.RentAsync().Within();
        (await body.ExchangeAsync(ChannelOp.Hello, ChannelServer.HelloPayload()).Within()).Dispose();
        using var reply = await body.ExchangeAsync(ChannelOp.BulkGet, new byte[16]).Within();
        using var cancel = new CancellationTokenSource();

        // Cancel once the first bytes are in: the rest of the body can never be read.
        var progress = new CancelOnReport(cancel);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => body.ReadBodyAsync(new byte[reply.BodyLength], progress, cancel.Token).Within());

        Assert.True(body.IsBroken);
        await pool.ReturnAsync(body).Within();
        Assert.NotSame(body, await pool.RentAsync().Within());
        await Bounded.Eventually(() => Task.FromResult(server.Listener.ConnectionCount == 1), TimeSpan.FromSeconds(10), "the worker closes the canceled body's connection (the one left is the pool's new one)");
    }

    [Fact]
    public async Task Body_BeforeHello_ConnectionErrorUnauthorized()
    {
        await using var server = ChannelServer.Start();
        await using var body = await ChannelBodyConnection.ConnectAsync(server.Tcp).Within();

        var ex = await Assert.ThrowsAsync<WorkerUnavailableException>(() => body.ExchangeAsync(ChannelOp.Ping, default, new ReadOnlySequence<byte>(new byte[1000])).Within());

        Assert.Equal(ErrorReasons.Unauthorized, Assert.IsType<ChannelProtocolException>(ex.InnerException).Reason);
        Assert.True(body.IsBroken);
    }

    [Fact]
    public async Task BulkPut_ClientDiesMidBody_ServerHandlerSeesErrorAndServesOthers()
    {
        await using var server = ChannelServer.Start();
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(server.Listener.TcpEndPoint!).Within();
            var hello = ChannelServer.HelloPayload();
            var bytes = new byte[ChannelPreface.Size + ChannelFrameHeader.Size + hello.Length + ChannelFrameHeader.Size + 8 + 16];
            ChannelPreface.Write(bytes);
            var at = ChannelPreface.Size;
            new ChannelFrameHeader(hello.Length, 1, (byte)ChannelOp.Hello, 0, 0).Write(bytes.AsSpan(at));
            hello.CopyTo(bytes, at + ChannelFrameHeader.Size);
            at += ChannelFrameHeader.Size + hello.Length;
            new ChannelFrameHeader(8 + 16, 2, (byte)ChannelOp.BulkPut, ChannelOps.FlagBody, 0).Write(bytes.AsSpan(at));
            ChannelFrameHeader.WriteBodyLength(bytes.AsSpan(at + ChannelFrameHeader.Size), 64L * 1024 * 1024);
            await socket.SendAsync(bytes, SocketFlags.None).Within();
            await socket.SendAsync(BigBody.Value.AsMemory(0, 1024 * 1024), SocketFlags.None).Within();
        }

        var failure = await server.Handler.BodyFailure.Within();
        Assert.True(failure is IOException or SocketException, $"The body read ended with {failure}.");
        await Bounded.Eventually(() => Task.FromResult(server.Listener.ConnectionCount == 0), TimeSpan.FromSeconds(5), "the broken connection is closed");

        await using var connection = await server.ConnectAsync().Within();
        using var reply = await connection.SendAsync(ChannelOp.Ping, new byte[] { 1 }).Within();
        Assert.True(reply.IsOk);
    }

    [Fact]
    public async Task BulkGet_ServerDiesMidBody_ClientFailsTypedAndConnectionIsBroken()
    {
        // A fake worker: answers the preface, then a 64 MiB body of which it sends 1 MiB, then dies.
        using var fake = new Socket(SocketType.Stream, ProtocolType.Tcp);
        fake.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        fake.Listen();
        var port = ((IPEndPoint)fake.LocalEndPoint!).Port;
        var serve = Task.Run(async () =>
        {
            using var peer = await fake.AcceptAsync().Within();
            await peer.SendAsync(ChannelPreface.Create(), SocketFlags.None).Within();
            var received = new byte[ChannelPreface.Size + ChannelFrameHeader.Size + 16];
            for (var at = 0; at < received.Length;)
            {
                at += await peer.ReceiveAsync(received.AsMemory(at), SocketFlags.None).Within();
            }

            var answer = new byte[ChannelFrameHeader.Size + 8];
            var requestId = BinaryPrimitives.ReadUInt32LittleEndian(received.AsSpan(ChannelPreface.Size + 4));
            new ChannelFrameHeader(8, requestId, ChannelOps.Response(ChannelOp.BulkGet), ChannelOps.FlagBody, 0).Write(answer);
            ChannelFrameHeader.WriteBodyLength(answer.AsSpan(ChannelFrameHeader.Size), 64L * 1024 * 1024);
            await peer.SendAsync(answer, SocketFlags.None).Within();
            await peer.SendAsync(BigBody.Value.AsMemory(0, 1024 * 1024), SocketFlags.None).Within();
        });
        await using var body = await ChannelBodyConnection.ConnectAsync(ChannelEndpoint.Tcp("127.0.0.1", port)).Within();

        using var reply = await body.ExchangeAsync(ChannelOp.BulkGet, new byte[16]).Within();
        Assert.Equal(64L * 1024 * 1024, reply.BodyLength);
        await serve.Within();
        var ex = await Assert.ThrowsAsync<WorkerUnavailableException>(() => body.ReadBodyAsync(new byte[reply.BodyLength]).Within());

        Assert.Contains("body byte(s) still to come", ex.Message, StringComparison.Ordinal);
        Assert.True(body.IsBroken);
        await Assert.ThrowsAsync<WorkerUnavailableException>(() => body.ExchangeAsync(ChannelOp.Ping, default).Within());
    }

    private sealed class CancelOnReport(CancellationTokenSource cancel) : IProgress<long>
    {
        public void Report(long value) => cancel.Cancel();
    }

    private sealed class LastProgress : IProgress<long>
    {
        public long Last { get; private set; }

        public void Report(long value) => Last = value;
    }
}
