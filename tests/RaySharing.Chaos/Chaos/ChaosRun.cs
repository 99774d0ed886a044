using System.Diagnostics;
using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Chaos;

/// <summary>A chaos harness as <see cref="ChaosRun"/> drives it: rounds, one kill each, counted in its tally.</summary>
internal interface IChaosHarness : IAsyncDisposable
{
    ChaosTally Tally { get; }

    /// <summary>Runs round <paramref name="number"/>, which kills as <paramref name="kind"/> says, under the harness's watchdog.</summary>
    Task RunRoundAsync(int number, KillKind kind, Random random);
}

/// <summary>What both chaos harnesses' runs share: their options, the seeded schedule of kills, the rounds in order, and the report.</summary>
internal static class ChaosRun
{
    /// <param name="commandLine">The harness's options: <c>--rounds</c>, <c>--seed</c>, <c>--out</c>, <c>--worker-dll</c>.</param>
    /// <param name="label">The harness's name in its lines and its report's title.</param>
    /// <param name="kinds">The kills its rounds rotate over.</param>
    /// <param name="settings">What the first line says of its leases.</param>
    /// <param name="lease">The session lease, for the report's bounds.</param>
    /// <param name="start">Makes the harness, given the worker host's dll.</param>
    /// <param name="rows">More rows for the report, after the seed.</param>
    public static async Task<int> RunAsync(CommandLine commandLine, string label, KillKind[] kinds, string settings, TimeSpan lease,
        Func<string, Task<IChaosHarness>> start, params (string Name, string Value)[] rows)
    {
        commandLine.Allow("--rounds", "--seed", "--out", "--worker-dll");
        var rounds = commandLine.Int("--rounds", null, 1, 100_000);
        var seed = commandLine.Int("--seed", Random.Shared.Next(), 0, int.MaxValue);
        var outPath = commandLine.Optional("--out");
        var hostAssembly = WorkerProcess.LocateHost(commandLine.Optional("--worker-dll"));

        var random = new Random(seed);
        var schedule = KillKinds.Schedule(rounds, kinds, random);
        Console.WriteLine($"{label}: {rounds} rounds, seed {seed}, {settings}, {Environment.ProcessorCount} cores");
        Console.WriteLine($"{label}: worker host {hostAssembly}");

        var elapsed = Stopwatch.StartNew();
        var harness = await start(hostAssembly).ConfigureAwait(false);
        await using (harness.ConfigureAwait(false))
        {
            for (var round = 1; round <= rounds; round++)
            {
                // A random per round, drawn in order from the seeded one: a round replays the same way
                // whatever the timing of the rounds before it did.
                await harness.RunRoundAsync(round, schedule[round - 1], new Random(random.Next())).ConfigureAwait(false);
            }
        }

        var report = new Report($"RaySharing {label}", commandLine);
        report.Row("seed", seed);
        foreach (var (name, value) in rows)
        {
            report.Row(name, value);
        }

        harness.Tally.AddTo(report, elapsed.Elapsed, lease);
        var passed = harness.Tally.Passed;
        report.Print(passed);
        if (outPath is not null)
        {
            report.WriteMarkdown(outPath, passed);
            Console.WriteLine($"{label}: wrote {outPath}");
        }

        return passed ? 0 : 1;
    }
}
