using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RaySharing.Worker.Diagnostics;
using RaySharing.Wire;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Storage;

/// <summary>Where and how much a store spills: <see cref="CapacityBytes"/> of files under <see cref="Directory"/>, once memory passes <see cref="HighWaterFraction"/> of capacity.</summary>
/// <remarks>With <see cref="Background"/> (the worker's way) a spiller thread brings memory back under the mark, and a
/// reservation spills on its own thread only what it needs to fit at all; without it (for tests that need one exact
/// sequence) every reservation past the mark spills under it first, on its own thread.</remarks>
internal sealed record SpillSettings(string Directory, long CapacityBytes, double HighWaterFraction = SpillSettings.DefaultHighWaterFraction, bool Background = true)
{
    public const double DefaultHighWaterFraction = 0.9;
}

/// <summary>
/// Where objects' bytes live: ranges of a <see cref="SharedArena"/>, one copy per object, and, with spilling on,
/// files. Space is reserved, and its range allocated, before a put's bytes arrive, so a put that cannot fit fails
/// before it transfers anything. <see cref="UsedBytes"/> counts objects' bytes in memory, as users reckon capacity;
/// the arena is larger by an allowance for alignment and fragmentation. <see cref="SpilledBytes"/> counts those in
/// spill files.
/// </summary>
/// <remarks>
/// Spilling: sealed objects no reader pins move to files, least recently used first (a clock sweep: an object read
/// since the last sweep is spared once). A reservation that leaves memory past the high-water mark wakes the
/// background spiller, which spills until memory is a twentieth of capacity under the mark; a reservation that
/// memory cannot take now spills what it needs on its own thread, and is refused (STORE_FULL) only when memory
/// still cannot take it (the rest pinned, being put, or the spill limit used). A spilled object comes back on its next pin
/// (<see cref="StoredBytes.TryPin"/>), spilling others if need be.
/// </remarks>
internal sealed class ObjectStore : IDisposable
{
    /// <summary>Candidates in a row that one spill passes over because the spill limit has no room for them, before it gives up.</summary>
    private const int MaxTooLargeCandidates = 64;

    private readonly ArenaAllocator _allocator;
    private readonly ILogger _logger;
    private readonly SpillFiles? _spill;
    private readonly long _highWaterBytes;
    // Where the background spiller stops: a little under the mark, so that it runs in batches rather than once per put.
    private readonly long _lowWaterBytes;
    private readonly bool _background;
    private int _spillerRunning;
    private int _disposed;
    // The spill candidates: sealed objects in memory, in the order the clock sweeps them.
    private readonly Lock _listGate = new();
    private StoredBytes? _head;
    private StoredBytes? _tail;
    private long _listed;
    private long _usedBytes;
    private long _spilledBytes;

    public ObjectStore(long capacityBytes, bool shareArena = false, ILogger<ObjectStore>? logger = null, string sharedMemoryDirectory = "/dev/shm", SpillSettings? spill = null)
    {
        CapacityBytes = capacityBytes;
        var log = (ILogger?)logger ?? NullLogger.Instance;
        _logger = log;
        if (spill is { CapacityBytes: > 0 })
        {
            // First, so a spill directory that cannot be used fails the start before the arena takes its memory.
            _spill = new SpillFiles(spill.Directory, log);
            SpillCapacityBytes = spill.CapacityBytes;
            _highWaterBytes = (long)(capacityBytes * spill.HighWaterFraction);
            _lowWaterBytes = Math.Max(0, _highWaterBytes - capacityBytes / 20);
            _background = spill.Background;
        }

        try
        {
            Arena = SharedArena.Create(ArenaDataBytes(capacityBytes), shareArena ? sharedMemoryDirectory : null, log);
        }
        catch
        {
            _spill?.Dispose();
            throw;
        }

        _allocator = new ArenaAllocator(Arena.DataStart, Arena.Length - Arena.DataStart);
        WorkerLog.ArenaCreated(log, capacityBytes, Arena.Length, Arena.IsShared
            ? $"in {sharedMemoryDirectory}, shared with clients on this host"
            : shareArena ? "private memory: same-host shared memory is off (see the warning above)" : "private memory: shared memory is turned off");
        if (_spill is not null)
        {
            WorkerLog.SpillReady(log, _spill.Path, SpillCapacityBytes, _highWaterBytes);
        }
    }

    public long CapacityBytes { get; }

    /// <summary>Objects' bytes in memory.</summary>
    public long UsedBytes => Volatile.Read(ref _usedBytes);

    /// <summary>The most bytes spill files may hold; 0 when spilling is off.</summary>
    public long SpillCapacityBytes { get; }

    /// <summary>Objects' bytes in spill files.</summary>
    public long SpilledBytes => Volatile.Read(ref _spilledBytes);

    /// <summary>This worker's own spill directory, or null when spilling is off.</summary>
    public string? SpillPath => _spill?.Path;

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

    /// <summary>Reserves room for an object of <paramref name="size"/> bytes, spilling others if need be; throws STORE_FULL when there is none.</summary>
    public StoredBytes Reserve(long size) => new(this, size == 0 ? TakeEmpty() : TakeRange(size), size);

    private long TakeEmpty() => TryCharge(0) ? -1 : throw Full(0);

    /// <summary>Charges <paramref name="size"/> bytes of memory and allocates their range, spilling as the mark requires.</summary>
    private long TakeRange(long size)
    {
        if (_spill is not null && !_background && size <= CapacityBytes && UsedBytes + size > _highWaterBytes)
        {
            // Under the mark when the object fits under it, else as low as the object needs.
            SpillUntil(size <= _highWaterBytes ? _highWaterBytes - size : CapacityBytes - size);
        }

        // Spills to fit, a few times: concurrent reservations may take the room one spill made.
        for (var attempt = 0; !TryCharge(size); attempt++)
        {
            if (_spill is null || size > CapacityBytes || attempt == 3 || !SpillUntil(CapacityBytes - size))
            {
                throw Full(size);
            }
        }

        long offset;
        while (!_allocator.TryAllocate(size, out offset))
        {
            // Free space in pieces: each spill may merge a piece big enough.
            if (_spill is null || !SpillOne())
            {
                Interlocked.Add(ref _usedBytes, -size);
                throw _spill is null
                    ? WorkerErrors.StoreFragmented(size, UsedBytes, CapacityBytes, _allocator.LargestFreeBytes)
                    : WorkerErrors.StoreAndSpillFull(size, UsedBytes, CapacityBytes, SpilledBytes, SpillCapacityBytes);
            }
        }

        if (_background && UsedBytes > _highWaterBytes)
        {
            WakeSpiller();
        }

        return offset;
    }

    /// <summary>True while the background spiller runs (for tests, which wait for it to settle).</summary>
    internal bool SpillerRunning => Volatile.Read(ref _spillerRunning) != 0;

    /// <summary>Starts the background spiller unless it runs already.</summary>
    private void WakeSpiller()
    {
        if (Interlocked.CompareExchange(ref _spillerRunning, 1, 0) == 0)
        {
            _ = Task.Run(RunSpiller);
        }
    }

    private void RunSpiller()
    {
        while (true)
        {
            bool underMark;
            try
            {
                underMark = SpillUntil(_lowWaterBytes);
            }
            catch (WorkerException) when (Volatile.Read(ref _disposed) != 0)
            {
                // The arena closed under it: the worker is stopping.
                underMark = false;
            }
            catch (Exception ex)
            {
                WorkerLog.SpillerFailed(_logger, ex);
                underMark = false;
            }

            Volatile.Write(ref _spillerRunning, 0);
            // Reservations made while it was finishing found it running and did not wake it: look again. When nothing
            // more could spill, stop; the next reservation past the mark wakes it.
            if (!underMark || Volatile.Read(ref _disposed) != 0 || UsedBytes <= _highWaterBytes
                || Interlocked.CompareExchange(ref _spillerRunning, 1, 0) != 0)
            {
                return;
            }
        }
    }

    private WorkerException Full(long size) => _spill is null
        ? WorkerErrors.StoreFull(size, UsedBytes, CapacityBytes)
        : WorkerErrors.StoreAndSpillFull(size, UsedBytes, CapacityBytes, SpilledBytes, SpillCapacityBytes);

    /// <summary>Called by <see cref="StoredBytes"/> when its last count is dropped: the range is free again.</summary>
    internal void Return(StoredBytes bytes)
    {
        if (bytes.Length > 0)
        {
            _allocator.Free(bytes.Offset, bytes.Length);
        }

        Interlocked.Add(ref _usedBytes, -bytes.Length);
    }

    /// <summary>
    /// Brings a spilled object's bytes back into memory; returns their new offset. The caller holds the object's
    /// monitor and its count is <see cref="StoredBytes.Spilled"/>. The file is deleted once its bytes are back.
    /// </summary>
    internal unsafe long Restore(StoredBytes bytes)
    {
        var spill = _spill ?? throw new InvalidOperationException("Nothing spills in this store.");
        long offset;
        try
        {
            offset = TakeRange(bytes.Length);
        }
        catch (WorkerException ex) when (ex.Reason == ErrorReasons.StoreFull)
        {
            throw WorkerErrors.NoRoomToRestore(bytes.Id, bytes.Length, UsedBytes, CapacityBytes);
        }

        string? problem;
        try
        {
            using (Arena.Access())
            {
                problem = spill.TryRead(bytes.Id, Arena.At(offset), bytes.Length, bytes.Checksum);
            }
        }
        catch
        {
            GiveBack(offset, bytes.Length);
            throw;
        }

        if (problem is not null)
        {
            GiveBack(offset, bytes.Length);
            WorkerLog.SpillFileLost(_logger, bytes.Id, problem);
            throw WorkerErrors.SpillFileLost(bytes.Id, problem);
        }

        spill.Delete(bytes.Id);
        Interlocked.Add(ref _spilledBytes, -bytes.Length);
        WorkerLog.ObjectRestored(_logger, bytes.Id, bytes.Length);
        return offset;
    }

    /// <summary>Deletes a freed object's spill file. The caller holds the object's monitor.</summary>
    internal void DeleteSpilled(StoredBytes bytes)
    {
        _spill?.Delete(bytes.Id);
        Interlocked.Add(ref _spilledBytes, -bytes.Length);
    }

    /// <summary>Puts a sealed object in memory on the spill candidates (at the end: it was just used). The caller holds its monitor.</summary>
    internal void Track(StoredBytes bytes)
    {
        if (_spill is null)
        {
            return;
        }

        lock (_listGate)
        {
            if (!bytes.Listed)
            {
                Append(bytes);
                bytes.Listed = true;
                _listed++;
            }
        }
    }

    /// <summary>Takes an object off the spill candidates (freed, or spilled). The caller holds its monitor.</summary>
    internal void Untrack(StoredBytes bytes)
    {
        if (_spill is null)
        {
            return;
        }

        lock (_listGate)
        {
            if (bytes.Listed)
            {
                Unlink(bytes);
                bytes.Listed = false;
                _listed--;
            }
        }
    }

    /// <summary>Spills until memory in use is at most <paramref name="targetBytes"/>, or nothing more can spill; false then.</summary>
    internal bool SpillUntil(long targetBytes)
    {
        while (UsedBytes > targetBytes)
        {
            if (!SpillOne())
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Spills one candidate: the first the clock finds unused since its last sweep, that no reader pins, that the
    /// spill capacity can take and whose monitor is free now. False when a whole sweep (twice round) found none.
    /// </summary>
    internal unsafe bool SpillOne()
    {
        var spill = _spill;
        if (spill is null || Volatile.Read(ref _disposed) != 0)
        {
            return false;
        }

        long attempts;
        lock (_listGate)
        {
            attempts = 2 * _listed;
        }

        // With the spill limit (nearly) used, trying every candidate in memory on every put would cost a walk of the list.
        var tooLarge = 0;
        for (; attempts > 0 && SpilledBytes < SpillCapacityBytes && tooLarge < MaxTooLargeCandidates; attempts--)
        {
            var victim = NextCandidate();
            if (victim is null)
            {
                return false;
            }

            // Never waits: the holder may be a restore that is itself spilling, and waiting could deadlock.
            if (!Monitor.TryEnter(victim))
            {
                continue;
            }

            try
            {
                if (!victim.TryBeginSpill())
                {
                    continue;
                }

                var spilled = false;
                try
                {
                    if (!TryChargeSpill(victim.Length))
                    {
                        tooLarge++;
                        continue;
                    }

                    try
                    {
                        using (Arena.Access())
                        {
                            spill.Write(victim.Id, Arena.At(victim.Offset), victim.Length);
                        }
                    }
                    catch (Exception ex)
                    {
                        Interlocked.Add(ref _spilledBytes, -victim.Length);
                        if (ex is IOException or UnauthorizedAccessException)
                        {
                            WorkerLog.SpillFailed(_logger, victim.Id, victim.Length, ex);
                            // The disk is full or failing: trying the next object would fail the same way.
                            return false;
                        }

                        throw;
                    }

                    Untrack(victim);
                    Return(victim);
                    spilled = true;
                    WorkerLog.ObjectSpilled(_logger, victim.Id, victim.Length);
                    return true;
                }
                finally
                {
                    victim.EndSpill(spilled);
                }
            }
            finally
            {
                Monitor.Exit(victim);
            }
        }

        return false;
    }

    /// <summary>The clock's next candidate, moved to the end of the list; an object used since the last sweep has its mark cleared and is passed over.</summary>
    private StoredBytes? NextCandidate()
    {
        lock (_listGate)
        {
            for (var i = 0L; i <= _listed; i++)
            {
                var candidate = _head;
                if (candidate is null)
                {
                    return null;
                }

                Unlink(candidate);
                Append(candidate);
                if (!candidate.RecentlyUsed)
                {
                    return candidate;
                }

                candidate.RecentlyUsed = false;
            }

            return _head;
        }
    }

    private void Append(StoredBytes bytes)
    {
        bytes.Prev = _tail;
        bytes.Next = null;
        if (_tail is null)
        {
            _head = bytes;
        }
        else
        {
            _tail.Next = bytes;
        }

        _tail = bytes;
    }

    private void Unlink(StoredBytes bytes)
    {
        if (bytes.Prev is null)
        {
            _head = bytes.Next;
        }
        else
        {
            bytes.Prev.Next = bytes.Next;
        }

        if (bytes.Next is null)
        {
            _tail = bytes.Prev;
        }
        else
        {
            bytes.Next.Prev = bytes.Prev;
        }

        bytes.Prev = null;
        bytes.Next = null;
    }

    private void GiveBack(long offset, long length)
    {
        _allocator.Free(offset, length);
        Interlocked.Add(ref _usedBytes, -length);
    }

    /// <summary>Closes the arena and removes this worker's spill directory with every file in it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // The spiller stops at its next object; its directory must not go while it writes there.
        var deadline = Environment.TickCount64 + 5000;
        while (SpillerRunning && Environment.TickCount64 < deadline)
        {
            Thread.Sleep(1);
        }

        Arena.Dispose();
        _spill?.Dispose();
    }

    private bool TryCharge(long bytes) => TryCharge(ref _usedBytes, bytes, CapacityBytes);

    private bool TryChargeSpill(long bytes) => TryCharge(ref _spilledBytes, bytes, SpillCapacityBytes);

    private static bool TryCharge(ref long counter, long bytes, long capacity)
    {
        while (true)
        {
            var used = Volatile.Read(ref counter);
            if (bytes > capacity - used)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref counter, used + bytes, used) == used)
            {
                return true;
            }
        }
    }
}
