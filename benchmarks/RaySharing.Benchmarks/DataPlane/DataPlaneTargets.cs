using System.Globalization;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// One verdict line of the data-plane run. Measured is null when the figure does not exist: the path it needs is
/// not built yet (MISSING), or the run left out the size it needs (SKIPPED); neither is invented.
/// </summary>
internal sealed record DataPlaneTarget(string Name, double? Measured, string Goal, bool Pass, string? Absent = null, string? ReportOnly = null)
{
    public const string Missing = "MISSING";
    public const string Skipped = "SKIPPED";

    public string Verdict => Measured is null ? Absent ?? Missing : Pass ? "PASS" : "FAIL";

    /// <summary>
    /// <c>target name measured goal verdict</c>; a figure measured beside a goal that is not asked of it (<see cref="ReportOnly"/>
    /// says why) prints as <c>report name measured (goal ...: why)</c>, with no verdict.
    /// </summary>
    public string Line => ReportOnly is null
        ? string.Create(CultureInfo.InvariantCulture, $"target {Name} {Figure} {Goal} {Verdict}")
        : string.Create(CultureInfo.InvariantCulture, $"report {Name} {Figure} (goal {Goal}: {ReportOnly})");

    private string Figure => Measured is { } m ? m.ToString("0.00", CultureInfo.InvariantCulture) : "n/a";

    /// <summary>The same line, reported beside the goal rather than judged by it.</summary>
    public DataPlaneTarget Reported(string why) => this with { ReportOnly = why };

    /// <summary>Judged on the figure as printed, so a line never reads "0.80 &gt;=0.8 FAIL".</summary>
    public static DataPlaneTarget AtLeast(string name, Figure figure, double goal) =>
        new(name, figure.Value, $">={goal.ToString(CultureInfo.InvariantCulture)}", figure.Value is { } v && Math.Round(v, 2) >= goal, figure.Absent);

    public static DataPlaneTarget AtMost(string name, Figure figure, double goal) =>
        new(name, figure.Value, $"<={goal.ToString(CultureInfo.InvariantCulture)}", figure.Value is { } v && Math.Round(v, 2) <= goal, figure.Absent);
}

/// <summary>A measured figure, or why there is none (<see cref="DataPlaneTarget.Missing"/> or <see cref="DataPlaneTarget.Skipped"/>).</summary>
internal readonly record struct Figure(double? Value, string? Absent)
{
    public static Figure Of(double value) => new(value, null);

    public static Figure None(string why) => new(null, why);

    /// <summary>The ratio of two figures; absent when either is, MISSING winning over SKIPPED.</summary>
    public static Figure operator /(Figure a, Figure b) =>
        a.Value is { } x && b.Value is { } y
            ? Of(x / y)
            : None(a.Absent == DataPlaneTarget.Missing || b.Absent == DataPlaneTarget.Missing ? DataPlaneTarget.Missing : DataPlaneTarget.Skipped);

    public static Figure Max(Figure a, Figure b) =>
        a.Value is { } x && b.Value is { } y ? Of(Math.Max(x, y)) : a / b;
}

/// <summary>
/// The goals for the data plane, computed from one run. Targets of a named path carry its name (shm_,
/// bulk_ or a _shm suffix, as the issue names them); those asked of every path end in _&lt;path&gt;.
/// </summary>
internal static class DataPlaneTargets
{
    private const string GrpcIsThePortablePath = "asked of shared memory and the channel; gRPC is the unchanged portable path";

    public static IReadOnlyList<DataPlaneTarget> Compute(DataPlaneResults results)
    {
        const long M1 = DataPlaneSettings.MiB, M64 = 64 * DataPlaneSettings.MiB, G1 = DataPlaneSettings.GiB;
        var lookup = new Lookup(results);
        var memcpy = (long size) => lookup.Rate(Baselines.Memcpy, "copy", size);
        var targets = new List<DataPlaneTarget>
        {
            DataPlaneTarget.AtLeast("shm_get_lease_64m_vs_memcpy", lookup.Rate(DataPaths.ShmLease, "get", M64) / memcpy(M64), 0.8),
            DataPlaneTarget.AtLeast("shm_get_lease_1g_vs_memcpy", lookup.Rate(DataPaths.ShmLease, "get", G1) / memcpy(G1), 0.8),
            DataPlaneTarget.AtLeast("shm_get_array_1g_vs_shm_copy", lookup.Rate(DataPaths.Shm, DataPaths.GetArray, G1) / lookup.Rate(Baselines.ShmCopy, "get", G1), 0.8),
            DataPlaneTarget.AtLeast("shm_put_1g_vs_memcpy", lookup.Rate(DataPaths.Shm, "put", G1) / memcpy(G1), 0.5),
            DataPlaneTarget.AtLeast("bulk_get_1g_vs_socket", lookup.Rate(DataPaths.Bulk, "get", G1) / lookup.Rate(Baselines.Socket, "get", G1), 0.8),
            DataPlaneTarget.AtLeast("bulk_put_1g_vs_socket", lookup.Rate(DataPaths.Bulk, "put", G1) / lookup.Rate(Baselines.Socket, "put", G1), 0.8),
            DataPlaneTarget.AtMost("bulk_cpu_s_per_gib", Figure.Max(lookup.Cpu(DataPaths.Bulk, "get", G1), lookup.Cpu(DataPaths.Bulk, "put", G1)), 1.5),
        };
        foreach (var path in DataPaths.Planned)
        {
            // Asked of the same-host path and the bulk channel; gRPC's figure is shown beside the goal.
            var get64 = DataPlaneTarget.AtLeast($"get_64m_vs_redis_{path}", lookup.Rate(path, "get", M64) / lookup.Rate(RedisBaseline.Name, "get", M64), 2);
            targets.Add(path == DataPaths.Grpc ? get64.Reported(GrpcIsThePortablePath) : get64);
        }

        targets.Add(DataPlaneTarget.AtLeast("get_1m_vs_redis_shm", lookup.Rate(DataPaths.Shm, "get", M1) / lookup.Rate(RedisBaseline.Name, "get", M1), 2));
        targets.Add(DataPlaneTarget.AtLeast("get_1m_vs_redis_bulk", lookup.Rate(DataPaths.Bulk, "get", M1) / lookup.Rate(RedisBaseline.Name, "get", M1), 1.2));
        targets.Add(DataPlaneTarget.AtMost("worker_rss_1g_object_gib",
            results.Memory is { } m ? Figure.Of(m.WorkerGiBPerObjectGiB) : Figure.None(DataPlaneTarget.Skipped), 1.1));
        targets.Add(DataPlaneTarget.AtMost("client_peak_1g_get_over_object_mib",
            results.Memory is { } c ? Figure.Of(c.ClientPeakOverObjectMiB) : Figure.None(DataPlaneTarget.Skipped), 64));

        var redisSet = lookup.Latency(SmallCalls.RedisSet);
        var redisGet = lookup.Latency(SmallCalls.RedisGet);
        foreach (var path in results.Paths)
        {
            DataPlaneTarget[] small =
            [
                DataPlaneTarget.AtMost($"small_put_p50_vs_redis_set_{path}", lookup.Latency($"{path}-put") / redisSet, 2),
                DataPlaneTarget.AtMost($"small_get_p50_vs_redis_get_{path}", lookup.Latency($"{path}-get") / redisGet, 2),
                DataPlaneTarget.AtLeast($"small_put_32_vs_redis_{path}", lookup.Throughput($"{path}-put") / lookup.Throughput(SmallCalls.RedisSet), 0.5),
                DataPlaneTarget.AtLeast($"small_get_32_vs_redis_{path}", lookup.Throughput($"{path}-get") / lookup.Throughput(SmallCalls.RedisGet), 0.5),
            ];

            // The issue moves small calls onto the binary channel and keeps gRPC unchanged as the portable path:
            // its figures are shown beside the goal, not judged by it.
            targets.AddRange(path == DataPaths.Grpc ? small.Select(t => t.Reported(GrpcIsThePortablePath)) : small);
        }

        return targets;
    }

    private sealed class Lookup(DataPlaneResults results)
    {
        public Figure Rate(string name, string direction, long size) => Row(name, direction, size, r => r.MedianGBps);

        public Figure Cpu(string name, string direction, long size) => Row(name, direction, size, r => r.CpuSecondsPerGiB);

        public Figure Latency(string kind) =>
            results.Latency.FirstOrDefault(l => l.Kind == kind) is { } row ? Figure.Of(row.P50Micros) : Figure.None(DataPlaneTarget.Missing);

        public Figure Throughput(string kind) =>
            results.Throughput.FirstOrDefault(t => t.Kind == kind) is { } row ? Figure.Of(row.Median) : Figure.None(DataPlaneTarget.Missing);

        private Figure Row(string name, string direction, long size, Func<TransferResult, double> figure)
        {
            var row = results.Transfers.FirstOrDefault(r => r.Case.Name == name && r.Case.Direction == direction && r.Size == size);
            if (row is { Ran: true })
            {
                return Figure.Of(figure(row));
            }

            // A row that exists but was not run at this size, or a size left out: SKIPPED; a path not built: MISSING.
            var known = results.Transfers.Any(r => r.Case.Name == name) || results.Paths.Contains(name) || !DataPaths.Planned.Contains(name);
            return Figure.None(known ? DataPlaneTarget.Skipped : DataPlaneTarget.Missing);
        }
    }
}
