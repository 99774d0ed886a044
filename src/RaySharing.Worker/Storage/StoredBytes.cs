using RaySharing.Wire;

namespace RaySharing.Worker.Storage;

/// <summary>
/// The bytes of one object: a range of the arena, or, once spilled, a file. Counted: the object holds one count
/// until it is freed, and every reader (a get being sent, a same-host lease) holds one while it reads, so a freed
/// object's range returns to the arena only when the last reader is done, and is never reused under a reader's feet.
/// </summary>
/// <remarks>
/// <para>States, all in <c>_count</c>: n &gt;= 1 in memory (the object's own count plus n - 1 readers' pins, or
/// readers only once freed); 0 freed and given back; <see cref="Moving"/> being spilled; <see cref="Spilled"/> in
/// its spill file. A sealed object (<see cref="MarkSealed"/>) that no reader pins may spill: the spiller, holding
/// this object's monitor, moves the count from exactly 1 to <see cref="Moving"/>, which a concurrent
/// <see cref="TryPin"/> (a compare-and-swap from a positive count) cannot pass, and a pin that won the race first
/// makes the spiller's swap fail. A pinned object therefore never moves.</para>
/// <para>The monitor of this object is taken only off the hot path: by <see cref="Free"/>, by a spill, and by a
/// <see cref="TryPin"/> that finds the count not positive (freed, moving or spilled). A spill holds it for its whole
/// write, so a reader that arrives meanwhile waits, then restores. Lock order: this monitor, then the store's. A
/// restore, holding this monitor, may spill other objects to make room: it only tries their monitors (never
/// waits), so two restores spilling each other's objects cannot deadlock.</para>
/// </remarks>
internal sealed unsafe class StoredBytes
{
    /// <summary>Readers see the bytes in segments of at most this many (a <see cref="Memory{T}"/> is int-sized).</summary>
    internal const int MaxSegmentBytes = 1 << 30;

    /// <summary>The count while a spiller writes the bytes out; only the object's own count is implied.</summary>
    internal const int Moving = -1;

    /// <summary>The count while the bytes are in a spill file, with no arena range; only the object's own count is implied.</summary>
    internal const int Spilled = -2;

    private readonly ObjectStore _store;
    private readonly bool _elsewhere;
    private int _count = 1;
    private bool _sealed;
    private bool _freed;

    internal StoredBytes(ObjectStore store, long offset, long length)
    {
        _store = store;
        Offset = offset;
        Length = length;
    }

    private StoredBytes(long length)
    {
        _store = null!;
        _elsewhere = true;
        Offset = -1;
        Length = length;
    }

    /// <summary>The size of an object another worker stores, for its placeholder here: nothing to read, spill or give back.</summary>
    public static StoredBytes Elsewhere(long length) => new(length);

    /// <summary>
    /// Where the bytes start in the arena (from the start of its mapping); -1 for an empty object and while spilled.
    /// A restore may move an object: read it after a successful <see cref="TryPin"/>, under which it cannot change.
    /// </summary>
    public long Offset { get; private set; }

    public long Length { get; }

    /// <summary>The object's id, known once sealed; names its spill file.</summary>
    public ObjectId Id { get; private set; }

    /// <summary>The CRC-32 of the bytes, known once sealed; a restore checks the spill file against it.</summary>
    public uint Checksum { get; private set; }

    /// <summary>True while the bytes are in a spill file rather than in the arena (racy: for tests and stats).</summary>
    public bool IsSpilled => Volatile.Read(ref _count) == Spilled;

    /// <summary>Set by readers, cleared by the spiller's clock sweep: an object read since the last sweep is spared once.</summary>
    internal bool RecentlyUsed;

    /// <summary>Neighbours on the store's spill candidate list (under the store's list lock).</summary>
    internal StoredBytes? Prev;

    internal StoredBytes? Next;

    /// <summary>True while on the store's spill candidate list (under the store's list lock).</summary>
    internal bool Listed;

    /// <summary>The current count, for tests.</summary>
    internal int Count => Volatile.Read(ref _count);

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

    /// <summary>
    /// Declares the object committed: its bytes will not change any more, so from now on it may spill when no reader
    /// pins it. Before this (a put in progress, an in-place create not yet sealed) it never spills.
    /// </summary>
    public void MarkSealed(ObjectId id, uint checksum)
    {
        lock (this)
        {
            if (_sealed || _freed)
            {
                return;
            }

            Id = id;
            Checksum = checksum;
            _sealed = true;
            if (Length > 0)
            {
                _store.Track(this);
            }
        }
    }

    /// <summary>
    /// Takes a reader's count, unless the range was already given back (false). A spilled object is restored into
    /// the arena first; <see cref="Offset"/> is then its new place.
    /// </summary>
    /// <exception cref="Ownership.WorkerException">The object is spilled and cannot come back: STORE_FULL (no room
    /// in memory even after spilling others) or OBJECT_LOST (its spill file is unreadable or corrupt).</exception>
    public bool TryPin()
    {
        if (RefCount.TryIncrement(ref _count))
        {
            if (!RecentlyUsed)
            {
                RecentlyUsed = true;
            }

            return true;
        }

        return TryPinSlow();
    }

    private bool TryPinSlow()
    {
        lock (this)
        {
            // A spill that was under way has finished (the monitor was its), or the count changed since the fast path.
            while (true)
            {
                var count = Volatile.Read(ref _count);
                if (count == 0)
                {
                    return false;
                }

                if (count > 0)
                {
                    if (Interlocked.CompareExchange(ref _count, count + 1, count) == count)
                    {
                        RecentlyUsed = true;
                        return true;
                    }

                    continue;
                }

                // Spilled: nobody else can change the count while this monitor is held (pins fail on a negative count).
                Offset = _store.Restore(this);
                RecentlyUsed = true;
                // The object's own count and this reader's.
                Volatile.Write(ref _count, 2);
                _store.Track(this);
                return true;
            }
        }
    }

    /// <summary>Drops a reader's count. Only a reader holds one, and a pinned object is in memory, so no sentinel can be met.</summary>
    public void Unpin()
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

    /// <summary>
    /// Drops the object's own count: called once, when the object is freed or a put is abandoned. The range goes
    /// back to the arena now, or when the last reader unpins; a spill file is deleted now.
    /// </summary>
    public void Free()
    {
        lock (this)
        {
            if (_freed)
            {
                throw new InvalidOperationException("The object's bytes were freed twice.");
            }

            _freed = true;
            if (_elsewhere)
            {
                return;
            }

            _store.Untrack(this);
            if (Volatile.Read(ref _count) == Spilled)
            {
                Volatile.Write(ref _count, 0);
                _store.DeleteSpilled(this);
                return;
            }

            // In memory (a spill cannot be under way: it would hold this monitor), perhaps with readers.
            Unpin();
        }
    }

    /// <summary>
    /// Called by the store, holding this monitor: claims the object for a spill if it is sealed, not freed and
    /// pinned by no reader. On true the count is <see cref="Moving"/> until <see cref="EndSpill"/>.
    /// </summary>
    internal bool TryBeginSpill() =>
        _sealed && !_freed && Length > 0 && Interlocked.CompareExchange(ref _count, Moving, 1) == 1;

    /// <summary>Ends a spill begun by <see cref="TryBeginSpill"/>: spilled (the range already given back), or back in memory as before.</summary>
    internal void EndSpill(bool spilled)
    {
        if (spilled)
        {
            Offset = -1;
        }

        Volatile.Write(ref _count, spilled ? Spilled : 1);
    }
}
