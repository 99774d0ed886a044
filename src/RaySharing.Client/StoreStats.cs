namespace RaySharing;

/// <summary>A snapshot of a worker's object store.</summary>
/// <param name="UsedBytes">Bytes held by live objects.</param>
/// <param name="CapacityBytes">The store's capacity, in bytes.</param>
/// <param name="Objects">Live objects.</param>
public sealed record StoreStats(long UsedBytes, long CapacityBytes, long Objects);

/// <summary>A snapshot of a worker: its store, and the sessions and holders it hosts.</summary>
/// <param name="Store">The object store's figures.</param>
/// <param name="Sessions">Open sessions.</param>
/// <param name="Holders">Live holders, all namespaces.</param>
public sealed record WorkerStats(StoreStats Store, int Sessions, int Holders);
