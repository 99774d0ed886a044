using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using System.Runtime.InteropServices;

namespace RaySharing.Benchmarks;

/// <summary>What the figures were measured on, so that a reader can tell whether two runs compare.</summary>
internal sealed class Machine
{
    public int Cores { get; } = Environment.ProcessorCount;

    public string Cpu { get; } = ReadCpuModel() ?? RuntimeInformation.ProcessArchitecture.ToString();

    public string Os { get; } = RuntimeInformation.OSDescription;

    public string Runtime { get; } = RuntimeInformation.FrameworkDescription;

    public string Gc { get; } = GCSettings.IsServerGC ? "server" : $"workstation{(GCSettings.LatencyMode == GCLatencyMode.Batch ? string.Empty : ", concurrent")}";

#if DEBUG
    public string Configuration { get; } = "Debug";
#else
    public string Configuration { get; } = "Release";
#endif

    private static string? ReadCpuModel()
    {
        try
        {
            return File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}

/// <summary>
/// How busy the machine was with other work during the run: the CPU time every other process used,
/// as a share of all cores (Linux only; from /proc/stat and the CPU time of the client and server processes).
/// </summary>
internal sealed class Noise
{
    private readonly long _startBusyTicks;
    private readonly long _startTotalTicks;
    private readonly TimeSpan _startOwnCpu;
    private readonly string? _startLoad;

    private Noise()
    {
        (_startBusyTicks, _startTotalTicks) = ReadProcStat();
        _startOwnCpu = Process.GetCurrentProcess().TotalProcessorTime;
        _startLoad = ReadLoadAverage();
    }

    /// <summary>Share of the machine's CPU that other processes used, 0 to 1; null where it cannot be read.</summary>
    public double? OthersShare { get; private set; }

    /// <summary>Share of the machine's CPU the benchmark's processes (client and server) used, 0 to 1; null where it cannot be read.</summary>
    public double? OwnShare { get; private set; }

    public string LoadAverage { get; private set; } = "n/a";

    public static Noise Start() => new();

    /// <param name="serverCpu">The server process's CPU time; it started after this sample, so all of it falls within the run.</param>
    public void Stop(TimeSpan serverCpu)
    {
        var (busy, total) = ReadProcStat();
        var ownSeconds = (Process.GetCurrentProcess().TotalProcessorTime - _startOwnCpu + serverCpu).TotalSeconds;
        var clockTicks = 100.0; // USER_HZ, 100 on every mainstream Linux
        if (total > _startTotalTicks)
        {
            var capacitySeconds = (total - _startTotalTicks) / clockTicks;
            var busySeconds = (busy - _startBusyTicks) / clockTicks;
            OwnShare = ownSeconds / capacitySeconds;
            OthersShare = Math.Max(0, busySeconds - ownSeconds) / capacitySeconds;
        }

        LoadAverage = _startLoad is null ? "n/a" : $"{_startLoad} at start, {ReadLoadAverage()} at end";
    }

    private static (long Busy, long Total) ReadProcStat()
    {
        try
        {
            if (!File.Exists("/proc/stat"))
            {
                return (0, 0);
            }

            // cpu  user nice system idle iowait irq softirq steal ...
            var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
                .Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
            var total = fields.Sum();
            var idle = fields[3] + fields[4];
            return (total - idle, total);
        }
        catch (IOException)
        {
            return (0, 0);
        }
    }

    private static string? ReadLoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
