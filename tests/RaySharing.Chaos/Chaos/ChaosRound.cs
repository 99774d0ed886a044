using System.Diagnostics;
using System.Globalization;
using RaySharing.Chaos.Infrastructure;
using RaySharing.Chaos.Roles;
using RaySharing.Testing;
using RaySharing.Wire;

namespace RaySharing.Chaos.Chaos;

/// <summary>
/// One chaos round. Executor processes put objects owned by CHAOS and register them under the
/// round's job key; a creator process makes the session-lifetime holder <c>S-&lt;round&gt;</c> with an
/// object of its own; a driver process fetches and gets the job. Exactly one process is SIGKILLed
/// along the way. Then the harness gets every ref it knows, checks each outcome against what the
/// design promises, and checks that the worker is back to its baseline: nothing leaked.
/// </summary>
internal sealed class ChaosRound(ChaosHarness harness, int number, KillKind kill, Random random) : ChaosRoundBase(harness.Tally, number, kill, random)
{
    private const string CreatorKey = "k";

    protected override async Task RunCoreAsync(CancellationToken cancellationToken)
    {
        await harness.EnsureWorkerAsync(cancellationToken).ConfigureAwait(false);
        var address = harness.Address;
        var jobKey = $"job-{Number}";

        // Executors and the creator start together, as a job's processes would.
        var sizes = new int[Executors];
        var executors = new ChildProcess[Executors];
        for (var i = 0; i < Executors; i++)
        {
            sizes[i] = RandomSize(16 << 20);
        }

        if (Kill == KillKind.ExecutorMidPut)
        {
            // The victim's put is large (32-64 MiB, tens of milliseconds on loopback), so that a kill aimed
            // at it lands while its bytes are in flight rather than after it.
            sizes[0] = Random.Next(32 << 20, (64 << 20) + 1);
        }

        for (var i = 0; i < Executors; i++)
        {
            executors[i] = Start($"executor {i}", "executor", "--address", address, "--holder", ChaosHarness.HolderName, "--key", jobKey,
                "--size", Text(sizes[i]), "--seed", Text(Random.Next()), "--path", RandomPath());
        }

        var creator = Start("holder-creator", "holder-creator", "--address", address, "--holder", $"S-{Number}", "--key", CreatorKey,
            "--size", Text(RandomSize(4 << 20)), "--seed", Text(Random.Next()), "--path", RandomPath());

        ChildProcess? victim = null;
        if (Kill == KillKind.ExecutorMidPut)
        {
            victim = executors[0];
            await KillMidPutAsync(victim, cancellationToken).ConfigureAwait(false);
        }

        var announced = await CollectExecutorsAsync(executors, victim, cancellationToken).ConfigureAwait(false);
        var (creatorObject, creatorRef) = await BorrowCreatorObjectAsync(creator, cancellationToken).ConfigureAwait(false);
        if (Kill == KillKind.HolderCreator)
        {
            await KillCreatorAsync(creator, creatorObject, creatorRef, cancellationToken).ConfigureAwait(false);
        }

        var workerKilled = await RunDriverAsync(address, jobKey, announced, cancellationToken).ConfigureAwait(false);
        if (workerKilled)
        {
            await RestartWorkerAsync(creatorObject, creatorRef, cancellationToken).ConfigureAwait(false);
        }

        if (creatorObject is not null)
        {
            // The session-lifetime holder's object by its envelope, as a stranger process would get it.
            var outcome = await BorrowAndGetAsync(harness.Client, creatorObject.Envelope, creatorObject.Crc, cancellationToken).ConfigureAwait(false);
            // A worker started afresh (another address) points the caller at the killed one: WRONG_WORKER.
            await RecordCreatorObjectAsync(outcome, workerKilled ? Expect.Error(nameof(WrongWorkerException))
                : Kill == KillKind.HolderCreator ? Expect.Error(nameof(OwnerDiedException)) : Expect.Ok,
                creator, "S object by envelope", cancellationToken).ConfigureAwait(false);
        }

        // The creator's part is over. Killed now, its lease lapses while the harness checks the job's objects.
        creator.Kill();
        await VerifyJobAsync(jobKey, announced, workerKilled, cancellationToken).ConfigureAwait(false);
        await CheckLeaksAsync(jobKey, cancellationToken).ConfigureAwait(false);
    }

    // ---- The processes and the kills ----

    /// <summary>
    /// Waits for the creator's object and borrows it while its creator lives, so the harness holds a ref
    /// whose owner it can then watch die.
    /// </summary>
    private async Task<(CreatorObject? Object, ObjectRef? Ref)> BorrowCreatorObjectAsync(ChildProcess creator, CancellationToken cancellationToken)
    {
        CreatorObject creatorObject;
        try
        {
            creatorObject = CreatorObject.Parse(await creator.WaitForLineAsync(ChildLines.Ready + " ", ChildBound, cancellationToken).ConfigureAwait(false));
        }
        catch (ChildFailedException ex)
        {
            ChildFailed(creator, ex.Message);
            return (null, null);
        }

        var (objectRef, borrowed) = await BorrowAsync(harness.Client, creatorObject.Envelope, cancellationToken).ConfigureAwait(false);
        if (objectRef is null)
        {
            await RecordCreatorObjectAsync(borrowed, Expect.Ok, creator, "borrow of the S object while its creator lives", cancellationToken).ConfigureAwait(false);
            return (creatorObject, null);
        }

        var outcome = await GetAsync(harness.Client, objectRef, creatorObject.Crc, cancellationToken).ConfigureAwait(false);
        await RecordCreatorObjectAsync(outcome, Expect.Ok, creator, "get of the S object while its creator lives", cancellationToken).ConfigureAwait(false);
        return (creatorObject, objectRef);
    }

    /// <summary>
    /// Kill (c): the creator of the session-lifetime holder. Its lease lapses, its session ends, the holder
    /// and its object die with it: the harness's ref must fail with OwnerDiedException within lease + 1 s.
    /// </summary>
    private async Task KillCreatorAsync(ChildProcess creator, CreatorObject? creatorObject, ObjectRef? creatorRef, CancellationToken cancellationToken)
    {
        await Task.Delay(Random.Next(0, 301), cancellationToken).ConfigureAwait(false);
        creator.Kill();
        var sinceKill = Stopwatch.StartNew();
        Tally.Kill(Kill, creator.HasLine(ChildLines.Ready) ? "after READY" : "before READY");
        if (creatorObject is null || creatorRef is null)
        {
            return;
        }

        var giveUp = ChaosHarness.Lease + TimeSpan.FromSeconds(5);
        Outcome outcome;
        while (true)
        {
            outcome = await GetAsync(harness.Client, creatorRef, creatorObject.Crc, cancellationToken).ConfigureAwait(false);
            if (!outcome.IsOk || sinceKill.Elapsed > giveUp)
            {
                break;
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }

        var latency = sinceKill.Elapsed;
        Record(outcome, Expect.Error(nameof(OwnerDiedException)), "get of the S object after its creator was killed");
        if (outcome.Name == nameof(OwnerDiedException))
        {
            Tally.OwnerDiedAfter(latency);
            var bound = ChaosHarness.Lease + TimeSpan.FromSeconds(1);
            if (latency > bound)
            {
                Tally.Violation($"round {Number}: OwnerDiedException came {latency.TotalMilliseconds:0} ms after the creator was killed; the bound is {bound.TotalMilliseconds:0} ms");
            }
        }

        Note = $"; owner died {latency.TotalMilliseconds:0} ms after the kill";
    }

    /// <summary>
    /// Runs the driver; kills (b) the driver or (d) the worker a random moment after the driver fetched.
    /// Returns whether the worker was killed.
    /// </summary>
    private async Task<bool> RunDriverAsync(string address, string jobKey, Dictionary<ObjectId, ExecutorObject> announced, CancellationToken cancellationToken)
    {
        var driver = Start("driver", "driver", "--address", address, "--holder", ChaosHarness.HolderName, "--key", jobKey, "--path", RandomPath());
        var workerKilled = false;
        if (Kill is KillKind.DriverMidGet or KillKind.WorkerMidTransfer)
        {
            var landing = await AfterDriverFetchedAsync(driver, cancellationToken).ConfigureAwait(false);
            if (Kill == KillKind.DriverMidGet)
            {
                driver.Kill();
            }
            else
            {
                harness.KillWorker();
                workerKilled = true;
            }

            Tally.Kill(Kill, landing);
            Note = $"; killed {landing}";
        }

        if (!driver.WasKilled && !await driver.WaitForExitAsync(ChildBound, cancellationToken).ConfigureAwait(false))
        {
            Tally.Hang($"round {Number}: the driver did not exit within {ChildBound.TotalSeconds:0} s: {driver.Describe()}");
        }

        CheckDriver(driver, announced, workerKilled);
        return workerKilled;
    }

    /// <summary>
    /// After kill (d): the harness's client still points at the dead worker, and a get through it must fail
    /// typed and fast. Then a fresh worker is started and connected.
    /// </summary>
    private async Task RestartWorkerAsync(CreatorObject? creatorObject, ObjectRef? creatorRef, CancellationToken cancellationToken)
    {
        if (creatorObject is not null && creatorRef is not null)
        {
            Record(await GetAsync(harness.Client, creatorRef, creatorObject.Crc, cancellationToken).ConfigureAwait(false),
                Expect.Error(nameof(WorkerUnavailableException)), "get through a client of the killed worker");
        }

        // Those borrows died with the worker.
        Held.Clear();
        await harness.ResetWorkerAsync().ConfigureAwait(false);
        await harness.EnsureWorkerAsync(cancellationToken).ConfigureAwait(false);
    }

    // ---- The harness's own gets ----

    /// <summary>
    /// Gets every object of the job, through the holder's registry and through the envelopes the
    /// executors printed, and checks each outcome.
    /// </summary>
    private async Task VerifyJobAsync(string jobKey, Dictionary<ObjectId, ExecutorObject> announced, bool workerRestarted, CancellationToken cancellationToken)
    {
        var client = harness.Client;

        // 1. The registry, through the holder. On a restarted worker CHAOS is a new incarnation that never had
        //    the key; with no executor announced, the key may never have been registered.
        var fetchExpect = workerRestarted ? Expect.Error(nameof(RegistryKeyNotFoundException))
            : announced.Count == 0 ? Expect.Any
            : Expect.Ok;
        await VerifyFetchedAsync(client, token => harness.Holder.FetchAsync(jobKey, token), announced, fetchExpect, "fetch of the job key", cancellationToken).ConfigureAwait(false);

        // 2. Every announced object by its envelope, as a stranger process would. The worker started afresh
        //    (another address) must say where the ref lives (WRONG_WORKER), never "not found" or a hang.
        foreach (var put in announced.Values)
        {
            var outcome = await BorrowAndGetAsync(harness.Client, put.Envelope, put.Crc, cancellationToken).ConfigureAwait(false);
            Record(outcome, workerRestarted ? Expect.Error(nameof(WrongWorkerException)) : Expect.Ok, $"executor object {put.Id} by envelope");
        }
    }

    /// <summary>
    /// Back to baseline: unregister the job, release the harness's refs, kill any child left, wait for
    /// the killed sessions to lapse; then the worker must hold no object, no byte, and only CHAOS.
    /// </summary>
    private async Task CheckLeaksAsync(string jobKey, CancellationToken cancellationToken)
    {
        var client = harness.Client;
        try
        {
            await BoundedCall.RunAsync("unregister", ChaosHarness.CallBound, token => harness.Holder.UnregisterAsync(jobKey, token), cancellationToken).ConfigureAwait(false);
            await BoundedCall.RunAsync("release", ChaosHarness.CallBound, token => client.ReleaseAsync(Held, token), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Record(Outcome.Of(ex), Expect.Ok, "clean-up", Source.OtherCall);
        }

        Held.Clear();
        KillChildren();

        var waited = Stopwatch.StartNew();
        var stats = await StatsAsync(client, cancellationToken).ConfigureAwait(false);
        // Sessions end at their lease; their objects are reclaimed in the background after that.
        while ((stats.Sessions != 1 || stats.Store.Objects != 0 || stats.Store.UsedBytes != 0) && waited.Elapsed < LeakWait)
        {
            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
            stats = await StatsAsync(client, cancellationToken).ConfigureAwait(false);
        }

        if (stats.Sessions != 1 || stats.Store.Objects != 0 || stats.Store.UsedBytes != 0 || stats.Holders != 1)
        {
            Tally.Leak($"round {Number} ({Kill.Label()}): {waited.Elapsed.TotalSeconds:0.0} s after the clean-up the worker has {stats.Sessions} sessions (expected 1), " +
                $"{stats.Store.Objects} objects and {stats.Store.UsedBytes} bytes (expected 0), {stats.Holders} holders (expected 1, CHAOS)");
        }
    }

    /// <summary>
    /// Records an outcome for the S object. When the owner died although its creator was never killed,
    /// the creator's own log tells a lease that lapsed while it lived (a starved process) from a holder
    /// that died for no reason (a bug).
    /// </summary>
    private async Task RecordCreatorObjectAsync(Outcome outcome, Expect expect, ChildProcess creator, string what, CancellationToken cancellationToken)
    {
        if (expect == Expect.Ok && outcome.Name == nameof(OwnerDiedException) && await LostSessionAsync(creator, cancellationToken).ConfigureAwait(false))
        {
            Tally.Record(outcome, Expect.Any, Source.HarnessGet, Where(what));
            Tally.LeaseLapsed(Where($"{what}: {creator.Name} was alive, but the worker ended its session: {creator.Describe()}"));
            return;
        }

        Record(outcome, expect, what);
    }

    /// <summary>Whether a child's client logged that the worker ended its session (it notices on its next renewal).</summary>
    private static async Task<bool> LostSessionAsync(ChildProcess child, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if (child.StderrTail.Contains(ChildRole.SessionLostLog, StringComparison.Ordinal))
            {
                return true;
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        return false;
    }

}
