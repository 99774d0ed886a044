using System.Diagnostics;

namespace RaySharing.Benchmarks;

/// <summary>
/// What an owner's death costs: holder A is filled with registered 100-byte objects, then killed while
/// one caller keeps getting an object of holder B. Memory and GC figures are the server process's (the
/// worker's): its GC heap after a full, aggressive, compacting collection, and its working set.
/// </summary>
internal sealed record OwnerDeathResult(
    int Objects,
    TimeSpan FillTime,
    long HeapBeforeBytes,
    long HeapFilledBytes,
    long HeapAfterBytes,
    long WorkingSetBeforeBytes,
    long WorkingSetFilledBytes,
    long WorkingSetAfterBytes,
    TimeSpan KillCall,
    TimeSpan Reclaim,
    int GetsDuringReclaim,
    double GetP50Micros,
    double GetP99Micros,
    double GetMaxMicros,
    int GetsBeforeKill,
    double GetP99BeforeMicros,
    double GetMaxBeforeMicros,
    TimeSpan GcPauseDuringReclaim,
    int CollectionsDuringReclaim,
    int Gen2DuringReclaim)
{
    /// <summary>
    /// What the worker keeps per registered 100-byte object: its GC heap growth (the object's records) plus the
    /// payload's footprint in the store's arena, which is native memory outside the heap (the payload rounded up to
    /// the arena's 64-byte alignment).
    /// </summary>
    public double BytesPerObject => HeapBytesPerObject + ArenaBytesPerObject;

    /// <summary>The server process's GC heap growth per object: everything but the payload.</summary>
    public double HeapBytesPerObject => (HeapFilledBytes - HeapBeforeBytes) / (double)Objects;

    /// <summary>The payload's room in the arena.</summary>
    public static double ArenaBytesPerObject => (Workload.PayloadBytes + 63) / 64 * 64;

    /// <summary>The server process's working set per object, for comparison (includes the GC's free space and segments not yet returned).</summary>
    public double WorkingSetPerObject => (WorkingSetFilledBytes - WorkingSetBeforeBytes) / (double)Objects;

    public static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0)
        {
            return 0;
        }

        values.Sort();
        return values[Math.Max(1, (int)Math.Ceiling(p * values.Count)) - 1];
    }
}

/// <summary>Runs the owner-death phase against the workload's worker.</summary>
internal static class OwnerDeath
{
    public const int Batch = 1_000;
    public const int Fillers = 8;

    /// <summary>Gets on holder B are timed from this long before the kill, as the baseline.</summary>
    private static readonly TimeSpan Baseline = TimeSpan.FromMilliseconds(500);

    /// <summary>How long after the store's usage is back the memory is measured.</summary>
    public static readonly TimeSpan SettleAfterReclaim = TimeSpan.FromMilliseconds(200);

    public static async Task<OwnerDeathResult> RunAsync(Workload workload, int objects, TextWriter progress, CancellationToken cancellationToken)
    {
        var client = workload.Client;
        var usedBefore = (await client.GetStoreStatsAsync(cancellationToken).ConfigureAwait(false)).UsedBytes;
        var (heapBefore, setBefore) = await MemoryAsync(workload, cancellationToken).ConfigureAwait(false);
        var doomed = await client.GetOrCreateHolderAsync("bench-doomed", HolderLifetime.Detached, cancellationToken: cancellationToken).ConfigureAwait(false);

        // Fill A: each filler puts a batch, registers it under its own key, and drops its refs, as executors do.
        var fill = Stopwatch.StartNew();
        var payload = new byte[Workload.PayloadBytes];
        var next = -1;
        var batches = objects / Batch;
        var fillers = Enumerable.Range(0, Fillers).Select(_ => Task.Run(async () =>
        {
            var refs = new List<ObjectRef>(Batch);
            int batch;
            while ((batch = Interlocked.Increment(ref next)) < batches)
            {
                for (var i = 0; i < Batch; i++)
                {
                    refs.Add(await client.PutAsync(payload, doomed, cancellationToken).ConfigureAwait(false));
                }

                await doomed.RegisterAsync($"batch-{batch}", refs, cancellationToken).ConfigureAwait(false);
                await client.ReleaseAsync(refs, cancellationToken).ConfigureAwait(false);
                refs.Clear();
                if (batch % 100 == 99)
                {
                    progress.WriteLine($"owner death: {(batch + 1) * Batch:N0} of {objects:N0} objects registered");
                }
            }
        }, cancellationToken)).ToArray();
        await Task.WhenAll(fillers).ConfigureAwait(false);
        fill.Stop();
        var (heapFilled, setFilled) = await MemoryAsync(workload, cancellationToken).ConfigureAwait(false);

        // One caller gets B's object back to back; each get is stamped with its start.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var gets = new List<(long Start, long Ticks)>();
        var getter = Task.Run(async () =>
        {
            var none = new List<ObjectRef>();
            while (!stop.IsCancellationRequested)
            {
                var start = Stopwatch.GetTimestamp();
                await workload.GetAsync(none, cancellationToken).ConfigureAwait(false);
                gets.Add((start, Stopwatch.GetTimestamp() - start));
            }
        }, cancellationToken);

        await Task.Delay(Baseline, cancellationToken).ConfigureAwait(false);
        var server = await workload.SampleServerAsync(collect: false, cancellationToken).ConfigureAwait(false);
        var killed = Stopwatch.GetTimestamp();
        await doomed.KillAsync(cancellationToken).ConfigureAwait(false);
        var killCall = Stopwatch.GetElapsedTime(killed);
        while ((await client.GetStoreStatsAsync(cancellationToken).ConfigureAwait(false)).UsedBytes > usedBefore)
        {
            await Task.Delay(1, cancellationToken).ConfigureAwait(false);
        }

        var reclaimed = Stopwatch.GetTimestamp();
        var serverAfter = await workload.SampleServerAsync(collect: false, cancellationToken).ConfigureAwait(false);
        var gcPause = TimeSpan.FromMicroseconds(serverAfter.GcPauseMicros - server.GcPauseMicros);
        var (collections, gen2s) = (serverAfter.Gen0Collections - server.Gen0Collections, serverAfter.Gen2Collections - server.Gen2Collections);
        await stop.CancelAsync().ConfigureAwait(false);
        await getter.ConfigureAwait(false);
        // The reclaim trims the worker's tables just after its last batch gave the bytes back.
        await Task.Delay(SettleAfterReclaim, cancellationToken).ConfigureAwait(false);
        var (heapAfter, setAfter) = await MemoryAsync(workload, cancellationToken).ConfigureAwait(false);

        static double Micros(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
        var during = gets.Where(g => g.Start >= killed && g.Start <= reclaimed).Select(g => Micros(g.Ticks)).ToList();
        var before = gets.Where(g => g.Start < killed).Select(g => Micros(g.Ticks)).ToList();
        var max = during.Count == 0 ? 0 : during.Max();
        return new OwnerDeathResult(batches * Batch, fill.Elapsed, heapBefore, heapFilled, heapAfter, setBefore, setFilled, setAfter,
            killCall, Stopwatch.GetElapsedTime(killed, reclaimed), during.Count,
            OwnerDeathResult.Percentile(during, 0.50), OwnerDeathResult.Percentile(during, 0.99), max,
            before.Count, OwnerDeathResult.Percentile(before, 0.99), before.Count == 0 ? 0 : before.Max(),
            gcPause, collections, gen2s);
    }

    /// <summary>The server process's GC heap and working set after a full, aggressive, compacting collection.</summary>
    private static async Task<(long Heap, long WorkingSet)> MemoryAsync(Workload workload, CancellationToken cancellationToken)
    {
        var sample = await workload.SampleServerAsync(collect: true, cancellationToken).ConfigureAwait(false);
        return (sample.HeapBytes, sample.WorkingSetBytes);
    }
}
