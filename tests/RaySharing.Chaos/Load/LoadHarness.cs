using System.Diagnostics;
using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Load;

/// <summary>
/// The load run: one worker process, N sessions (N clients in this process) doing a random mix of
/// calls for a while; then everything is unregistered and released and the worker must be empty.
/// </summary>
internal static class LoadHarness
{
    public const string HolderName = "LOAD";

    private const int CapacityMegabytes = 2048;

    private static readonly TimeSpan CallBound = TimeSpan.FromSeconds(20);

    /// <summary>How long released objects may take to leave the store before they count as leaked.</summary>
    private static readonly TimeSpan LeakWait = TimeSpan.FromSeconds(10);

    public static async Task<int> RunAsync(CommandLine commandLine)
    {
        commandLine.Allow("--sessions", "--seconds", "--seed", "--out", "--worker-dll");
        var sessionCount = commandLine.Int("--sessions", 32, 1, 1024);
        var duration = TimeSpan.FromSeconds(commandLine.Int("--seconds", null, 1, 3600));
        var seed = commandLine.Int("--seed", Random.Shared.Next(), 0, int.MaxValue);
        var outPath = commandLine.Optional("--out");
        var hostAssembly = WorkerProcess.LocateHost(commandLine.Optional("--worker-dll"));
        Console.WriteLine($"load: {sessionCount} sessions for {duration.TotalSeconds:0} s, seed {seed}, {Environment.ProcessorCount} cores");

        // The whole run, set-up and clean-up included, under one watchdog: it can fail, never hang.
        using var watchdog = new CancellationTokenSource(duration + TimeSpan.FromSeconds(120));
        var elapsed = Stopwatch.StartNew();
        using var worker = await WorkerProcess.StartAsync(hostAssembly, TimeSpan.FromSeconds(10), CapacityMegabytes, watchdog.Token);
        RaySharingClientOptions Options(string name) => new()
        {
            Address = new Uri(worker.Address),
            ClientName = name,
            // Shorter than the harness's bound, so a slow call is reported by the library, typed.
            CallTimeout = TimeSpan.FromSeconds(15),
            StreamIdleTimeout = TimeSpan.FromSeconds(15),
        };

        var clients = await BoundedCall.RunAsync("connect", CallBound * 3, token => Task.WhenAll(Enumerable.Range(0, sessionCount)
            .Select(i => RaySharingClient.ConnectAsync(Options($"load-{i}"), token))), watchdog.Token);
        var random = new Random(seed);
        var sessions = new LoadSession[sessionCount];
        for (var i = 0; i < sessionCount; i++)
        {
            // A holder is used through the client that looked it up (the client checks this on put).
            var client = clients[i];
            var holder = await BoundedCall.RunAsync("holder", CallBound, token => i == 0
                ? client.GetOrCreateHolderAsync(HolderName, HolderLifetime.Detached, cancellationToken: token)
                : client.GetHolderAsync(HolderName, cancellationToken: token), watchdog.Token);
            sessions[i] = new LoadSession(i, client, holder, new Random(random.Next()));
        }

        var load = Stopwatch.StartNew();
        await Task.WhenAll(sessions.Select(s => s.RunAsync(duration, watchdog.Token))).WaitAsync(duration + CallBound * 2, watchdog.Token);
        var loadTime = load.Elapsed;

        await Task.WhenAll(sessions.Select(s => s.CleanUpAsync(watchdog.Token))).WaitAsync(CallBound * 6, watchdog.Token);
        var tally = new LoadTally();
        foreach (var session in sessions)
        {
            tally.Merge(session.Tally);
        }

        // Disposing ends each session; a disposal must never throw.
        await Task.WhenAll(clients.Select((client, i) => DisposeAsync(client, i, tally))).WaitAsync(CallBound * 2, watchdog.Token);

        // Every key unregistered, every borrow released, every session closed: the store must be empty.
        var observer = await BoundedCall.RunAsync("connect", CallBound, token => RaySharingClient.ConnectAsync(Options("load-observer"), token), watchdog.Token);
        var waited = Stopwatch.StartNew();
        WorkerStats stats;
        while (true)
        {
            stats = await BoundedCall.RunAsync("stats", CallBound, token => observer.GetWorkerStatsAsync(token), watchdog.Token);
            if ((stats.Store.Objects == 0 && stats.Store.UsedBytes == 0) || waited.Elapsed > LeakWait)
            {
                break;
            }

            await Task.Delay(50, watchdog.Token);
        }

        await DisposeAsync(observer, sessionCount, tally);

        var leaks = stats.Store.Objects > 0 ? (int)stats.Store.Objects : stats.Store.UsedBytes > 0 ? 1 : 0;
        var report = new Report("RaySharing load", commandLine);
        report.Row("seed", seed);
        report.Row("sessions", sessionCount);
        report.Row("duration", $"{loadTime.TotalSeconds:0.0} s of load, {elapsed.Elapsed.TotalSeconds:0.0} s in all");
        tally.AddTo(report, loadTime);
        report.Row("leaks", leaks == 0
            ? "0"
            : $"{leaks}: after {waited.Elapsed.TotalSeconds:0.0} s the worker holds {stats.Store.Objects} objects and {stats.Store.UsedBytes} bytes (expected 0)");
        // Informative: a session whose client failed to close it lingers until its lease lapses.
        report.Row("sessions open at the end", $"{stats.Sessions} (the observer's included)");
        report.Problems(tally.Problems);
        var passed = tally.Lost == 0 && tally.Wrong == 0 && tally.Errors == 0 && leaks == 0;
        report.Print(passed);
        if (outPath is not null)
        {
            report.WriteMarkdown(outPath, passed);
            Console.WriteLine($"load: wrote {outPath}");
        }

        worker.Kill();
        return passed ? 0 : 1;
    }

    /// <param name="session">The session's index; the observer's is the session count.</param>
    private static async Task DisposeAsync(RaySharingClient client, int session, LoadTally tally)
    {
        try
        {
            await BoundedCall.RunAsync("dispose", CallBound, _ => client.DisposeAsync().AsTask(), CancellationToken.None);
        }
        catch (Exception ex)
        {
            // Disposals run concurrently, and the tally is not thread-safe.
            lock (tally)
            {
                tally.Failed("Dispose", Outcome.Of(ex).OfDisposal(), $"session {session}");
            }
        }
    }
}
