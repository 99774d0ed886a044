using System.Net.Sockets;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using Xunit;

namespace RaySharing.Tests.Channel;

/// <summary>A raw socket breaking the rules: each gets the server's preface, one error frame, then the close.</summary>
public sealed class ChannelProtocolTests
{
    [Fact]
    public async Task Preface_NotAChannelClient_ErrorFrameThenClose()
    {
        await using var server = ChannelServer.Start();

        var answer = await ExchangeRawAsync(server, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray()).Within();

        var (header, error) = ReadConnectionError(answer);
        Assert.Equal(ErrorReasons.ProtocolError, error.Reason);
        Assert.Contains("RSCH", error.Message, StringComparison.Ordinal);
        Assert.Equal(0u, header.RequestId);
    }

    [Fact]
    public async Task Preface_UnknownVersion_ServerPrefaceNamesItsVersionThenErrorFrame()
    {
        await using var server = ChannelServer.Start();

        var answer = await ExchangeRawAsync(server, ChannelPreface.Create(9)).Within();

        Assert.Equal(ChannelPreface.Version, ChannelPreface.Read(answer));
        var (_, error) = ReadConnectionError(answer);
        Assert.Contains("version 9", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Frame_OversizedLength_ErrorFrameThenClose()
    {
        await using var server = ChannelServer.Start(o => o.MaxPayloadBytes = 64 * 1024);
        var bytes = new byte[ChannelPreface.Size + ChannelFrameHeader.Size];
        ChannelPreface.Write(bytes);
        new ChannelFrameHeader(64 * 1024 + 1, 5, (byte)ChannelOp.Hello, 0, 0).Write(bytes.AsSpan(ChannelPreface.Size));

        var answer = await ExchangeRawAsync(server, bytes).Within();

        var (_, error) = ReadConnectionError(answer);
        Assert.Equal(ErrorReasons.ProtocolError, error.Reason);
        Assert.Contains("65537", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Frame_ResponseOpFromClient_ErrorFrameNamesTheRequest()
    {
        await using var server = ChannelServer.Start();
        var bytes = new byte[ChannelPreface.Size + ChannelFrameHeader.Size];
        ChannelPreface.Write(bytes);
        new ChannelFrameHeader(0, 77, ChannelOps.Response(ChannelOp.Ping), 0, 0).Write(bytes.AsSpan(ChannelPreface.Size));

        var answer = await ExchangeRawAsync(server, bytes).Within();

        var (header, error) = ReadConnectionError(answer);
        Assert.Equal(77u, header.RequestId);
        Assert.Equal(ErrorReasons.ProtocolError, error.Reason);
    }

    [Fact]
    public async Task Frame_StalledMidFrame_TimeoutErrorFrameThenClose()
    {
        await using var server = ChannelServer.Start(o => o.FrameTimeout = TimeSpan.FromMilliseconds(300));
        var bytes = new byte[ChannelPreface.Size + ChannelFrameHeader.Size + 3];
        ChannelPreface.Write(bytes);
        new ChannelFrameHeader(100, 1, (byte)ChannelOp.Ping, 0, 0).Write(bytes.AsSpan(ChannelPreface.Size));

        // Three of the hundred payload bytes, then silence (the socket stays open).
        var answer = await ExchangeRawAsync(server, bytes).Within(TimeSpan.FromSeconds(10));

        var (_, error) = ReadConnectionError(answer);
        Assert.Equal(ErrorReasons.Timeout, error.Reason);
    }

    [Fact]
    public async Task Frames_PipelinedInOneWrite_AnsweredInOrder()
    {
        await using var server = ChannelServer.Start();
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.Listener.TcpEndPoint!).Within();
        var hello = ChannelServer.HelloPayload();
        var request = new MemoryStream();
        request.Write(ChannelPreface.Create());
        var header = new byte[ChannelFrameHeader.Size];
        new ChannelFrameHeader(hello.Length, 1000, (byte)ChannelOp.Hello, 0, 0).Write(header);
        request.Write(header);
        request.Write(hello);
        for (var i = 0; i < 200; i++)
        {
            // Ids deliberately not increasing: the answers follow the order of the requests, not of the ids.
            new ChannelFrameHeader(1, (uint)(999 - i), (byte)(i % 2 == 0 ? ChannelOp.Ping : ChannelOp.Get), 0, 0).Write(header);
            request.Write(header);
            request.WriteByte((byte)i);
        }

        await socket.SendAsync(request.ToArray(), SocketFlags.None).Within();

        var expected = ChannelPreface.Size + ChannelFrameHeader.Size + (200 * (ChannelFrameHeader.Size + 1));
        var answer = new byte[expected];
        for (var at = 0; at < expected;)
        {
            var received = await socket.ReceiveAsync(answer.AsMemory(at), SocketFlags.None).Within();
            Assert.NotEqual(0, received);
            at += received;
        }

        var frames = answer.AsMemory(ChannelPreface.Size);
        Assert.True(ChannelFrameHeader.TryRead(frames.Span, 1024, out var first));
        Assert.Equal((1000u, ChannelOps.Response(ChannelOp.Hello), ChannelOps.StatusOk), (first.RequestId, first.Op, first.Status));
        frames = frames[first.FrameLength..];
        for (var i = 0; i < 200; i++)
        {
            Assert.True(ChannelFrameHeader.TryRead(frames.Span, 1024, out var frame));
            Assert.Equal((uint)(999 - i), frame.RequestId);
            Assert.Equal(ChannelOps.Response(i % 2 == 0 ? ChannelOp.Ping : ChannelOp.Get), frame.Op);
            Assert.Equal((byte)i, frames.Span[ChannelFrameHeader.Size]);
            frames = frames[frame.FrameLength..];
        }
    }

    /// <summary>Sends <paramref name="bytes"/>, then reads until the server closes.</summary>
    private static async Task<byte[]> ExchangeRawAsync(ChannelServer server, byte[] bytes)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server.Listener.TcpEndPoint!).Within();
        await socket.SendAsync(bytes, SocketFlags.None).Within();
        var received = new MemoryStream();
        var buffer = new byte[4096];
        int count;
        while ((count = await socket.ReceiveAsync(buffer, SocketFlags.None).Within()) > 0)
        {
            received.Write(buffer, 0, count);
        }

        return received.ToArray();
    }

    private static (ChannelFrameHeader Header, ChannelError Error) ReadConnectionError(byte[] answer)
    {
        Assert.Equal(ChannelPreface.Version, ChannelPreface.Read(answer));
        var frame = answer.AsSpan(ChannelPreface.Size);
        Assert.True(ChannelFrameHeader.TryRead(frame, ChannelFrameHeader.DefaultMaxPayloadBytes, out var header));
        Assert.Equal((byte)ChannelOp.ConnectionError, header.Op);
        Assert.Equal(ChannelOps.StatusConnectionError, header.Status);
        Assert.Equal(ChannelPreface.Size + header.FrameLength, answer.Length);
        return (header, ChannelError.Read(frame.Slice(ChannelFrameHeader.Size, header.PayloadLength).ToArray()));
    }
}
