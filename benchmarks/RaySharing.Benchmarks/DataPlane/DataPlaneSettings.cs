using System.Globalization;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>What a data-plane run measures, from the command line (<c>--data-plane</c>).</summary>
internal sealed class DataPlaneSettings
{
    public const string Flag = "--data-plane";

    public const long MiB = 1L << 20;

    public const long GiB = 1L << 30;

    public const string Usage = """
        Usage: dotnet run --project benchmarks/RaySharing.Benchmarks -c Release -- --data-plane [--sizes 1m,64m,1g] [--quick] [--shared-memory-dir <path>] [--out <path>]
          --sizes <list>  object sizes to run, from 1m, 64m and 1g (default: all three)
          --shared-memory-dir <path>  where the worker makes its arena (default /dev/shm; a huge=always tmpfs, say)
          --quick         a smoke run: fewer repetitions and calls (figures are indicative only)
          --out <path>    also write the results as markdown (the committed copy is benchmarks/DATAPLANE.md)
        """;

    public static readonly IReadOnlyDictionary<string, long> KnownSizes = new Dictionary<string, long>
    {
        ["1m"] = MiB,
        ["64m"] = 64 * MiB,
        ["1g"] = GiB,
    };

    public IReadOnlyList<long> Sizes { get; private init; } = [MiB, 64 * MiB, GiB];

    public bool Quick { get; private init; }

    public string? OutPath { get; private init; }

    /// <summary>The arguments as given, to record the command that produced a result.</summary>
    public IReadOnlyList<string> Arguments { get; private init; } = [];

    /// <summary>Sequential 100-byte calls of each kind before any is timed.</summary>
    public int SmallWarmupCalls => Quick ? 500 : 3_000;

    /// <summary>Sequential 100-byte calls of each kind per latency round.</summary>
    public int SmallCallsPerRound => Quick ? 500 : 2_000;

    /// <summary>Rounds of the small calls, latency and throughput alike.</summary>
    public int SmallRounds => Quick ? 1 : 3;

    /// <summary>Concurrent callers of the small-call throughput windows.</summary>
    public int Callers => 32;

    public TimeSpan SmallWindow => TimeSpan.FromSeconds(Quick ? 1 : 2);

    /// <summary>Untimed repetitions of a row before the timed ones (JIT, connections, pools, page faults of reused buffers).</summary>
    /// <summary>
    /// Whether a row reads both processes' CPU time around every repetition (64 MiB and up), to report the median
    /// repetition's; smaller rows last too little for redis-server's 10 ms clock and are summed.
    /// </summary>
    public bool CpuPerRepetition(long size) => size >= 64 * MiB;

    public int Warmups(long size) => size >= GiB ? 1 : size >= 64 * MiB ? 2 : Quick ? 5 : 20;

    /// <summary>Timed repetitions of a row, at most; fewer of the large sizes, which take seconds each.</summary>
    public int Repetitions(long size) => size >= GiB ? (Quick ? 2 : 5) : size >= 64 * MiB ? (Quick ? 4 : 10) : (Quick ? 20 : 100);

    /// <summary>Timed repetitions of a row, at least, however long they take.</summary>
    public int MinRepetitions(long size) => Math.Min(Repetitions(size), size >= GiB ? 3 : size >= 64 * MiB ? 5 : 20);

    /// <summary>
    /// Past <see cref="MinRepetitions"/>, a row stops once its timed repetitions took this long: a slow row on a
    /// busy machine (10 s per GiB) would otherwise stretch the run far past the few minutes it takes on a quiet one.
    /// </summary>
    public TimeSpan RowBudget => TimeSpan.FromSeconds(Quick ? 10 : 25);

    public static string SizeName(long size) => size >= GiB && size % GiB == 0
        ? string.Create(CultureInfo.InvariantCulture, $"{size / GiB} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{size / MiB} MiB");

    /// <summary>The short form used in target names: 1m, 64m, 1g.</summary>
    public static string SizeKey(long size) => KnownSizes.FirstOrDefault(k => k.Value == size).Key ?? size.ToString(CultureInfo.InvariantCulture);

    /// <summary>Parses the command line (which holds <see cref="Flag"/>); null with an error message when it is not understood.</summary>
    public static DataPlaneSettings? Parse(string[] args, out string? error)
    {
        error = null;
        var quick = false;
        string? outPath = null;
        List<long>? sizes = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case Flag:
                    break;
                case "--quick":
                    quick = true;
                    break;
                case "--out" when i + 1 < args.Length:
                    outPath = args[++i];
                    break;
                case "--shared-memory-dir" when i + 1 < args.Length:
                    // The server process inherits it (Serve reads the variable).
                    Environment.SetEnvironmentVariable(Serve.SharedMemoryDirectoryVariable, args[++i]);
                    break;
                case "--sizes" when i + 1 < args.Length:
                    sizes = [];
                    foreach (var name in args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        if (!KnownSizes.TryGetValue(name.ToLowerInvariant(), out var size))
                        {
                            error = $"--sizes: unknown size '{name}'; use 1m, 64m and 1g, comma-separated.";
                            return null;
                        }

                        sizes.Add(size);
                    }

                    break;
                case "--out" or "--sizes" or "--shared-memory-dir":
                    error = $"{args[i]} needs a value.";
                    return null;
                default:
                    error = $"Unknown argument '{args[i]}'.";
                    return null;
            }
        }

        if (sizes is { Count: 0 })
        {
            error = "--sizes needs at least one of 1m, 64m, 1g.";
            return null;
        }

        return new DataPlaneSettings
        {
            Sizes = sizes is null ? [MiB, 64 * MiB, GiB] : [.. sizes.Distinct().Order()],
            Quick = quick,
            OutPath = outPath,
            Arguments = args,
        };
    }
}
