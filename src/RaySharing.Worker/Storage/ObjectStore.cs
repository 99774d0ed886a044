using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Storage;

/// <summary>
/// Where objects' bytes live: ranges of a <see cref="SharedArena"/>, one copy per object. Space is reserved,
/// and its range allocated, before a put's bytes arrive, so a put that cannot fit fails before it transfers
/// anything. <see cref="UsedBytes"/> counts objects' bytes, as users reckon capacity; the arena is larger by
/// an allowance for alignment and fragmentation.
/// </summary>
internal sealed class ObjectStore : IDisposable
{
    private readonly ArenaAllocator _allocator;
    private long _usedBytes;

    public ObjectStore(long capacityBytes, bool shareArena = false, ILogger<ObjectStore>? logger = null, string sharedMemoryDirectory = "/dev/shm")
    {
        CapacityBytes = capacityBytes;
        var log = (ILogger?)logger ?? NullLogger.Instance;
        Arena = SharedArena.Create(ArenaDataBytes(capacityBytes), shareArena ? sharedMemoryDirectory : null, log);
        _allocator = new ArenaAllocator(Arena.DataStart, Arena.Length - Arena.DataStart);
        WorkerLog.ArenaCreated(log, capacityBytes, Arena.Length, Arena.IsShared
            ? $"in {sharedMemoryDirectory}, shared with clients on this host"
            : shareArena ? "private memory: same-host shared memory is off (see the warning above)" : "private memory: shared memory is turned off");
    }

    public long CapacityBytes { get; }

    public long UsedBytes => Volatile.Read(ref _usedBytes);

    public SharedArena Arena { get; }

    /// <summary>
    /// The arena's data size for a capacity: an eighth more (at least 1 MiB), for the padding that aligns each
    /// object to 64 bytes and for the gaps frees leave between objects.
    /// </summary>
    internal static long ArenaDataBytes(long capacityBytes)
    {
        var allowance = Math.Max(capacityBytes / 8, 1L << 20);
        return ArenaAllocator.Footprint(capacityBytes + allowance);
    }

    /// <summary>Reserves room for an object of <paramref name="size"/> bytes; throws STORE_FULL when there is none.</summary>
    public StoredBytes Reserve(long size)
    {
        if (!TryCharge(size))
        {
            throw WorkerErrors.StoreFull(size, UsedBytes, CapacityBytes);
        }

        if (size == 0)
        {
            return new StoredBytes(this, -1, 0);
        }

        if (!_allocator.TryAllocate(size, out var offset))
        {
            Interlocked.Add(ref _usedBytes, -size);
            throw WorkerErrors.StoreFragmented(size, UsedBytes, CapacityBytes, _allocator.LargestFreeBytes);
        }

        return new StoredBytes(this, offset, size);
    }

    /// <summary>Called by <see cref="StoredBytes"/> when its last count is dropped: the range is free again.</summary>
    internal void Return(StoredBytes bytes)
    {
        if (bytes.Length > 0)
        {
            _allocator.Free(bytes.Offset, bytes.Length);
        }

        Interlocked.Add(ref _usedBytes, -bytes.Length);
    }

    public void Dispose() => Arena.Dispose();

    private bool TryCharge(long bytes)
    {
        while (true)
        {
            var used = Volatile.Read(ref _usedBytes);
            if (bytes > CapacityBytes - used)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _usedBytes, used + bytes, used) == used)
            {
                return true;
            }
        }
    }
}
