using System.Buffers;
using System.Buffers.Binary;

namespace RaySharing.Wire.Channel;

/// <summary>
/// The input side of a channel connection: bytes received from the socket, parsed into whole frames in place.
/// A frame's payload is a slice of this buffer, valid until the next <see cref="GetReceiveMemory"/>. Grows to
/// hold one whole frame (at most the payload limit) and shrinks back after. Not thread-safe.
/// </summary>
internal sealed class FrameBuffer : IDisposable
{
    private readonly int _initialSize;
    private readonly int _maxPayloadBytes;
    private byte[] _array;
    private int _start;
    private int _end;

    public FrameBuffer(int maxPayloadBytes, int initialSize = 64 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(initialSize, ChannelFrameHeader.Size);
        _maxPayloadBytes = maxPayloadBytes;
        _initialSize = initialSize;
        _array = ArrayPool<byte>.Shared.Rent(initialSize);
    }

    /// <summary>Received bytes not yet parsed or taken.</summary>
    public int Buffered => _end - _start;

    /// <summary>
    /// Parses the next whole frame. False when the buffered bytes end before the frame does (receive more).
    /// </summary>
    /// <exception cref="ChannelProtocolException">The header breaks the framing rules.</exception>
    public bool TryReadFrame(out ChannelFrameHeader header, out ReadOnlyMemory<byte> payload)
    {
        if (!ChannelFrameHeader.TryRead(_array.AsSpan(_start, _end - _start), _maxPayloadBytes, out header)
            || _end - _start < header.FrameLength)
        {
            payload = default;
            return false;
        }

        payload = _array.AsMemory(_start + ChannelFrameHeader.Size, header.PayloadLength);
        _start += header.FrameLength;
        return true;
    }

    /// <summary>
    /// Hands over the array that holds the frames read so far (the caller returns it to <see cref="ArrayPool{T}.Shared"/>),
    /// keeping the bytes received after them in a new one: a large payload changes hands instead of being copied.
    /// </summary>
    public byte[] DetachArray()
    {
        var detached = _array;
        var buffered = _end - _start;
        _array = ArrayPool<byte>.Shared.Rent(Math.Max(_initialSize, buffered));
        detached.AsSpan(_start, buffered).CopyTo(_array);
        _start = 0;
        _end = buffered;
        return detached;
    }

    /// <summary>Moves up to <paramref name="destination"/>'s length of buffered bytes (the start of a body) into it.</summary>
    public int Take(Span<byte> destination)
    {
        var count = Math.Min(destination.Length, _end - _start);
        _array.AsSpan(_start, count).CopyTo(destination);
        _start += count;
        return count;
    }

    /// <summary>Drops up to <paramref name="count"/> buffered bytes (a body nobody reads).</summary>
    public int Skip(long count)
    {
        var n = (int)Math.Min(count, _end - _start);
        _start += n;
        return n;
    }

    /// <summary>
    /// Free space to receive into, after making room for the whole of a partially received frame. Invalidates
    /// payloads handed out before.
    /// </summary>
    public Memory<byte> GetReceiveMemory()
    {
        var buffered = _end - _start;
        if (buffered == 0)
        {
            _start = _end = 0;
            if (_array.Length > _initialSize)
            {
                Replace(ArrayPool<byte>.Shared.Rent(_initialSize));
            }

            return _array;
        }

        // A header is 16 bytes; its payload length was checked against the limit when the header arrived.
        var need = ChannelFrameHeader.Size;
        if (buffered >= ChannelFrameHeader.Size)
        {
            need = ChannelFrameHeader.Size + (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(_array.AsSpan(_start)), (uint)_maxPayloadBytes);
        }

        if (need > _array.Length)
        {
            Replace(ArrayPool<byte>.Shared.Rent(need));
        }
        else if (_array.Length - _start < need || _end == _array.Length)
        {
            _array.AsSpan(_start, buffered).CopyTo(_array);
            _start = 0;
            _end = buffered;
        }

        return _array.AsMemory(_end);
    }

    /// <summary>Counts <paramref name="count"/> bytes received into the memory <see cref="GetReceiveMemory"/> gave.</summary>
    public void Commit(int count) => _end += count;

    public void Dispose()
    {
        var array = _array;
        _array = [];
        _start = _end = 0;
        if (array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }

    private void Replace(byte[] bigger)
    {
        var buffered = _end - _start;
        _array.AsSpan(_start, buffered).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_array);
        _array = bigger;
        _start = 0;
        _end = buffered;
    }
}
