namespace RaySharing;

/// <summary>A snapshot of a worker's object store.</summary>
/// <param name="UsedBytes">Bytes of live objects in memory (the shared-memory arena, or the worker's private one).</param>
/// <param name="CapacityBytes">The store's memory capacity, in bytes.</param>
/// <param name="Objects">Live objects, in memory or spilled.</param>
public sealed record StoreStats(long UsedBytes, long CapacityBytes, long Objects)
{
    /// <summary>Bytes of live objects moved to spill files to make room (0 when spilling is off); a get brings them back.</summary>
    public long SpilledBytes { get; init; }

    /// <summary>The worker's spill limit in bytes (<c>--spill-capacity-mb</c>); 0 when spilling is off.</summary>
    public long SpillCapacityBytes { get; init; }
}

/// <summary>A snapshot of a worker: its store, and the sessions and holders it hosts.</summary>
/// <param name="Store">The object store's figures.</param>
/// <param name="Sessions">Open sessions.</param>
/// <param name="Holders">Live holders, all namespaces.</param>
public sealed record WorkerStats(StoreStats Store, int Sessions, int Holders);
