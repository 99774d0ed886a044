using System.Buffers.Binary;

namespace RaySharing.Wire.Channel;

/// <summary>
/// The 16-byte header in front of every channel frame (protos/CHANNEL.md, "Frames"), little-endian:
/// u32 payload length, u32 request id, u8 op, u8 flags, u16 status, u32 reserved (zero).
/// </summary>
internal readonly record struct ChannelFrameHeader(int PayloadLength, uint RequestId, byte Op, byte Flags, ushort Status)
{
    /// <summary>The header's size in bytes.</summary>
    public const int Size = 16;

    /// <summary>Bytes of the body length that starts the payload of a frame with <see cref="ChannelOps.FlagBody"/>.</summary>
    public const int BodyLengthSize = 8;

    /// <summary>The payload limit when none is configured: 16 MiB.</summary>
    public const int DefaultMaxPayloadBytes = 16 * 1024 * 1024;

    /// <summary>Whether a raw body follows the payload.</summary>
    public bool HasBody => (Flags & ChannelOps.FlagBody) != 0;

    /// <summary>Whether this is a response (the op's high bit).</summary>
    public bool IsResponse => (Op & ChannelOps.ResponseBit) != 0;

    /// <summary>The frame's size on the wire without any body.</summary>
    public int FrameLength => Size + PayloadLength;

    /// <summary>Writes the header into the first <see cref="Size"/> bytes of <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            throw new ArgumentException($"A channel frame header needs {Size} bytes; {destination.Length} given.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)PayloadLength);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], RequestId);
        destination[8] = Op;
        destination[9] = Flags;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[10..], Status);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], 0);
    }

    /// <summary>
    /// Reads a header from <paramref name="source"/>. False when fewer than <see cref="Size"/> bytes are there
    /// (wait for more); throws when the bytes are a header no version 1 peer may send.
    /// </summary>
    /// <param name="source">The received bytes, header first.</param>
    /// <param name="maxPayloadBytes">The largest payload accepted; a larger length is a protocol error.</param>
    /// <param name="header">The header read.</param>
    /// <exception cref="ChannelProtocolException">Oversized length, reserved bits or field set, or a body frame too short to hold its body length.</exception>
    public static bool TryRead(ReadOnlySpan<byte> source, int maxPayloadBytes, out ChannelFrameHeader header)
    {
        if (source.Length < Size)
        {
            header = default;
            return false;
        }

        var length = BinaryPrimitives.ReadUInt32LittleEndian(source);
        var requestId = BinaryPrimitives.ReadUInt32LittleEndian(source[4..]);
        var op = source[8];
        var flags = source[9];
        var status = BinaryPrimitives.ReadUInt16LittleEndian(source[10..]);
        var reserved = BinaryPrimitives.ReadUInt32LittleEndian(source[12..]);
        if (length > (uint)maxPayloadBytes)
        {
            throw new ChannelProtocolException($"A channel frame declares a payload of {length} bytes, over the limit of {maxPayloadBytes}; the connection closes.");
        }

        if (reserved != 0)
        {
            throw new ChannelProtocolException($"A channel frame has its reserved field set ({reserved:x8}); version 1 frames send zero there.");
        }

        if ((flags & ~ChannelOps.KnownFlags) != 0)
        {
            throw new ChannelProtocolException($"A channel frame has unknown flags 0x{flags:x2}; version 1 knows only BODY (0x01).");
        }

        if ((flags & ChannelOps.FlagBody) != 0 && length < BodyLengthSize)
        {
            throw new ChannelProtocolException($"A channel frame with a body has a payload of {length} bytes, too short for its 8-byte body length.");
        }

        header = new ChannelFrameHeader((int)length, requestId, op, flags, status);
        return true;
    }

    /// <summary>Reads the body length that starts the payload of a frame with <see cref="ChannelOps.FlagBody"/>.</summary>
    /// <exception cref="ChannelProtocolException">The length does not fit a signed 64-bit number.</exception>
    public static long ReadBodyLength(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < BodyLengthSize)
        {
            throw new ChannelProtocolException($"A body frame's payload has {payload.Length} bytes, too short for its 8-byte body length.");
        }

        var length = BinaryPrimitives.ReadUInt64LittleEndian(payload);
        if (length > long.MaxValue)
        {
            throw new ChannelProtocolException($"A channel body declares {length} bytes, more than any peer can hold.");
        }

        return (long)length;
    }

    /// <summary>Writes a body length at the start of a payload.</summary>
    public static void WriteBodyLength(Span<byte> payload, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        BinaryPrimitives.WriteUInt64LittleEndian(payload, (ulong)length);
    }
}
