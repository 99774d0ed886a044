using System.Diagnostics;
using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Chaos;

/// <summary>
/// The chaos harness: owns the worker process (reused across rounds until a round kills it), the
/// harness's own client and the detached holder CHAOS; runs the rounds, each under a watchdog, and
/// reports the tally.
/// </summary>
internal sealed class ChaosHarness : IChaosHarness
{
    public const string HolderName = "CHAOS";

    /// <summary>The worker's default lease, taken by every child: a killed child's session ends this fast.</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromSeconds(1);

    /// <summary>The harness's bound on each of its own calls (every get, fetch, borrow, release).</summary>
    public static readonly TimeSpan CallBound = TimeSpan.FromSeconds(20);

    /// <summary>A round normally takes a few seconds; one still running after this is a hang of its own.</summary>
    private static readonly TimeSpan RoundBudget = TimeSpan.FromSeconds(180);

    private const int CapacityMegabytes = 1024;

    private readonly string _hostAssembly;
    private WorkerProcess? _worker;
    private RaySharingClient? _client;
    private ObjectHolder? _holder;

    private ChaosHarness(string hostAssembly)
    {
        _hostAssembly = hostAssembly;
    }

    public ChaosTally Tally { get; } = new(KillKinds.SingleWorker);

    public string Address => _worker?.Address ?? throw new InvalidOperationException("No worker is running.");

    public RaySharingClient Client => _client ?? throw new InvalidOperationException("The harness is not connected.");

    /// <summary>The detached holder that owns every executor's object, on the current worker.</summary>
    public ObjectHolder Holder => _holder ?? throw new InvalidOperationException("The harness is not connected.");

    public static Task<int> RunAsync(CommandLine commandLine) =>
        ChaosRun.RunAsync(commandLine, "chaos", KillKinds.SingleWorker, $"worker lease {Lease.TotalMilliseconds:0} ms", Lease,
            hostAssembly => Task.FromResult<IChaosHarness>(new ChaosHarness(hostAssembly)));

    /// <summary>
    /// Starts a worker and connects to it unless one is running and connected, then gets or creates
    /// CHAOS. On a worker that has run earlier rounds CHAOS must be the same incarnation as before.
    /// </summary>
    public async Task EnsureWorkerAsync(CancellationToken cancellationToken)
    {
        if (_worker is { HasExited: false } && _client is not null)
        {
            var holder = await BoundedCall.RunAsync("get or create CHAOS", CallBound,
                token => _client.GetOrCreateHolderAsync(HolderName, HolderLifetime.Detached, cancellationToken: token), cancellationToken).ConfigureAwait(false);
            if (_holder is not null && holder.Incarnation != _holder.Incarnation)
            {
                Tally.Violation($"CHAOS was incarnation {_holder.Incarnation} and is now {holder.Incarnation} on the same worker: a detached holder died");
            }

            _holder = holder;
            return;
        }

        await ResetWorkerAsync().ConfigureAwait(false);
        _worker = await WorkerProcess.StartAsync(_hostAssembly, Lease, CapacityMegabytes, cancellationToken).ConfigureAwait(false);
        Tally.WorkersStarted++;
        _client = await BoundedCall.RunAsync("harness connect", CallBound, token => RaySharingClient.ConnectAsync(HarnessClientOptions(_worker.Address), token), cancellationToken).ConfigureAwait(false);
        _holder = await BoundedCall.RunAsync("create CHAOS", CallBound,
            token => _client.GetOrCreateHolderAsync(HolderName, HolderLifetime.Detached, cancellationToken: token), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The options of the harness's own clients.</summary>
    public static RaySharingClientOptions HarnessClientOptions(string address) => new()
    {
        Address = new Uri(address),
        ClientName = "chaos-harness",
        // The harness is not under test: a long lease keeps its session alive through CPU starvation.
        Lease = TimeSpan.FromSeconds(30),
        // Shorter than CallBound, so a slow call is reported by the library, typed, before it counts as a hang.
        CallTimeout = TimeSpan.FromSeconds(15),
        StreamIdleTimeout = TimeSpan.FromSeconds(15),
        ConnectTimeout = TimeSpan.FromSeconds(5),
    };

    /// <summary>SIGKILLs the worker. The harness's client stays, pointing at the dead worker, until <see cref="ResetWorkerAsync"/>.</summary>
    public void KillWorker() => _worker?.Kill();

    /// <summary>Drops the client and the worker, so that <see cref="EnsureWorkerAsync"/> starts afresh.</summary>
    public async Task ResetWorkerAsync()
    {
        if (_client is not null)
        {
            try
            {
                // Disposing closes the session; against a dead worker it fails fast and is swallowed.
                await BoundedCall.RunAsync("dispose", CallBound, _ => _client.DisposeAsync().AsTask(), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Tally.Record(Outcome.Of(ex).OfDisposal(), Expect.Any, Source.OtherCall, "the harness disposing its client");
            }
        }

        _client = null;
        _holder = null;
        _worker?.Kill();
        _worker?.Dispose();
        _worker = null;
    }

    public async ValueTask DisposeAsync() => await ResetWorkerAsync().ConfigureAwait(false);

    public async Task RunRoundAsync(int number, KillKind kind, Random random)
    {
        var round = new ChaosRound(this, number, kind, random);
        await RunRoundAsync(Tally, number, kind, RoundBudget, round.RunAsync, round.KillChildren, () => round.Note, ResetWorkerAsync).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs one round under a watchdog of <paramref name="budget"/>: a round still running then is a hang, anything
    /// escaping it a violation, and either resets the workers (<paramref name="reset"/>). Prints the round's line.
    /// </summary>
    public static async Task RunRoundAsync(ChaosTally tally, int number, KillKind kind, TimeSpan budget, Func<CancellationToken, Task> run,
        Action killChildren, Func<string> note, Func<Task> reset)
    {
        tally.Rounds++;
        var before = tally.Snapshot();
        var started = Stopwatch.StartNew();
        using var watchdog = new CancellationTokenSource(budget);
        try
        {
            // WaitAsync as well as the token: even an await that ignores the token cannot stall the run.
            await run(watchdog.Token).WaitAsync(budget + TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (Exception ex) when (watchdog.IsCancellationRequested)
        {
            tally.Hang($"round {number}: the round's watchdog fired after {budget.TotalSeconds:0} s ({ex.GetType().Name}: {ex.Message})");
            await reset().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Expected failures are classified inside the round; anything escaping it is a failure of the run.
            tally.Violation($"round {number} aborted: {ex.GetType().Name}: {ex.Message}");
            await reset().ConfigureAwait(false);
        }
        finally
        {
            killChildren();
        }

        Console.WriteLine($"round {number,3} {kind.Label(),-28} {tally.Snapshot().Since(before)}, {started.Elapsed.TotalSeconds:0.0} s{note()}");
    }
}
