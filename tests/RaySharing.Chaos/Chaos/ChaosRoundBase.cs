using System.Globalization;
using RaySharing.Chaos.Infrastructure;
using RaySharing.Chaos.Roles;
using RaySharing.Testing;
using RaySharing.Wire;

namespace RaySharing.Chaos.Chaos;

/// <summary>
/// What the rounds of both chaos harnesses share: their child processes (executors, a driver) and the kills aimed at
/// them, the harness's own bounded borrows and gets, and how each outcome is checked and counted.
/// </summary>
internal abstract class ChaosRoundBase(ChaosTally tally, int number, KillKind kill, Random random)
{
    protected const int Executors = 3;

    /// <summary>How long a child may take to announce itself or to exit: longer than its own bounds, so it reports first.</summary>
    protected static readonly TimeSpan ChildBound = TimeSpan.FromSeconds(75);

    /// <summary>How long killed children's sessions may take to end (their lease, plus slack) before it is a leak.</summary>
    protected static readonly TimeSpan LeakWait = TimeSpan.FromSeconds(5);

    private readonly List<ChildProcess> _children = [];

    /// <summary>Refs the harness borrowed this round, released at its clean-up.</summary>
    protected List<ObjectRef> Held { get; } = [];

    /// <summary>A remark for the round's line in the log: where its kill landed.</summary>
    public string Note { get; protected set; } = string.Empty;

    protected ChaosTally Tally { get; } = tally;

    protected int Number { get; } = number;

    protected KillKind Kill { get; } = kill;

    protected Random Random { get; } = random;

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

    protected abstract Task RunCoreAsync(CancellationToken cancellationToken);

    /// <summary>Kill (a): a random 0–60 ms after the executor says it starts its (large) put.</summary>
    protected async Task KillMidPutAsync(ChildProcess victim, CancellationToken cancellationToken)
    {
        try
        {
            await victim.WaitForLineAsync(ChildLines.Putting, ChildBound, cancellationToken).ConfigureAwait(false);
        }
        catch (ChildFailedException ex)
        {
            ChildFailed(victim, ex.Message);
        }

        await Task.Delay(Random.Next(0, 61), cancellationToken).ConfigureAwait(false);
        var landing = !victim.HasLine(ChildLines.Put + " ") ? "mid-put"
            : !victim.HasLine(ChildLines.Ready + " ") ? "after the put, before READY"
            : "after READY";
        victim.Kill();
        Tally.Kill(Kill, landing);
        Note = $"; {victim.Name} killed {landing}";
    }

    /// <summary>Waits for every executor to exit and collects the objects they announced.</summary>
    protected async Task<Dictionary<ObjectId, ExecutorObject>> CollectExecutorsAsync(ChildProcess[] executors, ChildProcess? victim, CancellationToken cancellationToken)
    {
        var announced = new Dictionary<ObjectId, ExecutorObject>();
        foreach (var executor in executors)
        {
            if (!await executor.WaitForExitAsync(ChildBound, cancellationToken).ConfigureAwait(false))
            {
                Tally.Hang($"round {Number}: {executor.Name} did not exit within {ChildBound.TotalSeconds:0} s: {executor.Describe()}");
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

    /// <summary>Checks every line the driver printed: exact crcs, typed errors, and no announced object missing.</summary>
    protected void CheckDriver(ChildProcess driver, Dictionary<ObjectId, ExecutorObject> announced, bool workerKilled)
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
                Tally.Violation($"round {Number}: the driver ended without DONE: {driver.Describe()}");
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
            Tally.Violation($"round {Number}: LOST: announced object {id} was missing from the driver's fetch");
        }
    }

    protected static Task<WorkerStats> StatsAsync(RaySharingClient client, CancellationToken cancellationToken) =>
        BoundedCall.RunAsync("stats", ChaosHarness.CallBound, token => client.GetWorkerStatsAsync(token), cancellationToken);

    /// <summary>Rebuilds a ref from its envelope and gets it. A failed borrow is where the get ended: it is the get's outcome.</summary>
    protected async Task<Outcome> BorrowAndGetAsync(RaySharingClient client, byte[] envelope, uint crc, CancellationToken cancellationToken)
    {
        var (objectRef, borrowed) = await BorrowAsync(client, envelope, cancellationToken).ConfigureAwait(false);
        return objectRef is null ? borrowed : await GetAsync(client, objectRef, crc, cancellationToken).ConfigureAwait(false);
    }

    protected async Task<(ObjectRef? Ref, Outcome Outcome)> BorrowAsync(RaySharingClient client, byte[] envelope, CancellationToken cancellationToken)
    {
        try
        {
            var objectRef = await BoundedCall.RunAsync("borrow", ChaosHarness.CallBound, token => client.BorrowFromEnvelopeAsync(envelope, token), cancellationToken).ConfigureAwait(false);
            Held.Add(objectRef);
            return (objectRef, Outcome.Ok);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            CheckContext(ex, EnvelopeCodec.Decode(envelope), "borrow");
            return (null, Outcome.Of(ex));
        }
    }

    /// <summary>One bounded get, classified; <paramref name="expectedCrc"/> is the putter's own checksum when known.</summary>
    protected async Task<Outcome> GetAsync(RaySharingClient client, ObjectRef objectRef, uint? expectedCrc, CancellationToken cancellationToken)
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
    protected void CheckContext(Exception exception, RefEnvelope envelope, string call)
    {
        if (exception is OwnerDiedException died
            && (died.ObjectId != envelope.ObjectId || died.HolderNamespace != envelope.Owner.Namespace
                || died.HolderName != envelope.Owner.Name || died.Incarnation != envelope.Owner.HolderIncarnation))
        {
            Tally.Violation($"round {Number}: the {call} of {envelope.ObjectId} failed with an OwnerDiedException about object {died.ObjectId}, " +
                $"holder '{died.HolderNamespace}/{died.HolderName}' incarnation {died.Incarnation}; the ref is owned by {envelope.Owner}");
        }
    }

    /// <summary>Counts a child that gave up although nothing it depends on was killed.</summary>
    protected void ChildFailed(ChildProcess child, string why)
    {
        var failed = child.Lines.FirstOrDefault(l => l.StartsWith(ChildLines.Failed + " ", StringComparison.Ordinal));
        var outcome = failed is null ? new Outcome(OutcomeKind.Untyped, "no FAILED line") : Outcome.FromPrinted(failed.Split(' ')[1]);
        RecordChildOutcome(outcome, Expect.Ok, Source.OtherCall, Where($"{child.Name} failed ({why}): {child.Describe()}"));
    }

    /// <summary>Counts a child's client disposal that threw: it never should.</summary>
    protected void CheckDisposal(ChildProcess child)
    {
        foreach (var line in child.Lines.Where(l => l.StartsWith(ChildLines.DisposeFailed + " ", StringComparison.Ordinal)))
        {
            var parts = line.Split(' ', 3);
            Tally.Record(Outcome.FromPrinted(parts[1], parts.Length > 2 ? parts[2] : string.Empty).OfDisposal(), Expect.Any, Source.OtherCall, Where($"{child.Name} disposing its client"));
        }
    }

    /// <summary>Records what a child reported; its own session having ended is a lapsed lease, not a broken promise.</summary>
    protected void RecordChildOutcome(Outcome outcome, Expect expect, Source source, string where)
    {
        if (outcome.Name == nameof(SessionExpiredException))
        {
            Tally.Record(outcome, Expect.Any, source, where);
            Tally.LeaseLapsed(where);
            return;
        }

        Tally.Record(outcome, expect, source, where);
    }

    protected void Record(Outcome outcome, Expect expect, string what, Source source = Source.HarnessGet) =>
        Tally.Record(outcome, expect, source, Where(what));

    protected string Where(string what) => $"round {Number} {Kill.Label()}: {what}";

    protected ChildProcess Start(string name, params string[] arguments)
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
    protected string RandomPath()
    {
        switch (Random.Next(3))
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
    protected int RandomSize(int max)
    {
        const int Min = 1 << 10;
        const int UnaryMax = 1 << 20;
        return Random.Next(2) == 0 ? Random.Next(Min, UnaryMax + 1) : Random.Next(UnaryMax + 1, max + 1);
    }

    protected static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Fetches the job (<paramref name="fetch"/>, one bounded call) and gets every ref through <paramref name="client"/>, each
    /// checked against the crc its executor announced; an announced object missing from the list is LOST.
    /// </summary>
    protected async Task VerifyFetchedAsync(RaySharingClient client, Func<CancellationToken, Task<IReadOnlyList<ObjectRef>>> fetch,
        Dictionary<ObjectId, ExecutorObject> announced, Expect fetchExpect, string what, CancellationToken cancellationToken)
    {
        try
        {
            var refs = await BoundedCall.RunAsync("fetch", ChaosHarness.CallBound, fetch, cancellationToken).ConfigureAwait(false);
            Held.AddRange(refs);
            Record(Outcome.Ok, fetchExpect, what, Source.OtherCall);
            foreach (var objectRef in refs)
            {
                // A victim killed between its register and its READY left an object nobody announced; the
                // client still checks its bytes against the envelope's checksum.
                uint? crc = announced.TryGetValue(objectRef.Id, out var put) ? put.Crc : null;
                Record(await GetAsync(client, objectRef, crc, cancellationToken).ConfigureAwait(false), Expect.Ok, $"get of fetched {objectRef.Id}");
            }

            foreach (var id in announced.Keys.Except(refs.Select(r => r.Id)))
            {
                Tally.Violation($"round {Number}: LOST: announced object {id} was missing from the harness's fetch");
            }
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Record(Outcome.Of(ex), fetchExpect, what, Source.OtherCall);
        }
    }

    /// <summary>
    /// Waits until the driver fetched, then a random 0–100 ms, so that a kill lands among its gets; returns where it
    /// would land ("before DONE" or "after DONE").
    /// </summary>
    protected async Task<string> AfterDriverFetchedAsync(ChildProcess driver, CancellationToken cancellationToken)
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
                Tally.Violation($"round {Number}: {ex.Message}");
            }
        }

        // The driver's gets take tens of milliseconds, so the delay is short enough to land among them.
        await Task.Delay(Random.Next(0, 101), cancellationToken).ConfigureAwait(false);
        return driver.HasLine(ChildLines.Done) ? "after DONE" : "before DONE";
    }
}
