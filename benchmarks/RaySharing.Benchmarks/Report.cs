using System.Globalization;
using System.Text;

namespace RaySharing.Benchmarks;

/// <summary>The figures of one run, as console text and as the markdown kept in benchmarks/RESULTS.md.</summary>
internal sealed class Report
{
    /// <summary>Above this share of the CPU used by other processes, the run is flagged as noisy.</summary>

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    private readonly BenchmarkSettings _settings;
    private readonly Machine _machine;
    private readonly Noise _noise;
    private readonly DateTimeOffset _started;
    private readonly TimeSpan _duration;
    private readonly IReadOnlyList<LatencyResult> _latency;
    private readonly IReadOnlyList<ThroughputResult> _throughput;
    private readonly long _objectsLeft;
    private readonly OwnerDeathResult? _ownerDeath;

    public Report(BenchmarkSettings settings, Machine machine, Noise noise, DateTimeOffset started, TimeSpan duration,
        IReadOnlyList<LatencyResult> latency, IReadOnlyList<ThroughputResult> throughput, long objectsLeft, OwnerDeathResult? ownerDeath)
    {
        _settings = settings;
        _machine = machine;
        _noise = noise;
        _started = started;
        _duration = duration;
        _latency = latency;
        _throughput = throughput;
        _objectsLeft = objectsLeft;
        _ownerDeath = ownerDeath;

        var echo = Latency(Runner.Echo).P50Micros;
        var echoRate = Throughput(Runner.Echo).Median;
        Targets =
        [
            Target.AtMost("put_p50_ratio", Latency(Runner.Put).P50Micros / echo, 1.5),
            Target.AtMost("fetch_p50_ratio", Latency("fetch").P50Micros / echo, 1.5),
            Target.AtMost("get_p50_ratio", Latency("get").P50Micros / echo, 1.5),
            Target.AtLeast("put_throughput_ratio", Throughput(Runner.Put).Median / echoRate, 0.7),
            .. ownerDeath is { } death
                ?
                [
                    Target.AtMost("kill_get_p99_ms", death.GetP99Micros / 1000, 5),
                    Target.AtMost("bytes_per_registered_object", death.BytesPerObject, 400),
                    // Reported, not judged: the line says how long the store took to give the bytes back.
                    new Target("reclaim_ms", death.Reclaim.TotalMilliseconds, "report", true),
                ]
                : Array.Empty<Target>(),
        ];
    }

    public IReadOnlyList<Target> Targets { get; }

    /// <summary>The command that reproduces this run, from the repository root.</summary>
    public string Command => RunScope.Command(_machine, _settings.Arguments);

    public string ToConsole()
    {
        var text = new StringBuilder();
        text.AppendLine(Invariant, $"RaySharing benchmark: {_machine.Configuration}, {_machine.Cores} cores, {_machine.Runtime}, {_started:yyyy-MM-dd HH:mm} UTC, {_duration.TotalSeconds:0} s");
        text.AppendLine(Method());
        foreach (var caveat in Caveats())
        {
            text.AppendLine(Invariant, $"caveat: {caveat}");
        }

        text.AppendLine();
        text.AppendLine(Invariant, $"{"kind",-8}{"calls",8}{"p50 µs",10}{"p90 µs",10}{"p99 µs",10}{"p50/echo",10}");
        foreach (var row in _latency)
        {
            text.AppendLine(Invariant, $"{row.Kind,-8}{row.Calls,8}{row.P50Micros,10:0.0}{row.P90Micros,10:0.0}{row.P99Micros,10:0.0}{LatencyRatio(row),10:0.00}");
        }

        text.AppendLine();
        text.AppendLine("per call, client process / server process:");
        text.AppendLine(Invariant, $"{"kind",-8}{"callers",8}{"median/s",12}{"rate/echo",11}{"CPU µs/call",16}{"alloc B/call",16}{"GC pause",16}  rounds (calls/s)");
        foreach (var row in _throughput)
        {
            text.AppendLine(Invariant, $"{row.Kind,-8}{row.Callers,8}{row.Median,12:0}{ThroughputRatio(row),11:0.00}{Pair(row.Client.CpuMicros, row.Server.CpuMicros, "0.0"),16}{Pair(row.Client.AllocatedBytes, row.Server.AllocatedBytes, "0"),16}{Pair(row.Client.GcPauseShare, row.Server.GcPauseShare, "0.0%"),16}  {Rounds(row)}");
        }

        if (_ownerDeath is { } death)
        {
            text.AppendLine();
            text.AppendLine(OwnerDeathText(death));
        }

        text.AppendLine();
        foreach (var target in Targets)
        {
            text.AppendLine(TargetLine(target));
        }

        return text.ToString();
    }

    public string ToMarkdown()
    {
        var md = new StringBuilder();
        md.AppendLine("# RaySharing benchmark results");
        md.AppendLine();
        md.AppendLine("Written by the benchmark itself; rerun the command to refresh it. Ratios compare RaySharing with a bare");
        md.AppendLine("gRPC unary echo served by the same Kestrel server and measured in the same run, so they travel between");
        md.AppendLine("machines better than the absolute figures do.");
        md.AppendLine();
        md.AppendLine(Invariant, $"Command (from the repository root): `{Command}`");
        md.AppendLine();
        md.AppendLine("## Machine");
        md.AppendLine();
        md.AppendLine(Invariant, $"- Date: {_started:yyyy-MM-dd HH:mm} UTC (run took {_duration.TotalSeconds:0} s)");
        md.AppendLine(Invariant, $"- CPU: {_machine.Cpu}, {_machine.Cores} logical cores");
        md.AppendLine(Invariant, $"- OS: {_machine.Os}");
        md.AppendLine(Invariant, $"- Runtime: {_machine.Runtime}, {_machine.Gc} GC, {_machine.Configuration} build");
        md.AppendLine(Invariant, $"- Other processes' CPU during the run: {Share(_noise.OthersShare)} of all cores (the benchmark's client and server processes: {Share(_noise.OwnShare)}); load average, these processes included: {_noise.LoadAverage}");
        md.AppendLine();
        RunScope.AppendCaveats(md, Caveats());

        md.AppendLine("## Method");
        md.AppendLine();
        md.AppendLine(Method());
        md.AppendLine();
        md.AppendLine("## Latency (sequential calls)");
        md.AppendLine();
        md.AppendLine("| kind | calls | p50 µs | p90 µs | p99 µs | p50 / echo p50 |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var row in _latency)
        {
            md.AppendLine(Invariant, $"| {row.Kind} | {row.Calls} | {row.P50Micros:0.0} | {row.P90Micros:0.0} | {row.P99Micros:0.0} | {LatencyRatio(row):0.00} |");
        }

        md.AppendLine();
        md.AppendLine(Invariant, $"## Throughput ({_settings.Callers} concurrent callers)");
        md.AppendLine();
        md.AppendLine("| kind | median calls/s | / echo | client CPU µs per call | server CPU µs per call | client allocated B per call | server allocated B per call | client GC pause | server GC pause | per round (calls/s) |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var row in _throughput)
        {
            md.AppendLine(Invariant, $"| {row.Kind} | {row.Median:0} | {ThroughputRatio(row):0.00} | {row.Client.CpuMicros:0.0} | {row.Server.CpuMicros:0.0} | {row.Client.AllocatedBytes:0} | {row.Server.AllocatedBytes:0} | {row.Client.GcPauseShare:0.0%} | {row.Server.GcPauseShare:0.0%} | {Rounds(row)} |");
        }

        md.AppendLine();
        md.AppendLine("CPU, allocation and GC pause are each process's own over the windows: the client process (the callers, with the");
        md.AppendLine("RaySharing client or the bare gRPC channel) and the server process (the worker, which also serves the echo), whose");
        md.AppendLine("counters are read by a benchmark-only gRPC call just before and after each window. GC pause is the share of the");
        md.AppendLine("windows' wall-clock time. CPU per call is less sensitive to other processes than calls/s, and when the cores are");
        md.AppendLine("saturated calls/s ≈ cores / (client + server CPU per call).");

        if (_ownerDeath is { } death)
        {
            md.AppendLine();
            md.AppendLine("## Owner death");
            md.AppendLine();
            md.AppendLine(OwnerDeathText(death));
        }

        md.AppendLine();
        md.AppendLine("## Targets");
        md.AppendLine();
        md.AppendLine("```");
        foreach (var target in Targets)
        {
            md.AppendLine(TargetLine(target));
        }

        md.AppendLine("```");
        return md.ToString();
    }

    private static string TargetLine(Target target) =>
        string.Create(Invariant, $"target {target.Name} {target.Measured:0.00} {target.Goal} {(target.Pass ? "PASS" : "FAIL")}");

    private static string OwnerDeathText(OwnerDeathResult d) => string.Create(Invariant,
        $"Holder A was filled with {d.Objects:N0} registered {Workload.PayloadBytes}-byte objects ({OwnerDeath.Fillers} callers putting batches of {OwnerDeath.Batch:N0}, registering each batch under its own key and releasing their refs) in {d.FillTime.TotalSeconds:0.0} s, " +
        $"then killed while one caller got holder B's object back to back. The kill call took {d.KillCall.TotalMilliseconds:0.0} ms; the store's usage was back to its level before the fill {d.Reclaim.TotalMilliseconds:0} ms after the kill was sent. " +
        $"Gets of B started in that time: {d.GetsDuringReclaim:N0}, p50 {d.GetP50Micros:0} µs, p99 {d.GetP99Micros:0} µs, max {d.GetMaxMicros:0} µs (before the kill: {d.GetsBeforeKill:N0} gets, p99 {d.GetP99BeforeMicros:0} µs, max {d.GetMaxBeforeMicros:0} µs). " +
        $"The server process's GC paused {d.GcPauseDuringReclaim.TotalMilliseconds:0.0} ms in that time ({d.CollectionsDuringReclaim} collections, {d.Gen2DuringReclaim} of them gen2). " +
        $"Memory of the server process (the worker alone), GC heap after a full, aggressive, compacting collection: {Mib(d.HeapBeforeBytes)} before the fill, {Mib(d.HeapFilledBytes)} filled, {Mib(d.HeapAfterBytes)} {OwnerDeath.SettleAfterReclaim.TotalMilliseconds:0} ms after the reclaim; " +
        $"{d.HeapBytesPerObject:0} B per registered object on the heap, plus the payload's {OwnerDeathResult.ArenaBytesPerObject:0} B in the store's arena (native memory): {d.BytesPerObject:0} B per object, payload included. Its working set: {Mib(d.WorkingSetBeforeBytes)}, {Mib(d.WorkingSetFilledBytes)}, {Mib(d.WorkingSetAfterBytes)} ({d.WorkingSetPerObject:0} B per object; it includes GC segments not yet returned to the OS).");

    private static string Pair(double client, double server, string format) =>
        $"{client.ToString(format, Invariant)} / {server.ToString(format, Invariant)}";

    private static string Mib(long bytes) => string.Create(Invariant, $"{bytes / 1048576.0:0.0} MiB");

    private static string Share(double? share) => share is { } s ? string.Create(Invariant, $"{s:0%}") : "n/a";

    private static string Rounds(ThroughputResult row) => string.Join(", ", row.PerRound.Select(r => r.ToString("0", Invariant)));

    private string Method() => string.Create(Invariant,
        $"The worker runs as its own process, as users deploy it: this program started again in {Serve.Mode} mode, with the echo baseline mapped on the worker's Kestrel, " +
        $"so both sides cross the same process boundary; the client process makes and times the calls. " +
        $"Payload {Workload.PayloadBytes} bytes (a RAW byte[] put with the holder as owner; the echo carries the same bytes). " +
        $"Latency: a warm-up of at least {_settings.WarmupCalls} calls per kind and {_settings.WarmupTime.TotalSeconds:0} s, then {_settings.LatencyRounds} rounds of {_settings.CallsPerRound} sequential calls of each kind " +
        $"(echo, put, fetch of a key holding 1 ref, get), in an order rotated every round; percentiles over all rounds. " +
        $"Throughput: 1 s warm-up windows until the rates settle, then {_settings.ThroughputRounds} rounds of a {_settings.Window.TotalSeconds:0.0} s window of {_settings.Callers} concurrent callers for echo and for put, " +
        $"alternating which goes first; median of the rounds. Refs obtained by timed calls are released in batches: after each latency block, " +
        $"and during the throughput windows by each caller every {Runner.WindowReleaseBatch} puts (steady state; the releases are not counted as calls). " +
        $"{_objectsLeft} object(s) left in the store at the end: the one fetched and got.");

    private IEnumerable<string> Caveats() =>
        RunScope.Caveats(_settings.Quick, "few calls and short windows", _machine, _noise, "(builds or tests of other work, probably; interleaving spreads that noise over both sides) ");

    private double LatencyRatio(LatencyResult row) => row.P50Micros / Latency(Runner.Echo).P50Micros;

    private double ThroughputRatio(ThroughputResult row) => row.Median / Throughput(Runner.Echo).Median;

    private LatencyResult Latency(string kind) => _latency.Single(r => r.Kind == kind);

    private ThroughputResult Throughput(string kind) => _throughput.Single(r => r.Kind == kind);
}
