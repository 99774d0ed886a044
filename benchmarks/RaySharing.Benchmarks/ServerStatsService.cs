using System.Diagnostics;
using Grpc.Core;
using RaySharing.Benchmarks.V1;

namespace RaySharing.Benchmarks;

/// <summary>Benchmark only: the server process's CPU, allocation, GC and memory figures, read by the benchmark's client process.</summary>
internal sealed class ServerStatsService : ServerStats.ServerStatsBase
{
    public override Task<ServerSample> Sample(SampleRequest request, ServerCallContext context)
    {
        if (request.Collect)
        {
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        var heap = GC.GetTotalMemory(forceFullCollection: false);

        using var process = Process.GetCurrentProcess();
        return Task.FromResult(new ServerSample
        {
            CpuMicros = (long)Environment.CpuUsage.TotalTime.TotalMicroseconds,
            AllocatedBytes = GC.GetTotalAllocatedBytes(precise: false),
            GcPauseMicros = (long)GC.GetTotalPauseDuration().TotalMicroseconds,
            Gen0Collections = GC.CollectionCount(0),
            Gen2Collections = GC.CollectionCount(2),
            HeapBytes = heap,
            WorkingSetBytes = process.WorkingSet64,
        });
    }
}
