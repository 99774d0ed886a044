namespace RaySharing;

/// <summary>A snapshot of a worker's object store.</summary>
/// <param name="UsedBytes">Bytes held by live objects.</param>
/// <param name="CapacityBytes">The store's capacity.</param>
/// <param name="Objects">Live objects.</param>
/// <param name="Sessions">Open sessions.</param>
/// <param name="Holders">Live holders, all namespaces.</param>
public sealed record StoreStats(long UsedBytes, long CapacityBytes, long Objects, int Sessions, int Holders);
