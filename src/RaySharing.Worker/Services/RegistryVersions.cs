namespace RaySharing.Worker.Services;

/// <summary>
/// Tells a fetch read in pages whether its key's list was unregistered (and maybe registered again)
/// between two pages, so that no reader mixes two lists. A list only grows while its key exists, so an
/// unregister is the one change that breaks a paged read.
/// </summary>
/// <remarks>
/// Counters per stripe of (holder name, key), not per list: fixed memory, nothing to clean up, and no
/// change to the ownership graph. Two keys sharing a stripe only cost a reader a needless restart. Two
/// counters, not one, because unregisters of one stripe may run at once: a reader's version is valid only
/// when every unregister it counts has finished.
/// </remarks>
internal sealed class RegistryVersions
{
    private const int Stripes = 4096;

    private readonly long[] _started = new long[Stripes];
    private readonly long[] _finished = new long[Stripes];

    /// <summary>The version a first page hands out: pages after it must still see it. <see cref="Never"/> while an unregister runs.</summary>
    public const ulong Never = ulong.MaxValue;

    public static int StripeOf(string holderName, string key) => (int)((uint)HashCode.Combine(holderName, key) % Stripes);

    /// <summary>Marks an unregister of the stripe's keys as begun; dispose the result when it has ended.</summary>
    public Change BeginChange(int stripe)
    {
        Interlocked.Increment(ref _started[stripe]);
        return new Change(this, stripe);
    }

    /// <summary>Read before a first page: the version it names, or <see cref="Never"/> while an unregister of the stripe runs.</summary>
    public ulong VersionBeforeFirstPage(int stripe)
    {
        // Finished first: a version is handed out only when every unregister it counts had ended before the page was read.
        var finished = Volatile.Read(ref _finished[stripe]);
        var started = Volatile.Read(ref _started[stripe]);
        return started == finished ? (ulong)started : Never;
    }

    /// <summary>True when no unregister of the stripe has begun since <paramref name="version"/> was handed out.</summary>
    public bool Unchanged(int stripe, ulong version) => version != Never && (ulong)Volatile.Read(ref _started[stripe]) == version;

    public readonly struct Change(RegistryVersions versions, int stripe) : IDisposable
    {
        public void Dispose() => Interlocked.Increment(ref versions._finished[stripe]);
    }
}
