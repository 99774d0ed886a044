using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using RaySharing.Internal.Channel;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using RaySharing.Worker.Transport.Channel;
using Xunit;

namespace RaySharing.Tests.Channel;

public sealed class ChannelCallTests
{
    [Theory]
    [InlineData("tcp")]
    [InlineData("unix")]
    public async Task SendAsync_SmallRequests_AnsweredWithTheirPayloads(string transport)
    {
        await using var server = ChannelServer.Start();
        await using var connection = await server.ConnectAsync(transport).Within();

        using (var put = await connection.SendAsync(ChannelOp.Put, new byte[] { 1, 2, 3 }).Within())
        {
            Assert.True(put.IsOk);
            Assert.Equal(ChannelOp.Put, put.Op);
            Assert.Equal(new byte[] { 3, 2, 1 }, put.Payload.ToArray());
        }

        using (var ping = await connection.SendAsync(ChannelOp.Ping, ReadOnlyMemory<byte>.Empty).Within())
        {
            Assert.True(ping.IsOk);
            Assert.True(ping.Payload.IsEmpty);
        }

        var big = Enumerable.Range(0, 1_000_000).Select(i => (byte)(i * 7)).ToArray();
        using var get = await connection.SendAsync(ChannelOp.Get, big).Within();
        Assert.Equal(big, get.Payload.ToArray());
    }

    [Fact]
    public async Task SendAsync_ThousandConcurrentCallers_EachGetsItsOwnAnswer()
    {
        await using var server = ChannelServer.Start();
        await using var connection = await server.ConnectAsync().Within();

        var calls = Enumerable.Range(0, 1000).Select(async i =>
        {
            // Start together from the thread pool, so frames pile up and go out batched.
            await Task.Yield();
            var payload = new byte[4 + (i % 300)];
            BinaryPrimitives.WriteInt32LittleEndian(payload, i);
            payload.AsSpan(4).Fill((byte)i);
            using var reply = await connection.SendAsync(ChannelOp.Get, payload).Within();
            Assert.True(reply.IsOk);
            Assert.Equal(payload, reply.Payload.ToArray());
        }).ToArray();

        await Task.WhenAll(calls).Within();
        Assert.Equal(0, connection.PendingCount);

        // Callers that arrive together share writes.
        Assert.True(connection.FramesSent >= 2 * connection.Writes, $"{connection.FramesSent} frames took {connection.Writes} writes.");
    }

    [Fact]
    public async Task SendAsync_CanceledWhileWaiting_ThrowsAndConnectionStillWorks()
    {
        await using var server = ChannelServer.Start();
        await using var connection = await server.ConnectAsync().Within();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var slow = connection.SendAsync(ChannelOp.Borrow, Millis(6000), cancel.Token);

        var started = DateTime.UtcNow;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slow.Within(TimeSpan.FromSeconds(5)));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(4), "The canceled call waited for its answer.");
        Assert.False(connection.IsBroken);

        // Answered after the slow one (in order); its late reply is dropped, not given to this call.
        using var reply = await connection.SendAsync(ChannelOp.Get, new byte[] { 42 }).Within();
        Assert.Equal(new byte[] { 42 }, reply.Payload.ToArray());
        Assert.Equal(0, connection.PendingCount);
    }

    [Fact]
    public async Task SendAsync_ManyCanceledAmongAnswered_AnsweredOnesCorrectAndConnectionWhole()
    {
        await using var server = ChannelServer.Start();
        await using var connection = await server.ConnectAsync("unix").Within();

        // Cancellations race with replies and with the reuse of pooled waiters.
        var calls = Enumerable.Range(0, 2000).Select(async i =>
        {
            await Task.Yield();
            using var cancel = new CancellationTokenSource();
            var payload = BitConverter.GetBytes(i);
            var call = connection.SendAsync(ChannelOp.Get, payload, cancel.Token);
            if (i % 2 == 0)
            {
                cancel.CancelAfter(i % 7);
            }

            try
            {
                using var reply = await call.Within();
                Assert.Equal(payload, reply.Payload.ToArray());
                return 1;
            }
            catch (OperationCanceledException) when (i % 2 == 0)
            {
                return 0;
            }
        }).ToArray();

        var answered = (await Task.WhenAll(calls).Within()).Sum();

        Assert.InRange(answered, 1000, 2000);
        Assert.False(connection.IsBroken);
        await Bounded.Eventually(() => Task.FromResult(connection.PendingCount == 0), TimeSpan.FromSeconds(5), "no call is left waiting");
        using var last = await connection.SendAsync(ChannelOp.Ping, new byte[] { 1 }).Within();
        Assert.True(last.IsOk);
    }

    [Fact]
    public async Task SendAsync_HandlerThrows_InternalErrorAndConnectionStillWorks()
    {
        await using var server = ChannelServer.Start();
        await using var connection = await server.ConnectAsync().Within();

        using (var failed = await connection.SendAsync(ChannelOp.Release, new byte[] { 1 }).Within())
        {
            Assert.Equal(ChannelOps.StatusFailed, failed.Status);
            var error = failed.ReadError();
            Assert.Equal(ErrorReasons.InternalError, error.Reason);
            Assert.Contains("Release", error.Message, StringComparison.Ordinal);
        }

        using var reply = await connection.SendAsync(ChannelOp.Put, new byte[] { 1, 2 }).Within();
        Assert.Equal(new byte[] { 2, 1 }, reply.Payload.ToArray());
    }

    [Fact]
    public async Task SendAsync_UnknownOp_UnimplementedAndConnectionStillWorks()
    {
        await using var server = ChannelServer.Start();
        await using var connection = await server.ConnectAsync().Within();

        using (var failed = await connection.SendAsync((ChannelOp)42, new byte[] { 1 }).Within())
        {
            Assert.Equal(ErrorReasons.Unimplemented, failed.ReadError().Reason);
        }

        using var reply = await connection.SendAsync(ChannelOp.Ping, new byte[] { 9 }).Within();
        Assert.Equal(new byte[] { 9 }, reply.Payload.ToArray());
    }

    [Fact]
    public async Task Hello_WrongToken_FailsThenServerCloses()
    {
        await using var server = ChannelServer.Start();
        await using var connection = await ChannelConnection.ConnectAsync(server.Tcp).Within();

        using (var hello = await connection.SendAsync(ChannelOp.Hello, ChannelServer.HelloPayload(new byte[16])).Within())
        {
            Assert.Equal(ErrorReasons.SessionExpired, hello.ReadError().Reason);
        }

        await Bounded.Eventually(() => Task.FromResult(connection.IsBroken), TimeSpan.FromSeconds(5), "the server closes after a failed HELLO");
        var ex = await Assert.ThrowsAsync<ChannelUnavailableException>(() => connection.SendAsync(ChannelOp.Ping, default).Within());
        Assert.Equal(server.Tcp.ToString(), ex.Address);
    }

    [Fact]
    public async Task SendAsync_BeforeHello_ConnectionErrorUnauthorized()
    {
        await using var server = ChannelServer.Start();
        await using var connection = await ChannelConnection.ConnectAsync(server.Tcp).Within();

        var ex = await Assert.ThrowsAsync<ChannelUnavailableException>(() => connection.SendAsync(ChannelOp.Get, new byte[] { 1 }).Within());

        var cause = Assert.IsType<ChannelProtocolException>(ex.InnerException);
        Assert.Equal(ErrorReasons.Unauthorized, cause.Reason);
        Assert.True(connection.IsBroken);
    }

    [Fact]
    public async Task StopAsync_CallsWaiting_FailTypedAndFast()
    {
        var server = ChannelServer.Start();
        await using var connection = await server.ConnectAsync().Within();
        var waiting = Enumerable.Range(0, 20).Select(_ => connection.SendAsync(ChannelOp.Borrow, Millis(30_000)).AsTask()).ToArray();
        await Bounded.Eventually(() => Task.FromResult(server.Listener.ConnectionCount == 1), TimeSpan.FromSeconds(5), "the connection is open");

        var started = DateTime.UtcNow;
        await server.Listener.StopAsync().Within(TimeSpan.FromSeconds(5));
        foreach (var call in waiting)
        {
            var ex = await Assert.ThrowsAsync<ChannelUnavailableException>(() => call.Within(TimeSpan.FromSeconds(5)));
            Assert.True(SessionChannel.Unavailable(ex).IsTransient, "the client reports a broken channel as a transient WorkerUnavailableException");
        }

        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(3), "Stopping took the waiters' handler time, not a moment.");
        Assert.True(connection.IsBroken);
        await Assert.ThrowsAsync<ChannelUnavailableException>(() => connection.SendAsync(ChannelOp.Ping, default).Within());
        Assert.False(File.Exists(server.Listener.UnixSocketPath), "The listener left its socket file.");
        Assert.Equal(1, server.Handler.ClosedConnections);
    }

    [Fact]
    public async Task Connect_NothingListening_WorkerUnavailable()
    {
        var path = ChannelServer.TempSocketPath();

        var ex = await Assert.ThrowsAsync<ChannelUnavailableException>(() => ChannelConnection.ConnectAsync(ChannelEndpoint.Unix(path)).Within());

        Assert.Equal($"unix:{path}", ex.Address);
    }

    [Fact]
    public async Task Start_UnixSocket_Mode0600AndStaleFileReplaced()
    {
        var path = ChannelServer.TempSocketPath();
        using (var stale = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            // A socket file whose listener is gone, as a crashed worker leaves it (moved away first, because
            // disposing the socket removes the file it bound).
            stale.Bind(new UnixDomainSocketEndPoint(path + ".x"));
            File.Move(path + ".x", path);
        }

        Assert.True(File.Exists(path));
        await using var server = ChannelServer.Start(o => o.UnixSocketPath = path);

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        await using var connection = await server.ConnectAsync("unix").Within();
        using var reply = await connection.SendAsync(ChannelOp.Ping, new byte[] { 1 }).Within();
        Assert.True(reply.IsOk);

        // A second listener on a live socket refuses instead of stealing it.
        var second = new ChannelListener(new ChannelListenerOptions { UnixSocketPath = path }, new ChannelTestHandler());
        Assert.Throws<IOException>(second.Start);
    }

    [Fact]
    public void Options_Conflicting_FailNamingTheOption()
    {
        var none = Assert.Throws<ArgumentException>(() => new ChannelListener(new ChannelListenerOptions(), new ChannelTestHandler()));
        Assert.Contains(nameof(ChannelListenerOptions.TcpEndPoint), none.Message, StringComparison.Ordinal);

        var tiny = Assert.Throws<ArgumentOutOfRangeException>(() => new ChannelListener(new ChannelListenerOptions { TcpEndPoint = new IPEndPoint(IPAddress.Loopback, 0), MaxPayloadBytes = 10 }, new ChannelTestHandler()));
        Assert.Equal(nameof(ChannelListenerOptions.MaxPayloadBytes), tiny.ParamName);
    }

    internal static byte[] Millis(int millis)
    {
        var payload = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(payload, millis);
        return payload;
    }
}
