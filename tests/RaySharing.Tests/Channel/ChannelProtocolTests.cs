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
