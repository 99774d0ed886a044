namespace RaySharing.Benchmarks;

/// <summary>What one run measures and for how long, from the command line.</summary>
internal sealed class BenchmarkSettings
{
    public const string Usage = """
        Usage: dotnet run --project benchmarks/RaySharing.Benchmarks -c Release -- [--quick] [--out <path>]
          --quick        a smoke run: fewer calls and shorter windows (figures are indicative only)
          --owner-death-objects <n>
                         objects holder A owns when it is killed (default 1000000; 100000 with --quick; 0 skips the phase)
          --out <path>   also write the results as markdown (the committed copy is benchmarks/RESULTS.md)
        The worker runs in a server process of its own: this program started again as `serve`, killed when the run ends.
        With --data-plane, the large-object benchmark instead (--sizes 1m,64m,1g, --quick, --out; benchmarks/DATAPLANE.md).
        """;

    /// <summary>Sequential calls of each kind before anything is timed (JIT tiering, connection, pools).</summary>
    public int WarmupCalls { get; private init; } = 2_000;

    /// <summary>The least time the sequential warm-up lasts, whatever <see cref="WarmupCalls"/> says.</summary>
    public TimeSpan WarmupTime { get; private init; } = TimeSpan.FromSeconds(5);

    /// <summary>Sequential calls of each kind per latency round.</summary>
    public int CallsPerRound { get; private init; } = 2_000;

    /// <summary>Latency rounds; each runs every kind once, in a rotated order.</summary>
    public int LatencyRounds { get; private init; } = 5;

    /// <summary>Concurrent callers in the throughput phase.</summary>
    public int Callers { get; private init; } = 32;

    /// <summary>How long each throughput window lasts.</summary>
    public TimeSpan Window { get; private init; } = TimeSpan.FromSeconds(3);

    /// <summary>Throughput rounds; each runs one echo window and one put window, in alternating order.</summary>
    // Nine rounds, not five: on a 2-core machine single windows swing by ±20%, and the median of more settles.
    public int ThroughputRounds { get; private init; } = 9;

    /// <summary>Registered objects of the holder killed in the owner-death phase; 0 skips the phase.</summary>
    public int OwnerDeathObjects { get; private init; } = 1_000_000;

    public bool Quick { get; private init; }

    public string? OutPath { get; private init; }

    /// <summary>The arguments as given, to record the command that produced a result.</summary>
    public IReadOnlyList<string> Arguments { get; private init; } = [];

    /// <summary>Parses the command line; null with an error message when it is not understood.</summary>
    public static BenchmarkSettings? Parse(string[] args, out string? error)
    {
        error = null;
        var quick = false;
        string? outPath = null;
        int? ownerDeathObjects = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--out" when i + 1 < args.Length:
                    outPath = args[++i];
                    break;
                case "--out":
                    error = "--out needs a path.";
                    return null;
                case "--owner-death-objects" when i + 1 < args.Length && int.TryParse(args[i + 1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n):
                    ownerDeathObjects = n;
                    i++;
                    break;
                case "--owner-death-objects":
                    error = "--owner-death-objects needs a whole number >= 0.";
                    return null;
                default:
                    error = $"Unknown argument '{args[i]}'.";
                    return null;
            }
        }

        return quick
            ? new BenchmarkSettings
            {
                WarmupCalls = 1_000,
                CallsPerRound = 500,
                LatencyRounds = 2,
                Window = TimeSpan.FromSeconds(1),
                ThroughputRounds = 2,
                Quick = true,
                OwnerDeathObjects = ownerDeathObjects ?? 100_000,
                OutPath = outPath,
                Arguments = args,
            }
            : new BenchmarkSettings { OwnerDeathObjects = ownerDeathObjects ?? 1_000_000, OutPath = outPath, Arguments = args };
    }
}
