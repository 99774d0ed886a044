using System.Globalization;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// One process of a measurement (the client, the benchmark's server process, redis-server): its CPU time
/// and its peak resident set, which <see cref="ResetPeak"/> sets back to the current resident set (Linux).
/// </summary>
internal sealed class ProcessProbe(string name, int processId, Func<CancellationToken, Task<TimeSpan>> cpu)
{
    public string Name { get; } = name;

    public int ProcessId { get; } = processId;

    /// <summary>This process: CPU time from getrusage, microsecond resolution.</summary>
    public static ProcessProbe Self { get; } = new("client", Environment.ProcessId, _ => Task.FromResult(Environment.CpuUsage.TotalTime));

    /// <summary>Another process by its id: user and system CPU time from /proc/pid/stat, in 10 ms ticks (USER_HZ 100).</summary>
    public static ProcessProbe Other(string name, int processId) => new(name, processId, _ => Task.FromResult(StatCpu(processId)));

    public Task<TimeSpan> CpuAsync(CancellationToken cancellationToken) => cpu(cancellationToken);

    /// <summary>Sets VmHWM back to the current resident set (clear_refs 5).</summary>
    public void ResetPeak() => File.WriteAllText($"/proc/{ProcessId}/clear_refs", "5");

    /// <summary>The peak resident set since the last <see cref="ResetPeak"/>, in bytes.</summary>
    public long PeakBytes() => StatusKib("VmHWM:") * 1024;

    /// <summary>The current resident set, in bytes.</summary>
    public long ResidentBytes() => StatusKib("VmRSS:") * 1024;

    /// <summary>
    /// The resident set less its shared-memory pages (RssAnon + RssFile): the process's own memory. Pages of the
    /// worker's arena that a same-host client has mapped count in VmRSS, but they are the store's one copy.
    /// </summary>
    public (long Private, long Shared) ResidentParts() => ((StatusKib("RssAnon:") + StatusKib("RssFile:")) * 1024, StatusKib("RssShmem:") * 1024);

    private long StatusKib(string field)
    {
        // "VmHWM:    123456 kB"
        var line = File.ReadLines($"/proc/{ProcessId}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }

    private static TimeSpan StatCpu(int processId)
    {
        // "pid (comm) state ppid ..." with utime and stime the 14th and 15th fields; comm may hold spaces.
        var stat = File.ReadAllText($"/proc/{processId}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }
}
