using System.Globalization;
using System.Text;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>The figures of one data-plane run, as console text and as the markdown kept in benchmarks/DATAPLANE.md.</summary>
internal sealed class DataPlaneReport
{

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    private readonly DataPlaneSettings _settings;
    private readonly Machine _machine;
    private readonly Noise _noise;
    private readonly DateTimeOffset _started;
    private readonly TimeSpan _duration;
    private readonly string _redisVersion;
    private readonly DataPlaneResults _results;

    public DataPlaneReport(DataPlaneSettings settings, Machine machine, Noise noise, DateTimeOffset started, TimeSpan duration, string redisVersion, DataPlaneResults results)
    {
        _settings = settings;
        _machine = machine;
        _noise = noise;
        _started = started;
        _duration = duration;
        _redisVersion = redisVersion;
        _results = results;
        Targets = DataPlaneTargets.Compute(results);
    }

    public IReadOnlyList<DataPlaneTarget> Targets { get; }

    /// <summary>The command that reproduces this run, from the repository root.</summary>
    public string Command => RunScope.Command(_machine, _settings.Arguments);

    public string ToConsole()
    {
        var text = new StringBuilder();
        text.AppendLine(Invariant, $"RaySharing data-plane benchmark: {_machine.Configuration}, {_machine.Cores} cores, {_machine.Runtime}, {_started:yyyy-MM-dd HH:mm} UTC, {_duration.TotalSeconds:0} s");
        foreach (var caveat in Caveats())
        {
            text.AppendLine(Invariant, $"caveat: {caveat}");
        }

        foreach (var size in _settings.Sizes)
        {
            text.AppendLine();
            text.AppendLine(Invariant, $"{DataPlaneSettings.SizeName(size)}: {"row",-18}{"GB/s",8}{"/memcpy",9}{"CPU s/GiB",11}{"client MiB",12}{"server MiB",12}");
            foreach (var row in _results.Transfers.Where(r => r.Size == size))
            {
                text.AppendLine(row.Ran
                    ? string.Create(Invariant, $"         {row.Case.Label,-18}{row.MedianGBps,8:0.00}{VsMemcpy(row),9}{row.CpuSecondsPerGiB,11:0.00}{Mib(row.Client.PeakBytes),12}{(row.Server is { } s ? Mib(s.PeakBytes) : "-"),12}")
                    : string.Create(Invariant, $"         {row.Case.Label,-18}  not run: {row.Case.TooLargeReason}"));
            }
        }

        text.AppendLine();
        text.AppendLine(Invariant, $"100-byte calls: {"kind",-12}{"p50 µs",9}{"p90 µs",9}{"p99 µs",9}{$"{_settings.Callers} callers/s",16}");
        foreach (var row in _results.Latency)
        {
            text.AppendLine(Invariant, $"                {row.Kind,-12}{row.P50Micros,9:0.0}{row.P90Micros,9:0.0}{row.P99Micros,9:0.0}{Rate(row.Kind),16:0}");
        }

        if (_results.Memory is { } memory)
        {
            text.AppendLine();
            text.AppendLine(MemoryText(memory));
        }

        text.AppendLine();
        foreach (var target in Targets)
        {
            text.AppendLine(target.Line);
        }

        return text.ToString();
    }

    public string ToMarkdown()
    {
        var md = new StringBuilder();
        md.AppendLine("# RaySharing data-plane benchmark");
        md.AppendLine();
        md.AppendLine("Written by the benchmark itself (`--data-plane`); rerun the command to refresh it. Large objects (1 MiB, 64 MiB, 1 GiB)");
        md.AppendLine("moved by RaySharing side by side with what bounds or replaces it, in one run: memcpy, a warm shared-memory mapping,");
        md.AppendLine("raw loopback TCP, bare gRPC streaming and Redis; then 100-byte calls against Redis and a bare gRPC echo. Ratios");
        md.AppendLine("between rows of the same run travel between machines better than the absolute figures do.");
        md.AppendLine();
        md.AppendLine(Invariant, $"Command (from the repository root): `{Command}`");
        md.AppendLine();
        md.AppendLine("Options: `--sizes 1m,64m,1g` runs a subset of the sizes, `--quick` fewer repetitions, `--out <path>` writes this file.");
        md.AppendLine();
        md.AppendLine("## Machine");
        md.AppendLine();
        md.AppendLine(Invariant, $"- Date: {_started:yyyy-MM-dd HH:mm} UTC (run took {_duration.TotalSeconds:0} s)");
        md.AppendLine(Invariant, $"- CPU: {_machine.Cpu}, {_machine.Cores} logical cores; memory: {MachineMemory()}");
        md.AppendLine(Invariant, $"- OS: {_machine.Os}");
        md.AppendLine(Invariant, $"- Runtime: {_machine.Runtime}, {_machine.Gc} GC, {_machine.Configuration} build; Redis {_redisVersion}, StackExchange.Redis {RedisClientVersion()}");
        md.AppendLine(Invariant, $"- The worker's shared-memory arena: in {Environment.GetEnvironmentVariable(Serve.SharedMemoryDirectoryVariable) ?? "/dev/shm"} ({ArenaMount()})");
        md.AppendLine(Invariant, $"- Other processes' CPU during the run: {Share(_noise.OthersShare)} of all cores (the benchmark's client and server processes: {Share(_noise.OwnShare)}; redis-server counts among the others); load average: {_noise.LoadAverage}");
        md.AppendLine();
        RunScope.AppendCaveats(md, Caveats());

        md.AppendLine("## Method");
        md.AppendLine();
        foreach (var paragraph in Method())
        {
            md.AppendLine(paragraph);
            md.AppendLine();
        }

        md.AppendLine("## Large objects");
        md.AppendLine();
        md.AppendLine("GB/s is 10^9 bytes per second, the median of the repetitions (min–max beside it). CPU s/GiB is the client's plus the serving");
        md.AppendLine("process's CPU time over the repetitions, per GiB moved. Peak RSS is each process's VmHWM during the row (reset before it), buffers");
        md.AppendLine("and objects of the row included, with the resident set when it was reset in brackets; the server is the benchmark's server process");
        md.AppendLine("(the worker) or redis-server, none for in-process rows. Client GCs: collections in the client over the timed repetitions (gen2 ones");
        md.AppendLine("are a share of the gen0 count); a get into a new array allocates on the large-object heap, whose collections are gen2.");
        foreach (var size in _settings.Sizes)
        {
            md.AppendLine();
            md.AppendLine(Invariant, $"### {DataPlaneSettings.SizeName(size)}");
            md.AppendLine();
            md.AppendLine("| group | row | GB/s | min–max | / memcpy | CPU s/GiB (client + server) | client peak RSS MiB (at start) | server peak RSS MiB (at start) | client GCs gen0 / gen2 | repetitions |");
            md.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var row in _results.Transfers.Where(r => r.Size == size))
            {
                md.AppendLine(row.Ran
                    ? string.Create(Invariant, $"| {row.Case.Group} | {row.Case.Label} | {row.MedianGBps:0.00} | {row.MinGBps:0.00}–{row.MaxGBps:0.00} | {VsMemcpy(row)} | {row.CpuSecondsPerGiB:0.00} ({row.ClientCpuSecondsPerGiB:0.00} + {row.ServerCpuSecondsPerGiB:0.00}) | {Mib(row.Client.PeakBytes)} ({Mib(row.Client.StartBytes)}) | {(row.Server is { } s ? $"{Mib(s.PeakBytes)} ({Mib(s.StartBytes)}, {row.Case.Server!.Name})" : "–")} | {row.ClientGen0} / {row.ClientGen2} | {row.Times.Count} |")
                    : string.Create(Invariant, $"| {row.Case.Group} | {row.Case.Label} | not run: {row.Case.TooLargeReason} | | | | | | | |"));
            }
        }

        if (_results.Memory is { } memory)
        {
            md.AppendLine();
            md.AppendLine("### One 1 GiB object");
            md.AppendLine();
            md.AppendLine(MemoryText(memory));
        }

        md.AppendLine();
        md.AppendLine("## 100-byte calls");
        md.AppendLine();
        md.AppendLine(Invariant, $"Sequential latency ({_settings.SmallRounds} rounds of {_settings.SmallCallsPerRound} calls per kind after {_settings.SmallWarmupCalls} warm-up calls, order rotated each round) and the rate of {_settings.Callers} concurrent callers (median of {_settings.SmallRounds} windows of {_settings.SmallWindow.TotalSeconds:0} s per kind). Ratios against the bare gRPC echo and against Redis (SET for puts, GET for gets) are of this run.");
        md.AppendLine();
        md.AppendLine(Invariant, $"| kind | p50 µs | p90 µs | p99 µs | p50 / echo | p50 / Redis | {_settings.Callers} callers, calls/s | / echo | / Redis | per window |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        var echo = _results.Latency.Single(l => l.Kind == SmallCalls.Echo);
        var echoRate = Rate(SmallCalls.Echo);
        foreach (var row in _results.Latency)
        {
            var redis = RedisOf(row.Kind);
            var redisLatency = redis is null ? null : _results.Latency.Single(l => l.Kind == redis);
            var throughput = _results.Throughput.Single(t => t.Kind == row.Kind);
            md.AppendLine(Invariant, $"| {row.Kind} | {row.P50Micros:0.0} | {row.P90Micros:0.0} | {row.P99Micros:0.0} | {row.P50Micros / echo.P50Micros:0.00} | {(redisLatency is null ? "–" : (row.P50Micros / redisLatency.P50Micros).ToString("0.00", Invariant))} | {throughput.Median:0} | {throughput.Median / echoRate:0.00} | {(redis is null ? "–" : (throughput.Median / Rate(redis)).ToString("0.00", Invariant))} | {string.Join(", ", throughput.PerRound.Select(r => r.ToString("0", Invariant)))} |");
        }

        md.AppendLine();
        md.AppendLine("## Targets");
        md.AppendLine();
        md.AppendLine("Goals of the data-plane issue, computed from this run. `n/a … MISSING`: the RaySharing path the target needs is not built yet");
        md.AppendLine(string.Create(Invariant, $"(built: {string.Join(", ", _results.Paths.Select(p => $"`{p}`"))}); `SKIPPED`: the run left out the size it needs. Targets asked of every path end in `_<path>`."));
        md.AppendLine();
        md.AppendLine("```");
        foreach (var target in Targets)
        {
            md.AppendLine(target.Line);
        }

        md.AppendLine("```");
        return md.ToString();
    }

    private static string Mib(long bytes) => string.Create(Invariant, $"{bytes / 1048576.0:0}");

    private static string Share(double? share) => share is { } s ? string.Create(Invariant, $"{s:0%}") : "n/a";

    /// <summary>The Redis kind a small-call kind compares with: SET for puts, GET for gets.</summary>
    private static string? RedisOf(string kind) =>
        kind.EndsWith("-put", StringComparison.Ordinal) ? SmallCalls.RedisSet
        : kind.EndsWith("-get", StringComparison.Ordinal) && kind != SmallCalls.RedisGet ? SmallCalls.RedisGet
        : null;

    private static string MemoryText(MemoryResult m) => string.Create(Invariant,
        $"Through the {m.Path} path: the worker's resident set was {m.WorkerIdleBytes / 1048576.0:0} MiB idle and {m.WorkerHoldingBytes / 1048576.0:0} MiB holding the object " +
        $"(both after a full compacting collection), {m.WorkerGiBPerObjectGiB:0.00} GiB per GiB held. One get into an IBufferWriter (CopyToAsync into an ArrayBufferWriter of the object's size) " +
        $"took the client's own memory (RssAnon + RssFile, sampled every millisecond) from {m.ClientStartBytes / 1048576.0:0} MiB to a peak of {m.ClientPeakBytes / 1048576.0:0} MiB: " +
        $"{m.ClientPeakOverObjectMiB:0} MiB over the object's own size. Besides that, up to {m.ClientPeakSharedBytes / 1048576.0:0} MiB of the worker's arena were mapped into the client " +
        $"(RssShmem): the store's one copy, read in place, which VmRSS counts in both processes.");

    /// <summary>The mount options of the filesystem the arena is in: whether it has huge pages shows there.</summary>
    private static string ArenaMount()
    {
        var directory = Environment.GetEnvironmentVariable(Serve.SharedMemoryDirectoryVariable) ?? "/dev/shm";
        var mount = File.ReadLines("/proc/mounts").Select(l => l.Split(' ')).Where(f => f.Length > 3 && directory.StartsWith(f[1], StringComparison.Ordinal))
            .OrderByDescending(f => f[1].Length).FirstOrDefault();
        return mount is null ? "mount unknown" : $"{mount[2]}, {mount[3]}";
    }

    private static string RedisClientVersion()
    {
        var version = typeof(StackExchange.Redis.ConnectionMultiplexer).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), inherit: false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "?";
        // "3.4.35+commit": the package version without the source revision.
        return version.Split('+')[0];
    }

    private static string MachineMemory()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            return string.Create(Invariant, $"{long.Parse(line["MemTotal:".Length..].Trim().Split(' ')[0], Invariant) / 1048576.0:0.0} GiB");
        }
        catch (IOException)
        {
            return "n/a";
        }
    }

    private string VsMemcpy(TransferResult row)
    {
        var memcpy = _results.Transfers.FirstOrDefault(r => r.Case.Name == Baselines.Memcpy && r.Size == row.Size && r.Ran);
        return memcpy is null ? "–" : (row.MedianGBps / memcpy.MedianGBps).ToString("0.00", Invariant);
    }

    private double Rate(string kind) => _results.Throughput.Single(t => t.Kind == kind).Median;

    private IEnumerable<string> Method()
    {
        yield return string.Create(Invariant,
            $"Two processes, as users deploy RaySharing: this program (the client, which times everything) and the same program started again in `{Serve.Mode}` mode, " +
            $"the server process: a worker (store capacity 4 GiB) with, on its Kestrel, the bare gRPC baselines, and a raw TCP listener on a port of its own. " +
            $"A redis-server {_redisVersion} started by the harness on a free loopback port (`--save \"\" --appendonly no`, installed with apt-get if missing) is the third, " +
            $"killed when the run ends however it ends. Before each row both .NET processes run a full compacting collection, then the peak resident set (VmHWM) of the client " +
            $"and of the row's serving process is reset (`echo 5 > /proc/<pid>/clear_refs`); the row is set up (buffers allocated and written, objects stored), warmed up, " +
            $"then timed repetition by repetition, the CPU time of the client (getrusage) and of the serving process (the server process's own, over a benchmark-only gRPC call; " +
            $"redis-server's from /proc, 10 ms ticks) read around the timed repetitions, and at 64 MiB and 1 GiB also around each one: " +
            $"there the CPU column is the median repetition's (client + server), so one repetition slowed by the machine does not decide it; at 1 MiB it is the total over the repetitions.");
        yield return
            "Rows. **memcpy**: a Span copy between two warm native buffers in one process, the ceiling of any transfer. " +
            "**shm-copy get**: a file under /dev/shm written once and mapped read-only (every page touched first), copied into a new array each repetition, " +
            "so the destination's page faults and zeroing count, as they do for a get into a new array. " +
            "**socket get / put**: loopback TCP to the server process (a 9-byte header, then the bytes): a get lands in a reused, warm native buffer of the client, " +
            "sent from a warm native buffer of the server's; a put is sent from a warm native buffer and lands in a warm one of the server's, which answers one byte when all arrived. " +
            $"**grpc-stream get / put**: bare gRPC server- and client-streaming calls in {Baselines.StreamChunkBytes >> 20} MiB chunks over a channel configured like the RaySharing client's, " +
            "to and from warm buffers on both sides (the same as the socket rows). " +
            "**redis get / put**: StackExchange.Redis StringGetLease of one key (the value in the library's pooled memory, its fastest get: no new array) and StringSet of the value " +
            "from a warm native buffer (the targets compare with these). **redis-raw get / put**: the same commands over a bare socket of the client's, RESP written by hand and the value received " +
            "straight into a warm buffer: what redis-server itself delivers, without the client library's cost. Redis refuses strings over 512 MB, so there is no 1 GiB Redis row.";
        yield return string.Create(Invariant,
            $"RaySharing rows, one pair per path ({string.Join(", ", _results.Paths)} in this run{NotMeasured()}), " +
            $"each through the public client API: PutEncodedAsync of RAW bytes from a warm native buffer with the session's holder as owner, and CopyToAsync into a warm buffer the client reuses (checksum checked), as the socket and Redis gets receive; the shm path's **get-array** row is GetBytesAsync into the new array it returns, page faults and all. " +
            $"**grpc**: a client with shared memory and the channel off, so gRPC carries everything: unary up to 1 MiB, streamed above it in the client's default chunks ({new RaySharingClientOptions().ChunkBytes >> 10} KiB). " +
            $"**bulk**: a client with shared memory off and the channel on, as a client on another host runs: one channel frame over TCP up to 1 MiB, above it a ticket (one gRPC call) and the bytes as a channel body " +
            $"straight between the worker's store and the destination, checksummed piece by piece as they arrive. " +
            $"**shm** and **shm-lease**: the same-host client: puts up to 1 MiB as one channel frame over the worker's Unix socket, larger ones written in place in the worker's arena and sealed; gets from 64 KiB up read the arena (a pin over the Unix socket, then a copy, or a zero-copy lease whose every byte is read by its VerifyChecksum, a CRC-32 compared with the ref's), smaller ones one channel frame. " +
            $"A get row gets one stored object every repetition and releases it after the row; a put row releases each ref right after its put, outside the timing. " +
            $"A new path is a class implementing `IDataPath` (put, get, release) and one line in `DataPaths.Create` (benchmarks/RaySharing.Benchmarks/DataPlane/Paths.cs): " +
            $"its large-object rows, its 100-byte rows and its targets follow.");
        yield return string.Create(Invariant,
            $"Repetitions per row: {Repetitions(DataPlaneSettings.MiB)} at 1 MiB, {Repetitions(64 * DataPlaneSettings.MiB)} at 64 MiB, {Repetitions(DataPlaneSettings.GiB)} at 1 GiB; " +
            $"past the least number, a row stops once its timed repetitions took {_settings.RowBudget.TotalSeconds:0} s (the table gives each row's count). " +
            $"At 1 MiB a repetition lasts well under a millisecond for the fast rows, so their CPU figures rest on few ticks of redis-server's clock; trust the 64 MiB and 1 GiB CPU figures more.");
    }

    /// <summary>The paths the targets name that this run did not measure, as a clause; empty when it measured them all.</summary>
    private string NotMeasured()
    {
        var absent = DataPaths.Planned.Except(_results.Paths).ToList();
        return absent.Count == 0 ? string.Empty : $"; the targets also name {string.Join(", ", absent)}, not measured";
    }

    private string Repetitions(long size) => string.Create(Invariant,
        $"{_settings.MinRepetitions(size)} to {_settings.Repetitions(size)} after {_settings.Warmups(size)} warm-up");

    private IEnumerable<string> Caveats() =>
        RunScope.Caveats(_settings.Quick, "few repetitions and calls", _machine, _noise, "(redis-server among them) ");
}
