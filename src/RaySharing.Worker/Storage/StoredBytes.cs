using RaySharing.Wire;

namespace RaySharing.Worker.Storage;

/// <summary>
/// The bytes of one object: a range of the arena. Counted: the object holds one count until it is freed, and
/// every reader (a get being sent, a same-host lease) holds one while it reads, so a freed object's range
/// returns to the arena only when the last reader is done, and is never reused under a reader's feet.
/// </summary>
internal sealed unsafe class StoredBytes
{
    /// <summary>Readers see the bytes in segments of at most this many (a <see cref="Memory{T}"/> is int-sized).</summary>
    internal const int MaxSegmentBytes = 1 << 30;

    private readonly ObjectStore _store;
    private int _count = 1;

    internal StoredBytes(ObjectStore store, long offset, long length)
    {
        _store = store;
        Offset = offset;
        Length = length;
    }

    /// <summary>Where the bytes start in the arena (from the start of its mapping); -1 for an empty object.</summary>
    public long Offset { get; }

    public long Length { get; }

    /// <summary>Memory a put writes into while the object is being made; nobody else sees it before it is sealed. Inside an arena access.</summary>
    public Span<byte> Writable(long position, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(position + length, Length);
        return length == 0 ? [] : new Span<byte>(_store.Arena.At(Offset + position), length);
    }

    /// <summary>Like <see cref="Writable"/>, as memory an asynchronous read can fill. Inside an arena access.</summary>
    public Memory<byte> WritableMemory(long position, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(position + length, Length);
        return length == 0 ? Memory<byte>.Empty : new NativeSegment(_store.Arena.At(Offset + position), length).Memory;
    }

    /// <summary>The bytes in slices of at most <paramref name="maxSliceBytes"/>, without copying. Pin first (<see cref="BytesPin"/>).</summary>
    public IEnumerable<ReadOnlyMemory<byte>> Slices(int maxSliceBytes)
    {
        for (long position = 0; position < Length; position += MaxSegmentBytes)
        {
            var segment = Segment(position, (int)Math.Min(MaxSegmentBytes, Length - position));
            for (var offset = 0; offset < segment.Length; offset += maxSliceBytes)
            {
                yield return segment.Slice(offset, Math.Min(maxSliceBytes, segment.Length - offset));
            }
        }
    }

    /// <summary>The bytes as one block, when they fit in one (at most <see cref="MaxSegmentBytes"/>). Pin first (<see cref="BytesPin"/>).</summary>
    public ReadOnlyMemory<byte> AsMemory()
    {
        if (Length > MaxSegmentBytes)
        {
            throw new InvalidOperationException($"An object of {Length} bytes is read in slices.");
        }

        return Length == 0 ? ReadOnlyMemory<byte>.Empty : Segment(0, (int)Length);
    }

    // Apart from Slices: an iterator cannot touch pointers.
    private ReadOnlyMemory<byte> Segment(long position, int length) => new NativeSegment(_store.Arena.At(Offset + position), length).Memory;

    /// <summary>The bytes as one sequence of segments, without copying. Pin first (<see cref="BytesPin"/>).</summary>
    public System.Buffers.ReadOnlySequence<byte> AsSequence() => Sequences.Of([.. Slices(MaxSegmentBytes)]);

    /// <summary>The CRC-32 of the bytes as they are in the arena now, on several cores for a large object.</summary>
    public uint ComputeChecksum()
    {
        using var access = _store.Arena.Access();
        return Checksums.Compute(AsSequence());
    }

    /// <summary>Takes a reader's count, unless the range was already given back.</summary>
    public bool TryPin() => RefCount.TryIncrement(ref _count);

    /// <summary>Drops a reader's count.</summary>
    public void Unpin() => Drop();

    /// <summary>
    /// Drops the object's own count: called once, when the object is freed or a put is abandoned. The range
    /// goes back to the arena now, or when the last reader unpins.
    /// </summary>
    public void Free() => Drop();

    private void Drop()
    {
        var count = Interlocked.Decrement(ref _count);
        if (count == 0)
        {
            _store.Return(this);
        }
        else if (count < 0)
        {
            throw new InvalidOperationException("The object's bytes were released more often than they were held.");
        }
    }
}
