using System.Diagnostics;
using RaySharing.Chaos.Infrastructure;
using RaySharing.Chaos.Roles;
using RaySharing.Testing;
using RaySharing.Wire;

namespace RaySharing.Chaos.Chaos;

/// <summary>
/// One round of the cluster harness. Executor processes, clients of the storing worker, put objects owned by CHAOS (on
/// the holder's worker) and register them under the round's job key: the bytes must stay on the storing worker. A
/// driver process, a client of the reading worker, fetches and gets them. One process is SIGKILLed, and the harness
/// checks what the cluster promises for it:
/// <list type="bullet">
/// <item>an executor mid-put, the driver mid-get, or redis-server restarted empty: nothing announced is lost, every
/// get returns the putter's bytes;</item>
/// <item>the holder's worker: within a few cluster leases every announced object reads OWNER_DIED from the reading
/// worker, and the storing worker has freed them all;</item>
/// <item>the storing worker: every announced object reads OBJECT_LOST, and CHAOS lists each one lost;</item>
/// </list>
/// and every get in between returns the right bytes or a typed error, never a hang. Then each worker must be back to
/// its baseline: no objects, no bytes, and on the holder's worker CHAOS alone.
/// </summary>
internal sealed class ClusterChaosRound(ClusterChaosHarness harness, int number, KillKind kill, Random random)
    : ChaosRoundBase(harness.Tally, number, kill, random)
{
    /// <summary>How long a death may take to show everywhere: the dead worker's record lapses, then a renewal of each other notices.</summary>
    private static readonly TimeSpan DeathBound = ClusterChaosHarness.ClusterLease * 4;

    protected override async Task RunCoreAsync(CancellationToken cancellationToken)
    {
        await harness.EnsureWorkersAsync(cancellationToken).ConfigureAwait(false);
        var storing = harness.StoringWorker;
        var jobKey = $"job-{Number}";

        var sizes = Enumerable.Range(0, Executors).Select(_ => RandomSize(8 << 20)).ToArray();
        if (Kill == KillKind.ExecutorMidPut)
        {
            // Large, so that a kill aimed at the put lands while its bytes are in flight.
            sizes[0] = Random.Next(32 << 20, (48 << 20) + 1);
        }

        var executors = sizes.Select((size, i) => Start($"executor {i}", "executor", "--address", storing.Address, "--holder", ClusterChaosHarness.HolderName,
            "--key", jobKey, "--size", Text(size), "--seed", Text(Random.Next()), "--path", RandomPath())).ToArray();
        ChildProcess? victim = null;
        if (Kill == KillKind.ExecutorMidPut)
        {
            victim = executors[0];
            await KillMidPutAsync(victim, cancellationToken).ConfigureAwait(false);
        }

        var announced = await CollectExecutorsAsync(executors, victim, cancellationToken).ConfigureAwait(false);
        foreach (var put in announced.Values)
        {
            var location = EnvelopeCodec.Decode(put.Envelope).Location;
            if (location.Address != storing.Address)
            {
                Tally.Violation($"round {Number}: object {put.Id} was put through the storing worker ({storing.Address}) but its envelope says it is stored at {location.Address}");
            }
        }

        if (Kill == KillKind.RedisRestart)
        {
            await RestartRedisAsync(cancellationToken).ConfigureAwait(false);
        }

        var killed = await RunDriverAsync(jobKey, announced, cancellationToken).ConfigureAwait(false);
        switch (killed)
        {
            case KillKind.HoldersWorkerMidGet:
                await ExpectEverywhereAsync(announced, nameof(OwnerDiedException), cancellationToken).ConfigureAwait(false);
                // Nothing to unregister: the holder died. What the storing worker kept for it must go by itself.
                Held.Clear();
                await CheckStoresEmptyAsync([harness.StoringWorker, harness.ReadingWorker], DeathBound, cancellationToken).ConfigureAwait(false);
                break;
            case KillKind.StoringWorkerMidGet:
                await ExpectEverywhereAsync(announced, nameof(ObjectLostException), cancellationToken).ConfigureAwait(false);
                await ExpectListedLostAsync(jobKey, announced, cancellationToken).ConfigureAwait(false);
                await CleanUpAsync(jobKey, cancellationToken).ConfigureAwait(false);
                await CheckStoresEmptyAsync([harness.HoldersWorker, harness.ReadingWorker], LeakWait, cancellationToken).ConfigureAwait(false);
                break;
            default:
                await VerifyJobAsync(jobKey, announced, cancellationToken).ConfigureAwait(false);
                await CleanUpAsync(jobKey, cancellationToken).ConfigureAwait(false);
                await CheckStoresEmptyAsync([harness.HoldersWorker, harness.StoringWorker, harness.ReadingWorker], LeakWait, cancellationToken).ConfigureAwait(false);
                break;
        }
    }

    /// <summary>Kill (g): redis-server SIGKILLed and started again empty; every worker writes itself and its holders back.</summary>
    private async Task RestartRedisAsync(CancellationToken cancellationToken)
    {
        var stopwatch = Stopwatch.StartNew();
        await harness.RestartRedisAsync(cancellationToken).ConfigureAwait(false);
        Tally.Kill(Kill, "after the executors, before the driver");

        // Until the holder's worker renews, the name reads missing (documented): the driver starts once it is back.
        var reader = harness.ReadingWorker.Client!;
        while (true)
        {
            try
            {
                var found = await BoundedCall.RunAsync("get CHAOS after the restart", ChaosHarness.CallBound,
                    token => reader.GetHolderAsync(ClusterChaosHarness.HolderName, cancellationToken: token), cancellationToken).ConfigureAwait(false);
                if (found.Incarnation != harness.Holder.Incarnation)
                {
                    Tally.Violation($"round {Number}: after the Redis restart CHAOS is incarnation {found.Incarnation}, was {harness.Holder.Incarnation}");
                }

                break;
            }
            catch (Exception ex) when (ex is HolderNotFoundException or WorkerUnavailableException && stopwatch.Elapsed < DeathBound)
            {
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }

        Note = $"; CHAOS found again {stopwatch.Elapsed.TotalMilliseconds:0} ms after the restart began";
    }

    /// <summary>Runs the driver on the reading worker; kills (b), (e) or (f) a random moment after it fetched. Returns the kill made, if any.</summary>
    private async Task<KillKind?> RunDriverAsync(string jobKey, Dictionary<ObjectId, ExecutorObject> announced, CancellationToken cancellationToken)
    {
        var driver = Start("driver", "driver", "--address", harness.ReadingWorker.Address, "--holder", ClusterChaosHarness.HolderName, "--key", jobKey, "--path", RandomPath());
        KillKind? killed = null;
        if (Kill is KillKind.DriverMidGet or KillKind.HoldersWorkerMidGet or KillKind.StoringWorkerMidGet)
        {
            var landing = await AfterDriverFetchedAsync(driver, cancellationToken).ConfigureAwait(false);
            switch (Kill)
            {
                case KillKind.DriverMidGet:
                    driver.Kill();
                    break;
                case KillKind.HoldersWorkerMidGet:
                    harness.HoldersWorker.Kill();
                    break;
                default:
                    harness.StoringWorker.Kill();
                    break;
            }

            killed = Kill;
            Tally.Kill(Kill, landing);
            Note = $"; killed {landing}";
        }

        if (!driver.WasKilled && !await driver.WaitForExitAsync(ChildBound, cancellationToken).ConfigureAwait(false))
        {
            Tally.Hang($"round {Number}: the driver did not exit within {ChildBound.TotalSeconds:0} s: {driver.Describe()}");
        }

        // A worker killed under the driver: its gets may end in any typed error (the object's owner or bytes died).
        CheckDriver(driver, announced, workerKilled: killed is KillKind.HoldersWorkerMidGet or KillKind.StoringWorkerMidGet);
        return killed is KillKind.DriverMidGet ? null : killed;
    }

    /// <summary>
    /// After a worker's death: every announced object, borrowed by its envelope and read through the reading worker,
    /// must come to fail with <paramref name="expected"/> within <see cref="DeathBound"/>; until then it may still read
    /// (the right bytes) or say the worker is unavailable.
    /// </summary>
    private async Task ExpectEverywhereAsync(Dictionary<ObjectId, ExecutorObject> announced, string expected, CancellationToken cancellationToken)
    {
        var client = harness.ReadingWorker.Client!;
        var sinceKill = Stopwatch.StartNew();
        foreach (var put in announced.Values)
        {
            Outcome outcome;
            while (true)
            {
                outcome = await BorrowAndGetAsync(client, put.Envelope, put.Crc, cancellationToken).ConfigureAwait(false);
                if (outcome.Name == expected || !(outcome.IsOk || outcome.Name == nameof(WorkerUnavailableException)) || sinceKill.Elapsed > DeathBound)
                {
                    break;
                }

                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }

            Record(outcome, Expect.Error(expected), $"object {put.Id} by envelope after the {(Kill == KillKind.HoldersWorkerMidGet ? "holder's" : "storing")} worker was killed");
        }

        if (announced.Count > 0)
        {
            Note += $"; {expected} everywhere {sinceKill.Elapsed.TotalMilliseconds:0} ms after the kill";
        }
    }

    /// <summary>After kill (f): CHAOS's registry names every announced object lost, under the job key.</summary>
    private async Task ExpectListedLostAsync(string jobKey, Dictionary<ObjectId, ExecutorObject> announced, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        IReadOnlyList<LostRef> lost;
        while (true)
        {
            lost = await BoundedCall.RunAsync("list lost", ChaosHarness.CallBound, token => harness.Holder.GetLostRefsAsync(token), cancellationToken).ConfigureAwait(false);
            if (announced.Keys.All(id => lost.Any(l => l.ObjectId == id)) || waited.Elapsed > DeathBound)
            {
                break;
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        foreach (var id in announced.Keys.Where(id => !lost.Any(l => l.ObjectId == id && l.Key == jobKey)))
        {
            Tally.Violation($"round {Number}: object {id} of the killed storing worker is not in CHAOS's lost refs under {jobKey} {waited.Elapsed.TotalMilliseconds:0} ms after the kill");
        }
    }

    /// <summary>Fetches the job through the reading worker and gets every ref, and every announced object by its envelope.</summary>
    private async Task VerifyJobAsync(string jobKey, Dictionary<ObjectId, ExecutorObject> announced, CancellationToken cancellationToken)
    {
        var client = harness.ReadingWorker.Client!;
        var fetchExpect = announced.Count == 0 ? Expect.Any : Expect.Ok;
        await VerifyFetchedAsync(client, async token =>
            {
                var holder = await client.GetHolderAsync(ClusterChaosHarness.HolderName, cancellationToken: token).ConfigureAwait(false);
                return await holder.FetchAsync(jobKey, token).ConfigureAwait(false);
            }, announced, fetchExpect, "fetch of the job key through the reading worker", cancellationToken).ConfigureAwait(false);

        foreach (var put in announced.Values)
        {
            Record(await BorrowAndGetAsync(client, put.Envelope, put.Crc, cancellationToken).ConfigureAwait(false), Expect.Ok, $"executor object {put.Id} by envelope");
        }
    }

    /// <summary>Unregisters the job on CHAOS and releases the harness's refs; then the children go.</summary>
    private async Task CleanUpAsync(string jobKey, CancellationToken cancellationToken)
    {
        try
        {
            await BoundedCall.RunAsync("unregister", ChaosHarness.CallBound, token => harness.Holder.UnregisterAsync(jobKey, token), cancellationToken).ConfigureAwait(false);
            await BoundedCall.RunAsync("release", ChaosHarness.CallBound, token => harness.ReadingWorker.Client!.ReleaseAsync(Held, token), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Record(Outcome.Of(ex), Expect.Ok, "clean-up", Source.OtherCall);
        }

        Held.Clear();
        KillChildren();
    }

    /// <summary>Back to baseline: each live worker of <paramref name="members"/> holds no object and no byte within <paramref name="bound"/>; CHAOS is the only holder.</summary>
    private async Task CheckStoresEmptyAsync(ClusterChaosHarness.Member[] members, TimeSpan bound, CancellationToken cancellationToken)
    {
        KillChildren();
        foreach (var member in members)
        {
            var waited = Stopwatch.StartNew();
            var stats = await StatsAsync(member.Client!, cancellationToken).ConfigureAwait(false);
            while ((stats.Store.Objects != 0 || stats.Store.UsedBytes != 0) && waited.Elapsed < bound)
            {
                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
                stats = await StatsAsync(member.Client!, cancellationToken).ConfigureAwait(false);
            }

            var holders = member == harness.HoldersWorker ? 1 : 0;
            if (stats.Store.Objects != 0 || stats.Store.UsedBytes != 0 || stats.Holders != holders)
            {
                Tally.Leak($"round {Number} ({Kill.Label()}): {waited.Elapsed.TotalSeconds:0.0} s after the clean-up the {member.Name} has " +
                    $"{stats.Store.Objects} objects and {stats.Store.UsedBytes} bytes (expected 0), {stats.Holders} holders (expected {holders})");
            }
        }
    }
}
