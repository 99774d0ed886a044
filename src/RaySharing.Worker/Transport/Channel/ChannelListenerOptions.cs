using System.Net;
using RaySharing.Wire.Channel;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>Where and how the channel listens. At least one of <see cref="TcpEndPoint"/> and <see cref="UnixSocketPath"/>.</summary>
internal sealed class ChannelListenerOptions
{
    /// <summary>The TCP address and port to listen on; port 0 takes an ephemeral port. Default none.</summary>
    public IPEndPoint? TcpEndPoint { get; set; }

    /// <summary>
    /// The Unix domain socket to listen on (same-host clients). Created with mode 0600; a stale socket file is
    /// removed first, the listener's own on stop. Default none.
    /// </summary>
    public string? UnixSocketPath { get; set; }

    /// <summary>The largest frame payload accepted, in bytes. Default 16 MiB; bodies are not payload and have no limit here.</summary>
    public int MaxPayloadBytes { get; set; } = ChannelFrameHeader.DefaultMaxPayloadBytes;

    /// <summary>
    /// How long a started frame, a body or a send may stall before the connection is closed (with a <c>TIMEOUT</c>
    /// error frame). An idle connection between frames has no limit. Default 30 s.
    /// </summary>
    public TimeSpan FrameTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The receive buffer of each connection, in bytes; it grows for a larger frame. Default 64 KiB.</summary>
    public int ReceiveBufferBytes { get; set; } = 64 * 1024;

    /// <summary>The listen backlog. Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>A validated copy: a later change to this object does not change a running listener.</summary>
    public ChannelListenerOptions Snapshot()
    {
        if (TcpEndPoint is null && string.IsNullOrEmpty(UnixSocketPath))
        {
            throw new ArgumentException($"The channel needs {nameof(TcpEndPoint)}, {nameof(UnixSocketPath)} or both.", nameof(TcpEndPoint));
        }

        if (MaxPayloadBytes < 1024 || MaxPayloadBytes > Array.MaxLength - ChannelFrameHeader.Size)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPayloadBytes), MaxPayloadBytes, $"{nameof(MaxPayloadBytes)} is between 1 KiB and 2 GiB.");
        }

        if (FrameTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(FrameTimeout), FrameTimeout, $"{nameof(FrameTimeout)} is positive.");
        }

        if (ReceiveBufferBytes < 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(ReceiveBufferBytes), ReceiveBufferBytes, $"{nameof(ReceiveBufferBytes)} is at least 1 KiB.");
        }

        if (Backlog < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Backlog), Backlog, $"{nameof(Backlog)} is positive.");
        }

        return (ChannelListenerOptions)MemberwiseClone();
    }
}
