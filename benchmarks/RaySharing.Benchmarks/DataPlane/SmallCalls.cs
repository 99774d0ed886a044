using System.Diagnostics;
using StackExchange.Redis;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>One kind of small call, and how to give back the refs its calls obtained.</summary>
internal sealed record SmallCallKind(string Name, TimedCall Call, Func<List<ObjectRef>, CancellationToken, Task> Release);

/// <summary>Concurrent calls per second of one kind, one figure per round.</summary>
internal sealed record SmallThroughput(string Kind, int Callers, IReadOnlyList<double> PerRound)
{
    public double Median => TransferResult.Median([.. PerRound]);
}

/// <summary>
/// 100-byte calls: sequential latency (p50/p90/p99 after a warm-up) and the rate of concurrent callers, for
/// the bare gRPC unary echo, Redis SET and GET, and each RaySharing path's put and get. Rounds rotate the
/// order of the kinds so that the machine's other load hits them all alike.
/// </summary>
internal sealed class SmallCalls(DataPlaneSettings settings, TextWriter progress)
{
    public const int PayloadBytes = Workload.PayloadBytes;

    public const string Echo = "echo";
    public const string RedisSet = "redis-set";
    public const string RedisGet = "redis-get";

    /// <summary>During a window, each caller releases its refs after this many puts, as the existing throughput phase does.</summary>
    private const int ReleaseBatch = 256;

    private const string RedisKey = "bench-small";

    private static readonly TimeSpan BlockTimeout = TimeSpan.FromMinutes(2);

    public static string Put(IDataPath path) => $"{path.Name}-put";

    public static string Get(IDataPath path) => $"{path.Name}-get";

    /// <summary>The kinds, with one object stored per path for the gets and the Redis key set.</summary>
    public static async Task<IReadOnlyList<SmallCallKind>> KindsAsync(Workload workload, IDatabase redis, IReadOnlyList<IDataPath> paths, CancellationToken cancellationToken)
    {
        var payload = new byte[PayloadBytes];
        new Random(42).NextBytes(payload);
        await redis.StringSetAsync(RedisKey, payload).WaitAsync(cancellationToken).ConfigureAwait(false);
        static Task None(List<ObjectRef> refs, CancellationToken cancellationToken) => Task.CompletedTask;
        var kinds = new List<SmallCallKind>
        {
            new(Echo, workload.EchoAsync, None),
            new(RedisSet, async (_, ct) => await redis.StringSetAsync(RedisKey, payload).WaitAsync(ct).ConfigureAwait(false), None),
            new(RedisGet, async (_, ct) => Check(RedisGet, ((byte[]?)await redis.StringGetAsync(RedisKey).WaitAsync(ct).ConfigureAwait(false))?.Length ?? 0), None),
        };
        foreach (var path in paths)
        {
            var stored = await path.PutAsync(payload, cancellationToken).ConfigureAwait(false);
            async Task Release(List<ObjectRef> refs, CancellationToken ct)
            {
                await path.ReleaseAsync(refs, ct).ConfigureAwait(false);
                refs.Clear();
            }

            kinds.Add(new(Put(path), async (obtained, ct) => obtained.Add(await path.PutAsync(payload, ct).ConfigureAwait(false)), Release));
            kinds.Add(new(Get(path), async (_, ct) => Check(Get(path), await path.GetAsync(stored, ct).ConfigureAwait(false)), None));
        }

        return kinds;
    }

    public async Task<IReadOnlyList<LatencyResult>> MeasureLatencyAsync(IReadOnlyList<SmallCallKind> kinds, CancellationToken cancellationToken)
    {
        progress.WriteLine($"small calls: warm-up of {settings.SmallWarmupCalls} calls of each kind");
        foreach (var kind in kinds)
        {
            await RunSequentialAsync(kind, settings.SmallWarmupCalls, samples: null, offset: 0, cancellationToken).ConfigureAwait(false);
        }

        var samples = kinds.Select(_ => new long[settings.SmallRounds * settings.SmallCallsPerRound]).ToArray();
        for (var round = 0; round < settings.SmallRounds; round++)
        {
            for (var j = 0; j < kinds.Count; j++)
            {
                var index = (j + round) % kinds.Count;
                await RunSequentialAsync(kinds[index], settings.SmallCallsPerRound, samples[index], round * settings.SmallCallsPerRound, cancellationToken).ConfigureAwait(false);
            }

            progress.WriteLine($"small calls: latency round {round + 1}/{settings.SmallRounds} done");
        }

        return kinds.Select((k, i) => new LatencyResult(k.Name, samples[i])).ToList();
    }

    public async Task<IReadOnlyList<SmallThroughput>> MeasureThroughputAsync(IReadOnlyList<SmallCallKind> kinds, CancellationToken cancellationToken)
    {
        // One short window each first: the thread pool grows and the contended paths tier up.
        foreach (var kind in kinds)
        {
            await RunWindowAsync(kind, settings.SmallWindow / 2, cancellationToken).ConfigureAwait(false);
        }

        var rates = kinds.Select(_ => new List<double>()).ToArray();
        for (var round = 0; round < settings.SmallRounds; round++)
        {
            for (var j = 0; j < kinds.Count; j++)
            {
                var index = (j + round) % kinds.Count;
                rates[index].Add(await RunWindowAsync(kinds[index], settings.SmallWindow, cancellationToken).ConfigureAwait(false));
            }

            progress.WriteLine($"small calls: {settings.Callers} callers, round {round + 1}/{settings.SmallRounds}: "
                + string.Join(", ", kinds.Select((k, i) => $"{k.Name} {rates[i][^1]:N0}/s")));
        }

        return kinds.Select((k, i) => new SmallThroughput(k.Name, settings.Callers, rates[i])).ToList();
    }

    private static void Check(string kind, long length)
    {
        if (length != PayloadBytes)
        {
            throw new InvalidOperationException($"A {kind} returned {length} bytes instead of {PayloadBytes}.");
        }
    }

    private static async Task RunSequentialAsync(SmallCallKind kind, int count, long[]? samples, int offset, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(BlockTimeout);
        var obtained = new List<ObjectRef>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await kind.Call(obtained, timeout.Token).ConfigureAwait(false);
                var elapsed = Stopwatch.GetTimestamp() - start;
                if (samples is not null)
                {
                    samples[offset + i] = elapsed;
                }

                if (obtained.Count >= ReleaseBatch * 4)
                {
                    // Outside the timed region.
                    await kind.Release(obtained, timeout.Token).ConfigureAwait(false);
                }
            }

            await kind.Release(obtained, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{count} sequential {kind.Name} calls did not finish within {BlockTimeout.TotalSeconds:0} s.", ex);
        }
    }

    /// <summary>Runs the callers for one window; returns the calls completed per second (releases are not counted).</summary>
    private async Task<double> RunWindowAsync(SmallCallKind kind, TimeSpan window, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(window + BlockTimeout);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var completed = new long[settings.Callers];
        var ended = new long[settings.Callers];
        long deadline = 0;
        var callers = new Task[settings.Callers];
        for (var i = 0; i < callers.Length; i++)
        {
            var caller = i;
            callers[caller] = Task.Run(async () =>
            {
                var obtained = new List<ObjectRef>();
                await gate.Task.ConfigureAwait(false);
                var calls = 0L;
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    await kind.Call(obtained, timeout.Token).ConfigureAwait(false);
                    calls++;
                    if (obtained.Count >= ReleaseBatch)
                    {
                        await kind.Release(obtained, timeout.Token).ConfigureAwait(false);
                    }
                }

                completed[caller] = calls;
                ended[caller] = Stopwatch.GetTimestamp();
                await kind.Release(obtained, timeout.Token).ConfigureAwait(false);
            }, timeout.Token);
        }

        var start = Stopwatch.GetTimestamp();
        deadline = start + (long)(window.TotalSeconds * Stopwatch.Frequency);
        gate.SetResult();
        try
        {
            // Up to each caller's last call, before its final release.
            await Task.WhenAll(callers).WaitAsync(timeout.Token).ConfigureAwait(false);
            return completed.Sum() / ((ended.Max() - start) / (double)Stopwatch.Frequency);
        }
        catch (Exception ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{settings.Callers} concurrent {kind.Name} callers did not finish a {window.TotalSeconds:0.0} s window within {BlockTimeout.TotalSeconds:0} s more.", ex);
        }
    }
}
