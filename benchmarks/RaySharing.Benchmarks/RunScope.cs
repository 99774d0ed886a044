using System.Diagnostics;
using System.Globalization;
using RaySharing.Testing;

namespace RaySharing.Benchmarks;

/// <summary>
/// What every benchmark run sets up before it measures: the server process dies with this one however it ends,
/// Ctrl+C and an overall bound end the run, and the machine and the other processes' load are recorded.
/// </summary>
internal sealed class RunScope : IDisposable
{
    /// <summary>Above this share of the cores used by other processes, a report says the machine was not quiet.</summary>
    public const double NoisyShare = 0.05;

    private readonly CancellationTokenSource _run;

    private RunScope(TimeSpan bound)
    {
        ChildProcess.KillAllOnExit();
        _run = new CancellationTokenSource(bound);
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            _run.Cancel();
        };
        if (Machine.Configuration != "Release")
        {
            Console.Error.WriteLine($"warning: a {Machine.Configuration} build; the figures mean little. Run with -c Release.");
        }

        Noise = Noise.Start();
    }

    /// <summary>Canceled by Ctrl+C or when the run's bound passes; every phase has a tighter bound of its own.</summary>
    public CancellationToken Token => _run.Token;

    public Machine Machine { get; } = new();

    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;

    public Stopwatch Clock { get; } = Stopwatch.StartNew();

    public Noise Noise { get; }

    public static RunScope Begin(TimeSpan bound) => new(bound);

    /// <summary>
    /// The caveats every report starts with: a smoke run (<paramref name="quickWhat"/> says what it cut), a build
    /// other than Release, a busy machine (<paramref name="othersNote"/> says what else to know about the others).
    /// </summary>
    public static IEnumerable<string> Caveats(bool quick, string quickWhat, Machine machine, Noise noise, string othersNote)
    {
        if (quick)
        {
            yield return $"a --quick smoke run: {quickWhat}; the figures are indicative only.";
        }

        if (machine.Configuration != "Release")
        {
            yield return $"a {machine.Configuration} build; measure with -c Release.";
        }

        if (noise.OthersShare > NoisyShare)
        {
            yield return string.Create(CultureInfo.InvariantCulture,
                $"the machine was not quiet: other processes {othersNote}used {noise.OthersShare:0%} of its {machine.Cores} cores during the run. Rerun on a quiet machine before trusting small differences.");
        }
    }

    /// <summary>The command that reproduces a run given <paramref name="arguments"/>, from the repository root.</summary>
    public static string Command(Machine machine, IReadOnlyList<string> arguments) =>
        $"dotnet run --project benchmarks/RaySharing.Benchmarks -c {machine.Configuration} --"
        + string.Concat(arguments.Select(a => " " + (a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a)));

    /// <summary>Each caveat as a quoted paragraph of a Markdown report.</summary>
    public static void AppendCaveats(System.Text.StringBuilder markdown, IEnumerable<string> caveats)
    {
        foreach (var caveat in caveats)
        {
            markdown.AppendLine(CultureInfo.InvariantCulture, $"> **Caveat:** {caveat}");
            markdown.AppendLine();
        }
    }

    public void Dispose() => _run.Dispose();
}
