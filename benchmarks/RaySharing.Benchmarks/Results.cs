using System.Diagnostics;

namespace RaySharing.Benchmarks;

/// <summary>The per-call latencies of one kind across all rounds.</summary>
internal sealed class LatencyResult
{
    public LatencyResult(string kind, long[] ticks)
    {
        Kind = kind;
        Calls = ticks.Length;
        Array.Sort(ticks);
        P50Micros = Percentile(ticks, 0.50);
        P90Micros = Percentile(ticks, 0.90);
        P99Micros = Percentile(ticks, 0.99);
    }

    public string Kind { get; }

    public int Calls { get; }

    public double P50Micros { get; }

    public double P90Micros { get; }

    public double P99Micros { get; }

    /// <summary>Nearest-rank percentile of sorted timestamps deltas, in microseconds.</summary>
    private static double Percentile(long[] sorted, double p)
    {
        var rank = Math.Max(1, (int)Math.Ceiling(p * sorted.Length));
        return sorted[rank - 1] * 1e6 / Stopwatch.Frequency;
    }
}

/// <summary>What one process spent over a throughput window: CPU time, bytes allocated and GC pauses.</summary>
internal sealed record ProcessUsage(TimeSpan Cpu, long AllocatedBytes, TimeSpan GcPause);

/// <summary>
/// One throughput window: calls completed, the wall-clock time they took, and what the client process
/// (the callers) and the server process (the worker, or the echo service) spent on them.
/// </summary>
internal sealed record Window(long Calls, TimeSpan Elapsed, ProcessUsage Client, ProcessUsage Server)
{
    public double CallsPerSecond => Calls / Elapsed.TotalSeconds;
}

/// <summary>One process's cost per call over all rounds of one kind.</summary>
internal sealed class PerCall
{
    public PerCall(IReadOnlyList<Window> windows, Func<Window, ProcessUsage> process)
    {
        var calls = Math.Max(1, windows.Sum(w => w.Calls));
        CpuMicros = windows.Sum(w => process(w).Cpu.TotalMicroseconds) / calls;
        AllocatedBytes = windows.Sum(w => (double)process(w).AllocatedBytes) / calls;
        GcPauseShare = windows.Sum(w => process(w).GcPause.TotalSeconds) / windows.Sum(w => w.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// CPU time per call, in microseconds. Less sensitive to other processes than calls/s: when the cores
    /// are saturated, calls/s ≈ cores / (client + server CPU per call).
    /// </summary>
    public double CpuMicros { get; }

    /// <summary>Bytes allocated per call.</summary>
    public double AllocatedBytes { get; }

    /// <summary>The share of the windows' wall-clock time the process spent paused for garbage collection.</summary>
    public double GcPauseShare { get; }
}

/// <summary>Calls per second of one kind, one figure per round.</summary>
internal sealed class ThroughputResult(string kind, int callers, IReadOnlyList<Window> windows)
{
    public string Kind { get; } = kind;

    public int Callers { get; } = callers;

    public IReadOnlyList<double> PerRound { get; } = windows.Select(w => w.CallsPerSecond).ToList();

    /// <summary>The client process's cost per call: the callers and the RaySharing client or the gRPC channel.</summary>
    public PerCall Client { get; } = new(windows, w => w.Client);

    /// <summary>The server process's cost per call: the worker, or the echo service on the same Kestrel.</summary>
    public PerCall Server { get; } = new(windows, w => w.Server);

    public double Median
    {
        get
        {
            var sorted = PerRound.Order().ToArray();
            var middle = sorted.Length / 2;
            return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
        }
    }
}

/// <summary>One line of the verdict: a measured ratio against the goal.</summary>
internal sealed record Target(string Name, double Measured, string Goal, bool Pass)
{
    /// <summary>Judged on the figure as printed, so a line never reads "1.50 &lt;=1.5 FAIL".</summary>
    public static Target AtMost(string name, double measured, double goal) =>
        new(name, measured, $"<={goal.ToString(System.Globalization.CultureInfo.InvariantCulture)}", Math.Round(measured, 2) <= goal);

    public static Target AtLeast(string name, double measured, double goal) =>
        new(name, measured, $">={goal.ToString(System.Globalization.CultureInfo.InvariantCulture)}", Math.Round(measured, 2) >= goal);
}
