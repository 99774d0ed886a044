using RaySharing.Wire.Channel;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// One request as the handler sees it. Reused by the connection for its next request: valid only during
/// <see cref="IChannelHandler.HandleAsync"/>.
/// </summary>
internal sealed class ChannelRequest
{
    private readonly ChannelServerConnection _connection;

    internal ChannelRequest(ChannelServerConnection connection) => _connection = connection;

    /// <summary>The request's op.</summary>
    public ChannelOp Op { get; private set; }

    /// <summary>The request id the response repeats.</summary>
    public uint RequestId { get; private set; }

    /// <summary>
    /// The op's payload (for a BODY request, after the body length). A slice of the receive buffer: copy what
    /// must outlive the handler call.
    /// </summary>
    public ReadOnlyMemory<byte> Payload { get; private set; }

    /// <summary>The connection: its id, peer and bound session.</summary>
    public ChannelConnectionState Connection => _connection.State;

    /// <summary>Whether a body follows the payload.</summary>
    public bool HasBody { get; private set; }

    /// <summary>The body's length in bytes (0 without a body).</summary>
    public long BodyLength { get; private set; }

    /// <summary>Body bytes not read yet. The transport discards what the handler leaves unread.</summary>
    public long BodyRemaining { get; internal set; }

    /// <summary>
    /// Reads the next <paramref name="destination"/>.Length bytes of the body straight into it (the bytes already
    /// received with the header are copied; the rest come from the socket into the destination). Call it as often
    /// as the destination has segments.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The destination is longer than <see cref="BodyRemaining"/>.</exception>
    /// <exception cref="IOException">The peer closed, the socket failed, or the body stalled past the frame timeout; the connection closes.</exception>
    public ValueTask ReadBodyAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(destination.Length, BodyRemaining, nameof(destination));
        return _connection.ReadBodyAsync(this, destination, cancellationToken);
    }

    internal void Reset(ChannelFrameHeader header, ReadOnlyMemory<byte> payload)
    {
        Op = (ChannelOp)header.Op;
        RequestId = header.RequestId;
        HasBody = header.HasBody;
        if (HasBody)
        {
            BodyLength = BodyRemaining = ChannelFrameHeader.ReadBodyLength(payload.Span);
            Payload = payload[ChannelFrameHeader.BodyLengthSize..];
        }
        else
        {
            BodyLength = BodyRemaining = 0;
            Payload = payload;
        }
    }
}
