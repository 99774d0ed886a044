using System.Buffers;

namespace RaySharing.Wire.Channel;

/// <summary>
/// A growable byte buffer rented from <see cref="ArrayPool{T}"/>: the output side of a channel connection,
/// where frames are appended and later sent in one write. Not thread-safe.
/// </summary>
internal sealed class PooledBuffer : IBufferWriter<byte>, IDisposable
{
    private readonly int _initialSize;
    private byte[] _array;
    private int _written;

    public PooledBuffer(int initialSize = 16 * 1024)
    {
        _initialSize = initialSize;
        _array = ArrayPool<byte>.Shared.Rent(initialSize);
    }

    /// <summary>Bytes written so far.</summary>
    public int WrittenCount => _written;

    /// <summary>The written bytes; valid until the next write, <see cref="Reset"/> or <see cref="Dispose"/>.</summary>
    public ReadOnlyMemory<byte> WrittenMemory => _array.AsMemory(0, _written);

    /// <summary>The written bytes, writable, so a header reserved earlier can be filled in.</summary>
    public Span<byte> WrittenSpan => _array.AsSpan(0, _written);

    public void Advance(int count)
    {
        if ((uint)count > (uint)(_array.Length - _written))
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "Advanced past the memory handed out.");
        }

        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _array.AsSpan(_written);
    }

    /// <summary>Drops the bytes after the first <paramref name="count"/>.</summary>
    public void Truncate(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)count, (uint)_written, nameof(count));
        _written = count;
    }

    /// <summary>Empties the buffer; one grown far past its initial size goes back to the pool.</summary>
    public void Reset()
    {
        _written = 0;
        if (_array.Length > Math.Max(_initialSize, 1024 * 1024))
        {
            var big = _array;
            _array = ArrayPool<byte>.Shared.Rent(_initialSize);
            ArrayPool<byte>.Shared.Return(big);
        }
    }

    public void Dispose()
    {
        var array = _array;
        _array = [];
        _written = 0;
        if (array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }

    private void Ensure(int sizeHint)
    {
        var need = Math.Max(sizeHint, 1);
        if (_array.Length - _written >= need)
        {
            return;
        }

        var size = (int)Math.Min(Array.MaxLength, Math.Max((long)_array.Length * 2, (long)_written + need));
        var bigger = ArrayPool<byte>.Shared.Rent(size);
        _array.AsSpan(0, _written).CopyTo(bigger);
        if (_array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_array);
        }

        _array = bigger;
    }
}
