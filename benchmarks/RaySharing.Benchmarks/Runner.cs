using System.Diagnostics;

namespace RaySharing.Benchmarks;

/// <summary>
/// Runs the phases. Kinds are interleaved (rounds, with a rotated or alternating order) so that
/// whatever else the machine does hits the baseline and RaySharing alike.
/// </summary>
internal sealed class Runner(Workload workload, BenchmarkSettings settings, TextWriter progress)
{
    public const string Echo = "echo";

    public const string Put = "put";

    /// <summary>During a throughput window, each caller releases its refs after this many puts.</summary>
    public const int WindowReleaseBatch = 256;

    private const int WarmupBlock = 250;
    private const int MaxWarmupPairs = 8;

    /// <summary>Generous bounds: a block that has not finished by then is hung, not slow.</summary>
    private static readonly TimeSpan BlockTimeout = TimeSpan.FromMinutes(2);

    private static readonly TimeSpan WarmupWindow = TimeSpan.FromSeconds(1);

    public async Task<IReadOnlyList<LatencyResult>> MeasureLatencyAsync(CancellationToken cancellationToken)
    {
        (string Kind, TimedCall Call)[] kinds =
        [
            (Echo, workload.EchoAsync),
            (Put, workload.PutAsync),
            ("fetch", workload.FetchAsync),
            ("get", workload.GetAsync),
        ];

        // By count and by time: the JIT promotes hot methods to optimized code only after a quiet spell,
        // so on a busy machine a fixed number of calls can end before the code is fully optimized.
        progress.WriteLine($"warm-up: at least {settings.WarmupCalls} calls of each kind and {settings.WarmupTime.TotalSeconds:0} s");
        var warmupEnd = Stopwatch.GetTimestamp() + (long)(settings.WarmupTime.TotalSeconds * Stopwatch.Frequency);
        for (var done = 0; done < settings.WarmupCalls || Stopwatch.GetTimestamp() < warmupEnd; done += WarmupBlock)
        {
            foreach (var (kind, call) in kinds)
            {
                await RunSequentialAsync(kind, call, WarmupBlock, samples: null, offset: 0, cancellationToken).ConfigureAwait(false);
            }
        }

        var samples = kinds.Select(_ => new long[settings.LatencyRounds * settings.CallsPerRound]).ToArray();
        for (var round = 0; round < settings.LatencyRounds; round++)
        {
            for (var j = 0; j < kinds.Length; j++)
            {
                var index = (j + round) % kinds.Length;
                var (kind, call) = kinds[index];
                await RunSequentialAsync(kind, call, settings.CallsPerRound, samples[index], round * settings.CallsPerRound, cancellationToken).ConfigureAwait(false);
            }

            progress.WriteLine($"latency round {round + 1}/{settings.LatencyRounds} done");
        }

        return kinds.Select((k, i) => new LatencyResult(k.Kind, samples[i])).ToList();
    }

    public async Task<IReadOnlyList<ThroughputResult>> MeasureThroughputAsync(CancellationToken cancellationToken)
    {
        // Concurrency takes its own warm-up (thread pool growth, the JIT's tiering of the contended paths):
        // 1 s windows until both rates settle within 10% of the previous pair's.
        double lastEcho = 0, lastPut = 0;
        for (var pair = 1; pair <= MaxWarmupPairs; pair++)
        {
            var echoRate = (await RunWindowAsync(Echo, workload.EchoAsync, WarmupWindow, cancellationToken).ConfigureAwait(false)).CallsPerSecond;
            var putRate = (await RunWindowAsync(Put, workload.PutAsync, WarmupWindow, cancellationToken).ConfigureAwait(false)).CallsPerSecond;
            progress.WriteLine($"warm-up {pair}: {settings.Callers} concurrent callers, echo {echoRate:N0}/s, put {putRate:N0}/s");
            if (pair >= 2 && Math.Abs(echoRate - lastEcho) <= 0.1 * echoRate && Math.Abs(putRate - lastPut) <= 0.1 * putRate)
            {
                break;
            }

            (lastEcho, lastPut) = (echoRate, putRate);
        }

        var echo = new List<Window>();
        var put = new List<Window>();
        for (var round = 0; round < settings.ThroughputRounds; round++)
        {
            // Alternate which side goes first, so a trend in the machine's load favours neither.
            if (round % 2 == 0)
            {
                echo.Add(await RunWindowAsync(Echo, workload.EchoAsync, settings.Window, cancellationToken).ConfigureAwait(false));
                put.Add(await RunWindowAsync(Put, workload.PutAsync, settings.Window, cancellationToken).ConfigureAwait(false));
            }
            else
            {
                put.Add(await RunWindowAsync(Put, workload.PutAsync, settings.Window, cancellationToken).ConfigureAwait(false));
                echo.Add(await RunWindowAsync(Echo, workload.EchoAsync, settings.Window, cancellationToken).ConfigureAwait(false));
            }

            progress.WriteLine($"throughput round {round + 1}/{settings.ThroughputRounds}: echo {echo[^1].CallsPerSecond:N0}/s, put {put[^1].CallsPerSecond:N0}/s");
        }

        return [new ThroughputResult(Echo, settings.Callers, echo), new ThroughputResult(Put, settings.Callers, put)];
    }

    private async Task RunSequentialAsync(string kind, TimedCall call, int count, long[]? samples, int offset, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(BlockTimeout);
        var obtained = new List<ObjectRef>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await call(obtained, timeout.Token).ConfigureAwait(false);
                var elapsed = Stopwatch.GetTimestamp() - start;
                if (samples is not null)
                {
                    samples[offset + i] = elapsed;
                }
            }

            // Outside the timed region: the refs each call obtained go back in batches.
            await workload.ReleaseAsync(obtained, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // Whatever the cancellation surfaced as (OperationCanceledException, RpcException Cancelled, a RaySharing timeout).
            throw new TimeoutException($"{count} sequential {kind} calls did not finish within {BlockTimeout.TotalSeconds:0} s.", ex);
        }
    }

    /// <summary>Runs the callers for one window; returns the calls completed (releases are not counted) and what they took.</summary>
    private async Task<Window> RunWindowAsync(string kind, TimedCall call, TimeSpan window, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(window + BlockTimeout);
        // The server's counters are read just outside the window: one small call each side, against thousands in it.
        var server = await workload.SampleServerAsync(collect: false, timeout.Token).ConfigureAwait(false);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var obtained = new List<ObjectRef>[settings.Callers];
        var completed = new long[settings.Callers];
        long deadline = 0;
        var callers = new Task[settings.Callers];
        for (var i = 0; i < callers.Length; i++)
        {
            var caller = i;
            obtained[caller] = [];
            callers[caller] = Task.Run(async () =>
            {
                await gate.Task.ConfigureAwait(false);
                // deadline is written before the gate opens, and the gate orders the read after it.
                var calls = 0L;
                while (Stopwatch.GetTimestamp() < deadline)
                {
                    await call(obtained[caller], timeout.Token).ConfigureAwait(false);
                    calls++;
                    // Steady state, as in a long-lived store: objects are freed about as fast as they are put,
                    // so the live set stays small instead of growing with the window. One release per batch
                    // is a fraction of a percent of the calls, and is not counted as one.
                    if (obtained[caller].Count >= WindowReleaseBatch)
                    {
                        await workload.ReleaseAsync(obtained[caller], timeout.Token).ConfigureAwait(false);
                    }
                }

                completed[caller] = calls;
            }, timeout.Token);
        }

        var cpu = Environment.CpuUsage.TotalTime;
        var allocated = GC.GetTotalAllocatedBytes(precise: false);
        var paused = GC.GetTotalPauseDuration();
        var start = Stopwatch.GetTimestamp();
        deadline = start + (long)(window.TotalSeconds * Stopwatch.Frequency);
        gate.SetResult();
        try
        {
            await Task.WhenAll(callers).WaitAsync(timeout.Token).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(start);
            var client = new ProcessUsage(Environment.CpuUsage.TotalTime - cpu,
                GC.GetTotalAllocatedBytes(precise: false) - allocated, GC.GetTotalPauseDuration() - paused);
            var serverAfter = await workload.SampleServerAsync(collect: false, timeout.Token).ConfigureAwait(false);
            var result = new Window(completed.Sum(), elapsed, client, new ProcessUsage(
                TimeSpan.FromMicroseconds(serverAfter.CpuMicros - server.CpuMicros),
                serverAfter.AllocatedBytes - server.AllocatedBytes,
                TimeSpan.FromMicroseconds(serverAfter.GcPauseMicros - server.GcPauseMicros)));
            foreach (var refs in obtained)
            {
                await workload.ReleaseAsync(refs, timeout.Token).ConfigureAwait(false);
            }

            return result;
        }
        catch (Exception ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{settings.Callers} concurrent {kind} callers did not finish a {window.TotalSeconds:0.0} s window within {BlockTimeout.TotalSeconds:0} s more.", ex);
        }
    }
}
