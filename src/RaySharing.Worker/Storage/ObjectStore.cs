namespace RaySharing.Worker.Storage;

/// <summary>
/// Accounts for the bytes of stored objects against the capacity. Space is reserved before a put's
/// bytes arrive, so a put that cannot fit fails before it transfers anything.
/// </summary>
internal sealed class ObjectStore
{
    private long _usedBytes;

    public ObjectStore(long capacityBytes)
    {
        CapacityBytes = capacityBytes;
    }

    public long CapacityBytes { get; }

    public long UsedBytes => Volatile.Read(ref _usedBytes);

    public bool TryReserve(long bytes)
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

    public void Release(long bytes) => Interlocked.Add(ref _usedBytes, -bytes);
}
