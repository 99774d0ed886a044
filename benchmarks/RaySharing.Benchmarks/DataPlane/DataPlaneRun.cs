using System.Diagnostics;
using RaySharing.Testing;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// The data-plane benchmark (<c>--data-plane</c>): large objects moved by memcpy, shared memory, raw TCP, bare
/// gRPC streaming, Redis and each RaySharing path, side by side in one run; then 100-byte calls.
/// </summary>
internal static class DataPlaneRun
{
    /// <summary>A row that has not finished by then is hung, not slow.</summary>
    private static readonly TimeSpan RowTimeout = TimeSpan.FromMinutes(5);

    public static async Task<int> RunAsync(string[] args)
    {
        var settings = DataPlaneSettings.Parse(args, out var error);
        if (settings is null)
        {
            Console.Error.WriteLine(error);
            Console.Error.WriteLine(DataPlaneSettings.Usage);
            return 2;
        }

        using var scope = RunScope.Begin(TimeSpan.FromMinutes(30));
        var run = scope.Token;
        try
        {
            var (machine, started, clock, noise) = (scope.Machine, scope.Started, scope.Clock, scope.Noise);
            var progress = Console.Error;

            await using var redis = await RedisServer.StartAsync(progress, run).ConfigureAwait(false);
            Workload workload;
            using (var startup = CancellationTokenSource.CreateLinkedTokenSource(run))
            {
                startup.CancelAfter(TimeSpan.FromSeconds(30));
                workload = await Workload.StartAsync(useChannel: true, startup.Token).ConfigureAwait(false);
            }

            DataPlaneResults results;
            TimeSpan serverCpu;
            try
            {
                results = await MeasureAsync(settings, workload, redis, progress, run).ConfigureAwait(false);
                serverCpu = TimeSpan.FromMicroseconds((await workload.SampleServerAsync(collect: false, run).ConfigureAwait(false)).CpuMicros);
            }
            finally
            {
                await workload.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }

            noise.Stop(serverCpu);
            var report = new DataPlaneReport(settings, machine, noise, started, clock.Elapsed, redis.Version, results);
            Console.WriteLine();
            Console.Write(report.ToConsole());
            if (settings.OutPath is { } path)
            {
                await File.WriteAllTextAsync(path, report.ToMarkdown(), run).ConfigureAwait(false);
                Console.Error.WriteLine($"wrote {Path.GetFullPath(path)}");
            }

            return 0;
        }
        catch (RedisUnavailableException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"The data-plane benchmark failed: {ex}");
            return 1;
        }
    }

    private static async Task<DataPlaneResults> MeasureAsync(DataPlaneSettings settings, Workload workload, RedisServer redis, TextWriter progress, CancellationToken cancellationToken)
    {
        var portLine = await workload.Server.WaitForLineAsync(RawSocketServer.PortPrefix, TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        var socketPort = int.Parse(portLine[RawSocketServer.PortPrefix.Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var server = new ProcessProbe("server", workload.Server.Id,
            async ct => TimeSpan.FromMicroseconds((await workload.SampleServerAsync(collect: false, ct).ConfigureAwait(false)).CpuMicros));
        var paths = await DataPaths.CreateAsync(workload, cancellationToken).ConfigureAwait(false);

        // Small calls first, while neither process has seen a large object.
        var small = new SmallCalls(settings, progress);
        var kinds = await SmallCalls.KindsAsync(workload, redis.Database, paths, cancellationToken).ConfigureAwait(false);
        var latency = await small.MeasureLatencyAsync(kinds, cancellationToken).ConfigureAwait(false);
        var throughput = await small.MeasureThroughputAsync(kinds, cancellationToken).ConfigureAwait(false);

        TransferCase[] cases =
        [
            .. Baselines.Create(workload, socketPort, server),
            .. RedisBaseline.Create(redis),
            .. paths.SelectMany(path => DataPaths.Cases(path, server)),
        ];
        var transfers = new List<TransferResult>();
        MemoryResult? memory = null;
        foreach (var size in settings.Sizes)
        {
            foreach (var transferCase in cases)
            {
                var result = await MeasureAsync(settings, workload, transferCase, size, cancellationToken).ConfigureAwait(false);
                transfers.Add(result);
                progress.WriteLine(result.Ran
                    ? $"{DataPlaneSettings.SizeName(size),-7} {transferCase.Label,-18} {result.MedianGBps,7:0.00} GB/s  {result.CpuSecondsPerGiB,6:0.00} CPU s/GiB"
                    : $"{DataPlaneSettings.SizeName(size),-7} {transferCase.Label,-18} skipped: {transferCase.TooLargeReason}");
            }

            if (size == DataPlaneSettings.GiB)
            {
                await ProcessSettle.BothAsync(workload, cancellationToken).ConfigureAwait(false);
                memory = await MemoryProbes.MeasureAsync(workload, workload.Client, paths.First(p => p.Name == DataPaths.Shm), server, size, cancellationToken).ConfigureAwait(false);
                progress.WriteLine($"1 GiB object through {memory.Path}: worker +{memory.WorkerGiBPerObjectGiB:0.00} GiB per GiB held, client peak {memory.ClientPeakOverObjectMiB:0} MiB over the object during a get");
            }
        }

        return new DataPlaneResults(paths.Select(p => p.Name).ToList(), transfers, memory, latency, throughput);
    }

    /// <summary>
    /// One row at one size: both processes settled, peaks reset, the transfer prepared and warmed up, then the
    /// timed repetitions with the CPU time of the client and of the serving process read around them.
    /// </summary>
    private static async Task<TransferResult> MeasureAsync(DataPlaneSettings settings, Workload workload, TransferCase transferCase, long size, CancellationToken cancellationToken)
    {
        if (size > transferCase.MaxBytes)
        {
            return TransferResult.NotRun(transferCase, size);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RowTimeout);
        try
        {
            await ProcessSettle.BothAsync(workload, timeout.Token).ConfigureAwait(false);
            var client = ProcessProbe.Self;
            var server = transferCase.Server;
            client.ResetPeak();
            server?.ResetPeak();
            var clientStart = client.ResidentBytes();
            var serverStart = server?.ResidentBytes();
            var times = new List<TimeSpan>();
            TimeSpan clientCpu;
            TimeSpan? serverCpu = null;
            int gen0, gen2;
            IReadOnlyList<CpuSample>? repetitionCpu;
            await using (var transfer = await transferCase.Prepare(size, timeout.Token).ConfigureAwait(false))
            {
                for (var i = 0; i < settings.Warmups(size); i++)
                {
                    await transfer.RunOnceAsync(timeout.Token).ConfigureAwait(false);
                }

                var serverBefore = server is null ? TimeSpan.Zero : await server.CpuAsync(timeout.Token).ConfigureAwait(false);
                var clientBefore = await client.CpuAsync(timeout.Token).ConfigureAwait(false);
                (gen0, gen2) = (GC.CollectionCount(0), GC.CollectionCount(2));
                var spent = TimeSpan.Zero;
                var perRepetition = settings.CpuPerRepetition(size) ? new List<CpuSample>() : null;
                for (var i = 0; i < settings.Repetitions(size) && (i < settings.MinRepetitions(size) || spent < settings.RowBudget); i++)
                {
                    var (clientAt, serverAt) = perRepetition is null ? default : await CpuNowAsync(client, server, timeout.Token).ConfigureAwait(false);
                    times.Add(await transfer.RunOnceAsync(timeout.Token).ConfigureAwait(false));
                    spent += times[^1];
                    if (perRepetition is not null)
                    {
                        var (clientNow, serverNow) = await CpuNowAsync(client, server, timeout.Token).ConfigureAwait(false);
                        perRepetition.Add(new CpuSample(clientNow - clientAt, serverNow - serverAt));
                    }
                }

                repetitionCpu = perRepetition;

                clientCpu = await client.CpuAsync(timeout.Token).ConfigureAwait(false) - clientBefore;
                (gen0, gen2) = (GC.CollectionCount(0) - gen0, GC.CollectionCount(2) - gen2);
                if (server is not null)
                {
                    serverCpu = await server.CpuAsync(timeout.Token).ConfigureAwait(false) - serverBefore;
                }
            }

            return new TransferResult(transferCase, size, times, clientCpu, serverCpu,
                new Resident(clientStart, client.PeakBytes()), server is null ? null : new Resident(serverStart!.Value, server.PeakBytes()), gen0, gen2, repetitionCpu);
        }
        catch (Exception ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"The {transferCase.Label} row at {DataPlaneSettings.SizeName(size)} did not finish within {RowTimeout.TotalMinutes:0} minutes.", ex);
        }
    }

    private static async Task<(TimeSpan Client, TimeSpan Server)> CpuNowAsync(ProcessProbe client, ProcessProbe? server, CancellationToken cancellationToken) =>
        (await client.CpuAsync(cancellationToken).ConfigureAwait(false),
         server is null ? TimeSpan.Zero : await server.CpuAsync(cancellationToken).ConfigureAwait(false));
}

/// <summary>Everything one data-plane run measured.</summary>
internal sealed record DataPlaneResults(
    IReadOnlyList<string> Paths,
    IReadOnlyList<TransferResult> Transfers,
    MemoryResult? Memory,
    IReadOnlyList<LatencyResult> Latency,
    IReadOnlyList<SmallThroughput> Throughput);
