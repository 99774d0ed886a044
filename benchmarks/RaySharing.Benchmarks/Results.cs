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

/// <summary>
/// One throughput window: calls completed, and the wall-clock time, CPU time, bytes allocated and GC
/// pauses they took (this whole process: client and worker together).
/// </summary>
internal sealed record Window(long Calls, TimeSpan Elapsed, TimeSpan Cpu, long AllocatedBytes, TimeSpan GcPause)
{
    public double CallsPerSecond => Calls / Elapsed.TotalSeconds;
}

/// <summary>Calls per second of one kind, one figure per round.</summary>
internal sealed class ThroughputResult(string kind, int callers, IReadOnlyList<Window> windows)
{
    public string Kind { get; } = kind;

    public int Callers { get; } = callers;

    public IReadOnlyList<double> PerRound { get; } = windows.Select(w => w.CallsPerSecond).ToList();

    /// <summary>
    /// CPU time per call over all rounds, client and worker together, in microseconds. Less sensitive
    /// to other processes than calls/s: when the cores are saturated, calls/s ≈ cores / this.
    /// </summary>
    public double CpuMicrosPerCall { get; } = windows.Sum(w => w.Cpu.TotalMicroseconds) / Math.Max(1, windows.Sum(w => w.Calls));

    /// <summary>Bytes allocated per call over all rounds, client and worker together.</summary>
    public double AllocatedBytesPerCall { get; } = windows.Sum(w => (double)w.AllocatedBytes) / Math.Max(1, windows.Sum(w => w.Calls));

    /// <summary>The share of the windows' wall-clock time the process spent paused for garbage collection.</summary>
    public double GcPauseShare { get; } = windows.Sum(w => w.GcPause.TotalSeconds) / windows.Sum(w => w.Elapsed.TotalSeconds);

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
