using System.Diagnostics;
using RaySharing.Benchmarks;
using RaySharing.Benchmarks.DataPlane;
using RaySharing.Testing;

// The same executable started again as the server process: the worker and the echo baseline.
if (args is [Serve.Mode])
{
    return await Serve.RunAsync();
}

// The data-plane benchmark: large objects against memcpy, shared memory, sockets, gRPC streaming and Redis.
if (args.Contains(DataPlaneSettings.Flag))
{
    return await DataPlaneRun.RunAsync(args);
}

// The cluster benchmark's measuring side, started by it inside a host.
if (args is [RaySharing.Benchmarks.Cluster.ClusterRun.ClientMode, ..])
{
    return await RaySharing.Benchmarks.Cluster.ClusterRun.RunClientAsync(args);
}

// The cluster benchmark: workers on hosts made of network namespaces (root needed).
if (args.Contains(RaySharing.Benchmarks.Cluster.ClusterRun.Flag))
{
    return await RaySharing.Benchmarks.Cluster.ClusterRun.RunAsync(args);
}

// The Python client against the .NET client, on one worker process.
if (args.Contains(RaySharing.Benchmarks.CrossLanguage.PythonRun.Flag))
{
    return await RaySharing.Benchmarks.CrossLanguage.PythonRun.RunAsync(args);
}

// A report, not a test: exit code 0 whatever the verdict, non-zero only when the run itself fails.
var settings = BenchmarkSettings.Parse(args, out var error);
if (settings is null)
{
    Console.Error.WriteLine(error);
    Console.Error.WriteLine(BenchmarkSettings.Usage);
    return 2;
}

// Bounds the whole run; every phase has a tighter bound of its own.
using var scope = RunScope.Begin(TimeSpan.FromMinutes(20));
var run = scope.Token;

try
{
    var (machine, started, clock, noise) = (scope.Machine, scope.Started, scope.Clock, scope.Noise);
    IReadOnlyList<LatencyResult> latency;
    IReadOnlyList<ThroughputResult> throughput;
    long objectsLeft;
    TimeSpan serverCpu;
    OwnerDeathResult? ownerDeath = null;

    Workload workload;
    using (var startup = CancellationTokenSource.CreateLinkedTokenSource(run))
    {
        startup.CancelAfter(TimeSpan.FromSeconds(30));
        workload = await Workload.StartAsync(useChannel: false, startup.Token);
    }

    try
    {
        var runner = new Runner(workload, settings, Console.Error);
        latency = await runner.MeasureLatencyAsync(run);
        throughput = await runner.MeasureThroughputAsync(run);
        objectsLeft = await workload.StoredObjectsAsync(run);
        // Last: it fills the server's heap with a million objects, which would weigh on the phases before it.
        if (settings.OwnerDeathObjects > 0)
        {
            ownerDeath = await OwnerDeath.RunAsync(workload, settings.OwnerDeathObjects, Console.Error, run);
        }

        serverCpu = TimeSpan.FromMicroseconds((await workload.SampleServerAsync(collect: false, run)).CpuMicros);
    }
    finally
    {
        await workload.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
    }

    noise.Stop(serverCpu);
    var report = new Report(settings, machine, noise, started, clock.Elapsed, latency, throughput, objectsLeft, ownerDeath);
    Console.WriteLine();
    Console.Write(report.ToConsole());
    if (settings.OutPath is { } path)
    {
        await File.WriteAllTextAsync(path, report.ToMarkdown(), run);
        Console.Error.WriteLine($"wrote {Path.GetFullPath(path)}");
    }

    return 0;
}
catch (Exception ex)
{
    Console.Error.WriteLine($"The benchmark failed: {ex}");
    return 1;
}
