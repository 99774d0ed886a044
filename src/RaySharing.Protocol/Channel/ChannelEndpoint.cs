using System.Net.Sockets;
using RaySharing.Wire.Channel;

namespace RaySharing.Internal.Channel;

/// <summary>Where a worker's channel listens: a TCP host and port, or a Unix domain socket path on this host.</summary>
internal sealed record ChannelEndpoint
{
    private ChannelEndpoint(string? host, int port, string? unixPath)
    {
        Host = host;
        Port = port;
        UnixPath = unixPath;
    }

    /// <summary>The TCP host (name or address); null for a Unix socket.</summary>
    public string? Host { get; }

    /// <summary>The TCP port.</summary>
    public int Port { get; }

    /// <summary>The Unix domain socket path; null for TCP.</summary>
    public string? UnixPath { get; }

    public static ChannelEndpoint Tcp(string host, int port)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        return new ChannelEndpoint(host, port, null);
    }

    public static ChannelEndpoint Unix(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new ChannelEndpoint(null, 0, path);
    }

    /// <summary>Opens a socket to the endpoint and exchanges prefaces (protos/CHANNEL.md, "Preface").</summary>
    /// <exception cref="ChannelUnavailableException">Nothing listens, the connection failed, or the peer is not a version 1 channel.</exception>
    public async Task<Socket> ConnectAsync(CancellationToken cancellationToken)
    {
        var socket = UnixPath is null
            ? new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }
            : new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            if (UnixPath is null)
            {
                await socket.ConnectAsync(Host!, Port, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(UnixPath), cancellationToken).ConfigureAwait(false);
            }

            await socket.SendAsync(ChannelPreface.Create(), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            var preface = new byte[ChannelPreface.Size];
            for (var at = 0; at < preface.Length;)
            {
                var received = await socket.ReceiveAsync(preface.AsMemory(at), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (received == 0)
                {
                    throw new IOException("The peer closed the connection before its preface.");
                }

                at += received;
            }

            var version = ChannelPreface.Read(preface);
            if (version != ChannelPreface.Version)
            {
                throw new ChannelProtocolException($"The worker speaks channel version {version}; this client speaks version {ChannelPreface.Version}.");
            }

            return socket;
        }
        catch (Exception ex) when (ex is SocketException or IOException or ChannelProtocolException)
        {
            socket.Dispose();
            throw new ChannelUnavailableException($"Connecting the channel to {this} failed: {ex.Message.TrimEnd('.')}. Check that the worker runs and its channel listens there.", ToString(), ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public override string ToString() => UnixPath is null ? $"tcp://{Host}:{Port}" : $"unix:{UnixPath}";
}
