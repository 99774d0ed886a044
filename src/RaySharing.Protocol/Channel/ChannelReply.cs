using System.Buffers;
using RaySharing.Wire.Channel;

namespace RaySharing.Internal.Channel;

/// <summary>
/// A response frame: its status and payload (a rented copy; <see cref="Dispose"/> gives it back). For a BODY
/// response on a body connection, <see cref="BodyLength"/> says how many bytes follow.
/// </summary>
internal readonly struct ChannelReply : IDisposable
{
    private readonly byte[]? _rented;

    internal ChannelReply(ChannelOp op, ushort status, byte[]? rented, int offset, int length, long bodyLength, bool hasBody)
    {
        Op = op;
        Status = status;
        _rented = rented;
        Payload = rented is null ? ReadOnlyMemory<byte>.Empty : rented.AsMemory(offset, length);
        BodyLength = bodyLength;
        HasBody = hasBody;
    }

    /// <summary>The request op this answers.</summary>
    public ChannelOp Op { get; }

    /// <summary>0 for ok; otherwise <see cref="Payload"/> is an error (<see cref="ReadError"/>).</summary>
    public ushort Status { get; }

    public bool IsOk => Status == ChannelOps.StatusOk;

    /// <summary>The op's payload (after the body length, for a BODY response).</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>Whether a body follows (only on a body connection).</summary>
    public bool HasBody { get; }

    /// <summary>The body's length in bytes.</summary>
    public long BodyLength { get; }

    /// <summary>The error of a failed reply.</summary>
    /// <exception cref="ChannelProtocolException">The payload is not an error array.</exception>
    public ChannelError ReadError() => IsOk
        ? throw new InvalidOperationException("The channel reply is not an error.")
        : ChannelError.Read(Payload);

    public void Dispose()
    {
        if (_rented is not null)
        {
            ArrayPool<byte>.Shared.Return(_rented);
        }
    }

    /// <summary>A reply whose payload is copied out of a receive buffer.</summary>
    internal static ChannelReply Copy(ChannelFrameHeader header, ReadOnlySpan<byte> payload, long bodyLength = 0)
    {
        byte[]? rented = null;
        if (!payload.IsEmpty)
        {
            rented = ArrayPool<byte>.Shared.Rent(payload.Length);
            payload.CopyTo(rented);
        }

        return new ChannelReply((ChannelOp)(header.Op & ~ChannelOps.ResponseBit), header.Status, rented, 0, payload.Length, bodyLength, header.HasBody);
    }

    /// <summary>A reply that takes over the rented array its payload lies in (the receive buffer's), with no copy.</summary>
    internal static ChannelReply Adopt(ChannelFrameHeader header, byte[] rented, int offset, int length) =>
        new((ChannelOp)(header.Op & ~ChannelOps.ResponseBit), header.Status, rented, offset, length, 0, header.HasBody);
}
