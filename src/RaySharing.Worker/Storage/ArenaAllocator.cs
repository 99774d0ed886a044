namespace RaySharing.Worker.Storage;

/// <summary>
/// Hands out ranges of the arena, 64-byte aligned, best fit. Only free ranges are tracked: a million stored
/// objects cost the allocator nothing, and a free that meets a free neighbour merges with it, found in O(1)
/// by its start or end.
/// </summary>
internal sealed class ArenaAllocator
{
    /// <summary>Every range starts on a cache line, as shared-memory readers and vector code like it.</summary>
    public const int Alignment = 64;

    private readonly Lock _gate = new();
    // Free ranges ordered by length then offset: the first at or above a request is the best fit.
    private readonly SortedSet<(long Length, long Offset)> _bySize = [];
    private readonly Dictionary<long, long> _lengthByStart = [];
    private readonly Dictionary<long, long> _startByEnd = [];
    private long _freeBytes;

    public ArenaAllocator(long start, long length)
    {
        if (start % Alignment != 0 || length < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(start), "The arena's data must start on a 64-byte boundary.");
        }

        var usable = length - (length % Alignment);
        TotalBytes = usable;
        if (usable > 0)
        {
            AddFree(start, usable);
        }
    }

    /// <summary>The bytes this allocator manages.</summary>
    public long TotalBytes { get; }

    /// <summary>Bytes in free ranges; the largest one may be smaller (see <see cref="LargestFreeBytes"/>).</summary>
    public long FreeBytes
    {
        get
        {
            lock (_gate)
            {
                return _freeBytes;
            }
        }
    }

    public long LargestFreeBytes
    {
        get
        {
            lock (_gate)
            {
                return _bySize.Count == 0 ? 0 : _bySize.Max.Length;
            }
        }
    }

    /// <summary>The bytes a request of <paramref name="size"/> occupies.</summary>
    public static long Footprint(long size) => (size + Alignment - 1) & ~(long)(Alignment - 1);

    public bool TryAllocate(long size, out long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        var need = Footprint(size);
        lock (_gate)
        {
            // A view's Min is a walk down the tree; its Count would visit every range.
            var (length, start) = _bySize.GetViewBetween((need, long.MinValue), (long.MaxValue, long.MaxValue)).Min;
            if (length == 0)
            {
                offset = -1;
                return false;
            }

            RemoveFree(start, length);
            if (length > need)
            {
                AddFree(start + need, length - need);
            }

            offset = start;
            return true;
        }
    }

    public void Free(long offset, long size)
    {
        var length = Footprint(size);
        var start = offset;
        lock (_gate)
        {
            if (_startByEnd.TryGetValue(start, out var before))
            {
                var beforeLength = _lengthByStart[before];
                RemoveFree(before, beforeLength);
                start = before;
                length += beforeLength;
            }

            if (_lengthByStart.TryGetValue(start + length, out var afterLength))
            {
                RemoveFree(start + length, afterLength);
                length += afterLength;
            }

            AddFree(start, length);
        }
    }

    private void AddFree(long start, long length)
    {
        _bySize.Add((length, start));
        _lengthByStart.Add(start, length);
        _startByEnd.Add(start + length, start);
        _freeBytes += length;
    }

    private void RemoveFree(long start, long length)
    {
        _bySize.Remove((length, start));
        _lengthByStart.Remove(start);
        _startByEnd.Remove(start + length);
        _freeBytes -= length;
    }
}
