using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Hosting;

/// <summary>
/// Gives memory back to the operating system after a large part of the worker's objects is freed (a holder
/// of a million objects killed, a key of millions of refs unregistered). The GC keeps the pages of a shrunken
/// heap for reuse; an aggressive, compacting collection decommits them. It is a full blocking collection, but of
/// a heap that has just become small, and it runs only after such a drop, never on the call path.
/// </summary>
internal sealed class MemoryReturner(OwnershipGraph graph, TimeProvider time, ILogger<MemoryReturner> logger) : BackgroundService
{
    /// <summary>How often the worker looks at its counts.</summary>
    internal static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);

    /// <summary>Fewer objects than this freed since the peak are not worth a full collection.</summary>
    internal const long MinFreedObjects = 100_000;

    /// <summary>Fewer store bytes than this freed since the peak are not worth a full collection.</summary>
    internal const long MinFreedBytes = 256L << 20;

    private long _peakObjects;
    private long _peakBytes;

    /// <summary>
    /// True when the worker has dropped to at most half of its peak in objects or store bytes, by at least
    /// <see cref="MinFreedObjects"/> objects or <see cref="MinFreedBytes"/> bytes: the heap holds much less than
    /// its pages, and a compacting collection returns the difference.
    /// </summary>
    internal static bool ShouldReturn(long peakObjects, long objects, long peakBytes, long bytes) =>
        (peakObjects - objects >= MinFreedObjects && objects <= peakObjects / 2)
        || (peakBytes - bytes >= MinFreedBytes && bytes <= peakBytes / 2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(CheckInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                Check();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One look at the counts; returns whether it collected.</summary>
    internal bool Check()
    {
        var stats = graph.Stats();
        _peakObjects = Math.Max(_peakObjects, stats.Objects);
        _peakBytes = Math.Max(_peakBytes, stats.UsedBytes);
        // Wait while a dead owner is still being reclaimed: collecting halfway would leave the rest's pages behind.
        if (graph.Reclaiming || !ShouldReturn(_peakObjects, stats.Objects, _peakBytes, stats.UsedBytes))
        {
            return false;
        }

        var before = GC.GetTotalMemory(forceFullCollection: false);
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        WorkerLog.MemoryReturned(logger, _peakObjects, stats.Objects, before >> 20, GC.GetTotalMemory(forceFullCollection: false) >> 20);
        _peakObjects = stats.Objects;
        _peakBytes = stats.UsedBytes;
        return true;
    }
}
