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
internal sealed class ChaosRound(ChaosHarness harness, int number, KillKind kill, Random random)
{
    private const int Executors = 3;
    private const string CreatorKey = "k";

    /// <summary>How long a child may take to announce itself or to exit: longer than its own bounds, so it reports first.</summary>
    private static readonly TimeSpan ChildBound = TimeSpan.FromSeconds(75);

    /// <summary>How long killed children's sessions may take to end (their lease, plus slack) before it is a leak.</summary>
    private static readonly TimeSpan LeakWait = TimeSpan.FromSeconds(5);

    private readonly List<ChildProcess> _children = [];
    private readonly List<ObjectRef> _held = [];

    /// <summary>A remark for the round's line in the log: where its kill landed.</summary>
    public string Note { get; private set; } = string.Empty;

    private ChaosTally Tally => harness.Tally;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RunCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            KillChildren();
        }
    }

    /// <summary>SIGKILLs every child of the round still running. Idempotent.</summary>
    public void KillChildren()
    {
        lock (_children)
        {
            foreach (var child in _children)
            {
                child.Dispose();
            }

            _children.Clear();
        }
    }

    private async Task RunCoreAsync(CancellationToken cancellationToken)
    {
        await harness.EnsureWorkerAsync(cancellationToken).ConfigureAwait(false);
        var address = harness.Address;
        var jobKey = $"job-{number}";

        // Executors and the creator start together, as a job's processes would.
        var sizes = new int[Executors];
        var executors = new ChildProcess[Executors];
        for (var i = 0; i < Executors; i++)
        {
            sizes[i] = RandomSize(16 << 20);
        }

        if (kill == KillKind.ExecutorMidPut)
        {
            // The victim's put is large (32-64 MiB, tens of milliseconds on loopback), so that a kill aimed
            // at it lands while its bytes are in flight rather than after it.
            sizes[0] = random.Next(32 << 20, (64 << 20) + 1);
        }

        for (var i = 0; i < Executors; i++)
        {
            executors[i] = Start($"executor {i}", "executor", "--address", address, "--holder", ChaosHarness.HolderName, "--key", jobKey,
                "--size", Text(sizes[i]), "--seed", Text(random.Next()), "--path", RandomPath());
        }

        var creator = Start("holder-creator", "holder-creator", "--address", address, "--holder", $"S-{number}", "--key", CreatorKey,
            "--size", Text(RandomSize(4 << 20)), "--seed", Text(random.Next()), "--path", RandomPath());

        ChildProcess? victim = null;
        if (kill == KillKind.ExecutorMidPut)
        {
            victim = executors[0];
            await KillMidPutAsync(victim, cancellationToken).ConfigureAwait(false);
        }

        var announced = await CollectExecutorsAsync(executors, victim, cancellationToken).ConfigureAwait(false);
        var (creatorObject, creatorRef) = await BorrowCreatorObjectAsync(creator, cancellationToken).ConfigureAwait(false);
        if (kill == KillKind.HolderCreator)
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
            var outcome = await BorrowAndGetAsync(creatorObject.Envelope, creatorObject.Crc, cancellationToken).ConfigureAwait(false);
            // A worker started afresh (another address) points the caller at the killed one: WRONG_WORKER.
            await RecordCreatorObjectAsync(outcome, workerKilled ? Expect.Error(nameof(WrongWorkerException))
                : kill == KillKind.HolderCreator ? Expect.Error(nameof(OwnerDiedException)) : Expect.Ok,
                creator, "S object by envelope", cancellationToken).ConfigureAwait(false);
        }

        // The creator's part is over. Killed now, its lease lapses while the harness checks the job's objects.
        creator.Kill();
        await VerifyJobAsync(jobKey, announced, workerKilled, cancellationToken).ConfigureAwait(false);
        await CheckLeaksAsync(jobKey, cancellationToken).ConfigureAwait(false);
    }

    // ---- The processes and the kills ----

    /// <summary>Kill (a): a random 0–60 ms after the executor says it starts its (large) put.</summary>
    private async Task KillMidPutAsync(ChildProcess victim, CancellationToken cancellationToken)
    {
        try
        {
            await victim.WaitForLineAsync(ChildLines.Putting, ChildBound, cancellationToken).ConfigureAwait(false);
        }
        catch (ChildFailedException ex)
        {
            ChildFailed(victim, ex.Message);
        }

        await Task.Delay(random.Next(0, 61), cancellationToken).ConfigureAwait(false);
        var landing = !victim.HasLine(ChildLines.Put + " ") ? "mid-put"
            : !victim.HasLine(ChildLines.Ready + " ") ? "after the put, before READY"
            : "after READY";
        victim.Kill();
        Tally.Kill(kill, landing);
        Note = $"; {victim.Name} killed {landing}";
    }

    /// <summary>Waits for every executor to exit and collects the objects they announced.</summary>
    private async Task<Dictionary<ObjectId, ExecutorObject>> CollectExecutorsAsync(ChildProcess[] executors, ChildProcess? victim, CancellationToken cancellationToken)
    {
        var announced = new Dictionary<ObjectId, ExecutorObject>();
        foreach (var executor in executors)
        {
            if (!await executor.WaitForExitAsync(ChildBound, cancellationToken).ConfigureAwait(false))
            {
                Tally.Hang($"round {number}: {executor.Name} did not exit within {ChildBound.TotalSeconds:0} s: {executor.Describe()}");
                executor.Kill();
                continue;
            }

            CheckDisposal(executor);
            var ready = executor.Lines.FirstOrDefault(l => l.StartsWith(ChildLines.Ready + " ", StringComparison.Ordinal));
            if (ready is not null)
            {
                var announcement = ExecutorObject.Parse(ready);
                announced[announcement.Id] = announcement;
            }
            else if (executor != victim)
            {
                ChildFailed(executor, "exited without READY");
            }
        }

        return announced;
    }

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

        var (objectRef, borrowed) = await BorrowAsync(creatorObject.Envelope, cancellationToken).ConfigureAwait(false);
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
        await Task.Delay(random.Next(0, 301), cancellationToken).ConfigureAwait(false);
        creator.Kill();
        var sinceKill = Stopwatch.StartNew();
        Tally.Kill(kill, creator.HasLine(ChildLines.Ready) ? "after READY" : "before READY");
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
                Tally.Violation($"round {number}: OwnerDiedException came {latency.TotalMilliseconds:0} ms after the creator was killed; the bound is {bound.TotalMilliseconds:0} ms");
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
        if (kill is KillKind.DriverMidGet or KillKind.WorkerMidTransfer)
        {
            try
            {
                await driver.WaitForLineAsync(ChildLines.Fetched, ChildBound, cancellationToken).ConfigureAwait(false);
            }
            catch (ChildFailedException ex)
            {
                // A driver that finished without fetching printed why, and CheckDriver counts that.
                if (!driver.HasLine(ChildLines.Done))
                {
                    Tally.Violation($"round {number}: {ex.Message}");
                }
            }

            // The driver's gets take tens of milliseconds, so the delay is short enough to land among them.
            await Task.Delay(random.Next(0, 101), cancellationToken).ConfigureAwait(false);
            var landing = driver.HasLine(ChildLines.Done) ? "after DONE" : "before DONE";
            if (kill == KillKind.DriverMidGet)
            {
                driver.Kill();
            }
            else
            {
                harness.KillWorker();
                workerKilled = true;
            }

            Tally.Kill(kill, landing);
            Note = $"; killed {landing}";
        }

        if (!driver.WasKilled && !await driver.WaitForExitAsync(ChildBound, cancellationToken).ConfigureAwait(false))
        {
            Tally.Hang($"round {number}: the driver did not exit within {ChildBound.TotalSeconds:0} s: {driver.Describe()}");
        }

        CheckDriver(driver, announced, workerKilled);
        return workerKilled;
    }

    /// <summary>Checks every line the driver printed: exact crcs, typed errors, and no announced object missing.</summary>
    private void CheckDriver(ChildProcess driver, Dictionary<ObjectId, ExecutorObject> announced, bool workerKilled)
    {
        // Until the worker dies, nothing the driver reads is owned by a killed process: every get must succeed
        // (and the fetch too, unless no executor got as far as registering).
        var expect = workerKilled ? Expect.Any : Expect.Ok;
        var fetchExpect = workerKilled || announced.Count == 0 ? Expect.Any : Expect.Ok;
        var seen = new HashSet<ObjectId>();
        var fetchLapsed = false;
        foreach (var line in driver.Lines)
        {
            var parts = line.Split(' ');
            if (parts[0] == ChildLines.Ok && parts.Length == 3)
            {
                var id = ObjectId.Parse(parts[1]);
                seen.Add(id);
                var crc = Payload.ParseHex(parts[2]);
                var outcome = announced.TryGetValue(id, out var put) && put.Crc != crc
                    ? Outcome.Wrong($"driver read crc {parts[2]}, the executor put {Payload.Hex(put.Crc)}")
                    : Outcome.Ok;
                Tally.Record(outcome, expect, Source.DriverGet, Where($"driver get of {id}"));
            }
            else if (parts[0] == ChildLines.Err && parts.Length == 3)
            {
                var isGet = parts[1] is not (ChildLines.FetchTarget or ChildLines.ReleaseTarget);
                if (isGet)
                {
                    seen.Add(ObjectId.Parse(parts[1]));
                }

                var outcome = Outcome.FromPrinted(parts[2]);
                fetchLapsed |= parts[1] == ChildLines.FetchTarget && outcome.Name == nameof(SessionExpiredException);
                RecordChildOutcome(outcome, parts[1] == ChildLines.FetchTarget ? fetchExpect : expect, isGet ? Source.DriverGet : Source.OtherCall,
                    Where($"driver {parts[1]}: {driver.Describe()}"));
            }
            else if (parts[0] == ChildLines.Failed)
            {
                ChildFailed(driver, line);
            }
        }

        CheckDisposal(driver);

        if (!driver.HasLine(ChildLines.Done))
        {
            if (!driver.WasKilled && !workerKilled)
            {
                Tally.Violation($"round {number}: the driver ended without DONE: {driver.Describe()}");
            }

            return;
        }

        // A driver whose lease lapsed before its fetch saw no list at all: counted as a lapsed lease above, not as losses.
        if (fetchLapsed)
        {
            return;
        }

        // An acknowledged, registered put is never lost: a driver that finished saw every announced object.
        foreach (var id in announced.Keys.Where(id => !seen.Contains(id)))
        {
            Tally.Violation($"round {number}: LOST: announced object {id} was missing from the driver's fetch");
        }
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
        _held.Clear();
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
        try
        {
            var refs = await BoundedCall.RunAsync("fetch", ChaosHarness.CallBound, token => harness.Holder.FetchAsync(jobKey, token), cancellationToken).ConfigureAwait(false);
            _held.AddRange(refs);
            Record(Outcome.Ok, fetchExpect, "fetch of the job key", Source.OtherCall);
            foreach (var objectRef in refs)
            {
                // A victim killed between its register and its READY left an object nobody announced; the
                // client still checks its bytes against the envelope's checksum.
                uint? crc = announced.TryGetValue(objectRef.Id, out var put) ? put.Crc : null;
                Record(await GetAsync(client, objectRef, crc, cancellationToken).ConfigureAwait(false), Expect.Ok, $"get of fetched {objectRef.Id}");
            }

            foreach (var id in announced.Keys.Except(refs.Select(r => r.Id)))
            {
                Tally.Violation($"round {number}: LOST: announced object {id} was missing from the harness's fetch");
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Record(Outcome.Of(ex), fetchExpect, "fetch of the job key", Source.OtherCall);
        }

        // 2. Every announced object by its envelope, as a stranger process would. The worker started afresh
        //    (another address) must say where the ref lives (WRONG_WORKER), never "not found" or a hang.
        foreach (var put in announced.Values)
        {
            var outcome = await BorrowAndGetAsync(put.Envelope, put.Crc, cancellationToken).ConfigureAwait(false);
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
            await BoundedCall.RunAsync("release", ChaosHarness.CallBound, token => client.ReleaseAsync(_held, token), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Record(Outcome.Of(ex), Expect.Ok, "clean-up", Source.OtherCall);
        }

        _held.Clear();
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
            Tally.Leak($"round {number} ({kill.Label()}): {waited.Elapsed.TotalSeconds:0.0} s after the clean-up the worker has {stats.Sessions} sessions (expected 1), " +
                $"{stats.Store.Objects} objects and {stats.Store.UsedBytes} bytes (expected 0), {stats.Holders} holders (expected 1, CHAOS)");
        }
    }

    private static Task<WorkerStats> StatsAsync(RaySharingClient client, CancellationToken cancellationToken) =>
        BoundedCall.RunAsync("stats", ChaosHarness.CallBound, token => client.GetWorkerStatsAsync(token), cancellationToken);

    /// <summary>Rebuilds a ref from its envelope and gets it. A failed borrow is where the get ended: it is the get's outcome.</summary>
    private async Task<Outcome> BorrowAndGetAsync(byte[] envelope, uint crc, CancellationToken cancellationToken)
    {
        var (objectRef, borrowed) = await BorrowAsync(envelope, cancellationToken).ConfigureAwait(false);
        return objectRef is null ? borrowed : await GetAsync(harness.Client, objectRef, crc, cancellationToken).ConfigureAwait(false);
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

    private async Task<(ObjectRef? Ref, Outcome Outcome)> BorrowAsync(byte[] envelope, CancellationToken cancellationToken)
    {
        try
        {
            var objectRef = await BoundedCall.RunAsync("borrow", ChaosHarness.CallBound, token => harness.Client.BorrowFromEnvelopeAsync(envelope, token), cancellationToken).ConfigureAwait(false);
            _held.Add(objectRef);
            return (objectRef, Outcome.Ok);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            CheckContext(ex, EnvelopeCodec.Decode(envelope), "borrow");
            return (null, Outcome.Of(ex));
        }
    }

    /// <summary>One bounded get, classified; <paramref name="expectedCrc"/> is the putter's own checksum when known.</summary>
    private async Task<Outcome> GetAsync(RaySharingClient client, ObjectRef objectRef, uint? expectedCrc, CancellationToken cancellationToken)
    {
        try
        {
            var bytes = await BoundedCall.RunAsync("get", ChaosHarness.CallBound, token => client.GetBytesAsync(objectRef, token), cancellationToken).ConfigureAwait(false);
            var crc = Payload.Crc(bytes);
            return expectedCrc is { } expected && crc != expected
                ? Outcome.Wrong($"read crc {Payload.Hex(crc)}, the putter's is {Payload.Hex(expected)}")
                : Outcome.Ok;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            CheckContext(ex, EnvelopeCodec.Decode(objectRef.ToEnvelopeBytes()), "get");
            return Outcome.Of(ex);
        }
    }

    /// <summary>An <see cref="OwnerDiedException"/> must say which object, holder and incarnation it is about.</summary>
    private void CheckContext(Exception exception, RefEnvelope envelope, string call)
    {
        if (exception is OwnerDiedException died
            && (died.ObjectId != envelope.ObjectId || died.HolderNamespace != envelope.Owner.Namespace
                || died.HolderName != envelope.Owner.Name || died.Incarnation != envelope.Owner.HolderIncarnation))
        {
            Tally.Violation($"round {number}: the {call} of {envelope.ObjectId} failed with an OwnerDiedException about object {died.ObjectId}, " +
                $"holder '{died.HolderNamespace}/{died.HolderName}' incarnation {died.Incarnation}; the ref is owned by {envelope.Owner}");
        }
    }

    // ---- Helpers ----

    /// <summary>Counts a child that gave up although nothing it depends on was killed.</summary>
    private void ChildFailed(ChildProcess child, string why)
    {
        var failed = child.Lines.FirstOrDefault(l => l.StartsWith(ChildLines.Failed + " ", StringComparison.Ordinal));
        var outcome = failed is null ? new Outcome(OutcomeKind.Untyped, "no FAILED line") : Outcome.FromPrinted(failed.Split(' ')[1]);
        RecordChildOutcome(outcome, Expect.Ok, Source.OtherCall, Where($"{child.Name} failed ({why}): {child.Describe()}"));
    }

    /// <summary>Counts a child's client disposal that threw: it never should.</summary>
    private void CheckDisposal(ChildProcess child)
    {
        foreach (var line in child.Lines.Where(l => l.StartsWith(ChildLines.DisposeFailed + " ", StringComparison.Ordinal)))
        {
            var parts = line.Split(' ', 3);
            Tally.Record(Outcome.FromPrinted(parts[1], parts.Length > 2 ? parts[2] : string.Empty).OfDisposal(), Expect.Any, Source.OtherCall, Where($"{child.Name} disposing its client"));
        }
    }

    /// <summary>Records what a child reported; its own session having ended is a lapsed lease, not a broken promise.</summary>
    private void RecordChildOutcome(Outcome outcome, Expect expect, Source source, string where)
    {
        if (outcome.Name == nameof(SessionExpiredException))
        {
            Tally.Record(outcome, Expect.Any, source, where);
            Tally.LeaseLapsed(where);
            return;
        }

        Tally.Record(outcome, expect, source, where);
    }

    private void Record(Outcome outcome, Expect expect, string what, Source source = Source.HarnessGet) =>
        Tally.Record(outcome, expect, source, Where(what));

    private string Where(string what) => $"round {number} {kill.Label()}: {what}";

    private ChildProcess Start(string name, params string[] arguments)
    {
        var child = ChildProcess.StartSelf(name, arguments);
        lock (_children)
        {
            _children.Add(child);
        }

        return child;
    }

    /// <summary>
    /// A third of the children move bytes through the worker's shared memory (and the channel's Unix socket), a third
    /// over gRPC only, a third over the channel's TCP connections (frames and bulk bodies).
    /// </summary>
    private string RandomPath()
    {
        switch (random.Next(3))
        {
            case 0:
                Tally.SharedMemoryChildren++;
                return "shm";
            case 1:
                Tally.NetworkChildren++;
                return "network";
            default:
                Tally.ChannelChildren++;
                return "channel";
        }
    }

    /// <summary>Half the objects go in one message (1 KiB to 1 MiB), half stream in chunks (1 MiB to <paramref name="max"/>).</summary>
    private int RandomSize(int max)
    {
        const int Min = 1 << 10;
        const int UnaryMax = 1 << 20;
        return random.Next(2) == 0 ? random.Next(Min, UnaryMax + 1) : random.Next(UnaryMax + 1, max + 1);
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
