using Microsoft.Extensions.Logging.Abstractions;
using RaySharing.Wire;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using RaySharing.Worker.Hosting;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Storage;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Every state an object or an owner can be in after a holder is killed or a session ends, the states
/// during the background reclaim included (held there by the graph's reclaim hook), and reference counts
/// under concurrent release and kill. Most drive the ownership graph directly, to stop it mid-reclaim.
/// </summary>
public sealed class OwnerDeathTests
{
    private const int Objects = 3 * OwnershipGraph.ReclaimBatch + 7;

    [Fact]
    public async Task KillHolder_ReclaimHeld_ReturnsAtOnceAndEveryGetAnswersOwnerDied()
    {
        var (graph, store) = NewGraph();
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        graph.BeforeReclaimBatch = () => hold.Task;
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");
        graph.GetOrCreateHolder(session.Token, "", "A", HolderLifetimeKind.Detached);
        var envelopes = PutMany(graph, store, session, "A", Objects);

        // Returns while the reclaim cannot run a single batch: the kill did not wait for it.
        Assert.Equal(Objects, graph.KillHolder(session.Token, new HolderAddress("", "A", null)));

        Assert.Equal(Objects, graph.Stats().Objects);
        foreach (var envelope in envelopes)
        {
            AssertReason(ErrorReasons.OwnerDied, () => graph.Resolve(session.Token, envelope));
        }

        AssertReason(ErrorReasons.OwnerDied, () => graph.Borrow(session.Token, [envelopes[0]]));
        hold.SetResult();
        await ReclaimedAsync(graph);

        Assert.Equal((0L, 0L), (graph.Stats().Objects, store.UsedBytes));
        foreach (var envelope in envelopes)
        {
            AssertReason(ErrorReasons.OwnerDied, () => graph.Resolve(session.Token, envelope));
        }
    }

    [Fact]
    public async Task KillHolder_MidReclaim_EveryObjectAnswersOwnerDiedNeverBytesNeverNotFound()
    {
        var (graph, store) = NewGraph();
        var batches = 0;
        var paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var resume = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // Let two batches go, then stop: some objects reclaimed, some not.
        graph.BeforeReclaimBatch = () =>
        {
            if (++batches < 3)
            {
                return Task.CompletedTask;
            }

            paused.TrySetResult();
            return resume.Task;
        };
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");
        graph.GetOrCreateHolder(session.Token, "", "A", HolderLifetimeKind.Detached);
        var envelopes = PutMany(graph, store, session, "A", Objects);

        graph.KillHolder(session.Token, new HolderAddress("", "A", null));
        await paused.Task.Within();

        var remaining = graph.Stats().Objects;
        Assert.InRange(remaining, 1, Objects - 1);
        foreach (var envelope in envelopes)
        {
            AssertReason(ErrorReasons.OwnerDied, () => graph.Resolve(session.Token, envelope));
        }

        resume.SetResult();
        await ReclaimedAsync(graph);
        Assert.Equal(0, store.UsedBytes);
    }

    [Fact]
    public async Task CommitPut_HolderKilledAfterTheOwnerWasChecked_OwnerDiedAndNothingStored()
    {
        var (graph, store) = NewGraph();
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");
        graph.GetOrCreateHolder(session.Token, "", "A", HolderLifetimeKind.Detached);
        // A streaming put checks its owner before the bytes come; the holder dies while they arrive.
        var owner = graph.ResolvePutOwner(session.Token, new HolderAddress("", "A", null));
        graph.KillHolder(session.Token, new HolderAddress("", "A", null));

        AssertReason(ErrorReasons.OwnerDied, () => graph.CommitPut(session.Token, new HolderAddress(owner.Namespace, owner.Name, owner.Incarnation), Data(store, 1), ObjectCodec.Raw, "", 0));
        AssertReason(ErrorReasons.HolderNotFound, () => graph.CommitPut(session.Token, new HolderAddress("", "A", null), Data(store, 1), ObjectCodec.Raw, "", 0));

        await ReclaimedAsync(graph);
        Assert.Equal(0, graph.Stats().Objects);
        Assert.Empty(session.Borrows);
    }

    [Fact]
    public async Task Register_FetchUnregisterListKeys_KilledHolder_OwnerDiedNothingChanged()
    {
        var (graph, store) = NewGraph();
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        graph.BeforeReclaimBatch = () => hold.Task;
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");
        var (holder, _) = graph.GetOrCreateHolder(session.Token, "", "A", HolderLifetimeKind.Detached);
        var envelopes = PutMany(graph, store, session, "A", 3);
        graph.Register(session.Token, new HolderAddress("", "A", null), "k", envelopes);
        var pinned = new HolderAddress("", "A", holder.Incarnation);

        graph.KillHolder(session.Token, pinned);

        AssertReason(ErrorReasons.OwnerDied, () => graph.Register(session.Token, pinned, "k", envelopes));
        AssertReason(ErrorReasons.OwnerDied, () => graph.Fetch(session.Token, pinned, "k", 0, 10, int.MaxValue));
        AssertReason(ErrorReasons.OwnerDied, () => graph.Unregister(session.Token, pinned, "k"));
        AssertReason(ErrorReasons.OwnerDied, () => graph.ListKeys(session.Token, pinned));
        AssertReason(ErrorReasons.OwnerDied, () => graph.KillHolder(session.Token, pinned));
        hold.SetResult();
        await ReclaimedAsync(graph);
        Assert.Equal((0L, 0L), (graph.Stats().Objects, store.UsedBytes));
    }

    [Fact]
    public async Task EndSession_ReclaimHeld_OwnObjectsOwnerDiedBorrowsDroppedAfterwards()
    {
        var (graph, store) = NewGraph();
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        graph.BeforeReclaimBatch = () => hold.Task;
        var ending = graph.OpenSession("", TimeSpan.FromSeconds(30), "ending");
        var other = graph.OpenSession("", TimeSpan.FromSeconds(30), "other");
        graph.GetOrCreateHolder(other.Token, "", "Lasting", HolderLifetimeKind.Detached);
        graph.GetOrCreateHolder(ending.Token, "", "Mine", HolderLifetimeKind.Session);
        var own = PutMany(graph, store, ending, null, Objects);
        var inMine = PutMany(graph, store, ending, "Mine", 5);
        // Put by the ending session to a holder that outlives it, registered by nobody: only its borrow holds it.
        var borrowedOnly = PutMany(graph, store, ending, "Lasting", 5);

        graph.CloseSession(ending.Token);

        AssertReason(ErrorReasons.SessionExpired, () => graph.Resolve(ending.Token, own[0]));
        foreach (var envelope in own.Concat(inMine))
        {
            AssertReason(ErrorReasons.OwnerDied, () => graph.Resolve(other.Token, envelope));
        }

        // Still alive until the reclaim drops the ended session's borrows.
        Assert.Equal(borrowedOnly[0].ObjectId, graph.Resolve(other.Token, borrowedOnly[0]).Id);
        AssertReason(ErrorReasons.HolderNotFound, () => graph.GetHolder(other.Token, "", "Mine"));
        hold.SetResult();
        await ReclaimedAsync(graph);

        foreach (var envelope in borrowedOnly)
        {
            AssertReason(ErrorReasons.ObjectFreed, () => graph.Resolve(other.Token, envelope));
        }

        AssertReason(ErrorReasons.OwnerDied, () => graph.Resolve(other.Token, own[^1]));
        Assert.Equal((0L, 0L), (graph.Stats().Objects, store.UsedBytes));
    }

    [Fact]
    public async Task ReleaseBorrowAndKill_Concurrent_CountsExactAndStoreBackToZero()
    {
        var (graph, store) = NewGraph();
        var owner = graph.OpenSession("", TimeSpan.FromSeconds(30), "owner");
        graph.GetOrCreateHolder(owner.Token, "", "A", HolderLifetimeKind.Detached);
        graph.GetOrCreateHolder(owner.Token, "", "B", HolderLifetimeKind.Detached);
        var ofA = PutMany(graph, store, owner, "A", 2000);
        var ofB = PutMany(graph, store, owner, "B", 2000);
        graph.Register(owner.Token, new HolderAddress("", "B", null), "k", ofB);
        var readers = Enumerable.Range(0, 4).Select(i => graph.OpenSession("", TimeSpan.FromSeconds(30), $"r{i}")).ToArray();
        foreach (var reader in readers)
        {
            graph.Borrow(reader.Token, [.. ofA, .. ofB]);
        }

        // Readers release (twice over: the second is a no-op), the owner releases its puts, A dies, one reader ends.
        var work = readers.Select(r => Task.Run(() =>
        {
            try
            {
                graph.Release(r.Token, [.. ofA.Select(e => e.ObjectId), .. ofB.Select(e => e.ObjectId)]);
                graph.Release(r.Token, [.. ofA.Select(e => e.ObjectId), .. ofB.Select(e => e.ObjectId)]);
            }
            catch (WorkerException ex) when (r == readers[0] && ex.Reason == ErrorReasons.SessionExpired)
            {
                // The reader that ends may end first; the reclaim then drops its borrows.
            }
        })).ToList();
        work.Add(Task.Run(() => graph.Release(owner.Token, [.. ofA.Select(e => e.ObjectId), .. ofB.Select(e => e.ObjectId)])));
        work.Add(Task.Run(() => graph.KillHolder(owner.Token, new HolderAddress("", "A", null))));
        work.Add(Task.Run(() => graph.CloseSession(readers[0].Token)));
        await Task.WhenAll(work).Within();
        await ReclaimedAsync(graph);

        // B's objects are held by their registration alone, exactly once each.
        Assert.Equal(ofB.Count, graph.Stats().Objects);
        Assert.All(ofB, e => Assert.Equal(1, graph.Resolve(owner.Token, e).Refs));
        Assert.Equal(2000, graph.Unregister(owner.Token, new HolderAddress("", "B", null), "k"));
        Assert.Equal((0L, 0L), (graph.Stats().Objects, store.UsedBytes));
        AssertReason(ErrorReasons.ObjectFreed, () => graph.Resolve(owner.Token, ofB[0]));
        AssertReason(ErrorReasons.OwnerDied, () => graph.Resolve(owner.Token, ofA[0]));
    }

    [Fact]
    public void Fetch_Page_BorrowsOnlyTheRefsItReturns()
    {
        var (graph, store) = NewGraph();
        var owner = graph.OpenSession("", TimeSpan.FromSeconds(30), "owner");
        var reader = graph.OpenSession("", TimeSpan.FromSeconds(30), "reader");
        graph.GetOrCreateHolder(owner.Token, "", "A", HolderLifetimeKind.Detached);
        var envelopes = PutMany(graph, store, owner, "A", 10);
        var address = new HolderAddress("", "A", null);
        graph.Register(owner.Token, address, "k", envelopes);
        graph.Release(owner.Token, envelopes.Select(e => e.ObjectId));
        var one = envelopes[0];
        var envelopeBytes = EnvelopeCodec.Encode(one).Length;

        var byCount = graph.Fetch(reader.Token, address, "k", 2, 3, int.MaxValue);
        var byBytes = graph.Fetch(reader.Token, address, "k", 5, 100, (2 * envelopeBytes) + 1);
        var atLeastOne = graph.Fetch(reader.Token, address, "k", 9, 100, 1);
        var pastTheEnd = graph.Fetch(reader.Token, address, "k", 10, 100, int.MaxValue);

        Assert.Equal((3, 10), (byCount.Envelopes.Length, byCount.Total));
        Assert.Equal(envelopes[2].ObjectId, EnvelopeCodec.Decode(byCount.Envelopes[0]).ObjectId);
        Assert.Equal(2, byBytes.Envelopes.Length);
        Assert.Single(atLeastOne.Envelopes);
        Assert.Equal((0, 10), (pastTheEnd.Envelopes.Length, pastTheEnd.Total));
        Assert.Equal(new[] { 2, 3, 4, 5, 6, 9 }, envelopes.Select((e, i) => (e, i)).Where(x => reader.Borrows.ContainsKey(x.e.ObjectId)).Select(x => x.i));
        AssertReason(ErrorReasons.InvalidRequest, () => graph.Fetch(reader.Token, address, "k", -1, 1, 1));

        graph.Unregister(owner.Token, address, "k");

        Assert.Equal(6, graph.Stats().Objects);
    }

    [Fact]
    public async Task KillHolder_RealWorker_StoreUsageBackToZeroAndTheWorkerKeepsServing()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var doomed = await client.GetOrCreateHolderAsync("doomed").Within();
        var lasting = await client.GetOrCreateHolderAsync("lasting").Within();
        var kept = await client.PutAsync(new byte[100], lasting).Within();
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 2000; i++)
        {
            refs.Add(await client.PutAsync(new byte[100], doomed).Within());
        }

        Assert.Equal(2000, await doomed.KillAsync().Within());

        await Assert.ThrowsAsync<OwnerDiedException>(() => client.GetBytesAsync(refs[^1]).Within());
        await Bounded.Eventually(async () => (await client.GetStoreStatsAsync()).UsedBytes == 100, TimeSpan.FromSeconds(30), "the store's usage went back to the one kept object");
        Assert.Equal(1, (await client.GetStoreStatsAsync().Within()).Objects);
        Assert.Equal(100, (await client.GetAsync(kept).Within()).Length);
        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => client.GetBytesAsync(refs[0]).Within());
        Assert.Equal(doomed.Incarnation, ex.Incarnation);
    }

    [Theory]
    [InlineData(100_000, 0, 0, 0, true)]
    [InlineData(200_000, 100_000, 0, 0, true)]
    [InlineData(99_999, 0, 0, 0, false)]
    [InlineData(300_000, 200_000, 0, 0, false)]
    [InlineData(0, 0, 512L << 20, 256L << 20, true)]
    [InlineData(0, 0, 256L << 20, 1, false)]
    [InlineData(5, 5, 1L << 30, 1L << 30, false)]
    public void ShouldReturn_DropFromPeak_OnlyLargeDropsToHalfOrLess(long peakObjects, long objects, long peakBytes, long bytes, bool expected) =>
        Assert.Equal(expected, MemoryReturner.ShouldReturn(peakObjects, objects, peakBytes, bytes));

    [Fact]
    public async Task MemoryReturner_HolderOfManyObjectsKilled_CollectsOnceTheReclaimIsDone()
    {
        var (graph, store) = NewGraph();
        var returner = new MemoryReturner(graph, TimeProvider.System, NullLogger<MemoryReturner>.Instance);
        var session = graph.OpenSession("", TimeSpan.FromSeconds(30), "test");
        graph.GetOrCreateHolder(session.Token, "", "A", HolderLifetimeKind.Detached);
        PutMany(graph, store, session, "A", (int)MemoryReturner.MinFreedObjects + 1);
        Assert.False(returner.Check());

        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        graph.BeforeReclaimBatch = () => hold.Task;
        graph.KillHolder(session.Token, new HolderAddress("", "A", null));
        // Not while the reclaim is under way: the objects' pages are not free yet.
        Assert.False(returner.Check());
        hold.SetResult();
        await ReclaimedAsync(graph);

        var collections = GC.CollectionCount(GC.MaxGeneration);
        Assert.True(returner.Check());
        Assert.True(GC.CollectionCount(GC.MaxGeneration) > collections);
        // The peak starts again from what is left: nothing more to return.
        Assert.False(returner.Check());
    }

    private static (OwnershipGraph Graph, ObjectStore Store) NewGraph()
    {
        var options = new WorkerOptions { Port = 0 };
        var identity = new WorkerIdentity(options) { Address = "http://127.0.0.1:1" };
        var store = new ObjectStore(1L << 30);
        return (new OwnershipGraph(identity, store, options, NullLogger<OwnershipGraph>.Instance, TimeProvider.System), store);
    }

    private static StoredBytes Data(ObjectStore store, int size) => store.Reserve(size);

    /// <summary>Puts objects of 100 bytes as the service does (reserve, then commit); returns their envelopes.</summary>
    private static List<RefEnvelope> PutMany(OwnershipGraph graph, ObjectStore store, SessionState session, string? holder, int count)
    {
        var envelopes = new List<RefEnvelope>(count);
        for (var i = 0; i < count; i++)
        {
            var stored = graph.CommitPut(session.Token, holder is null ? null : new HolderAddress("", holder, null), Data(store, 100), ObjectCodec.Raw, "", 0);
            envelopes.Add(EnvelopeCodec.Decode(stored.EnvelopeBytes));
        }

        return envelopes;
    }

    private static void AssertReason(string reason, Action call)
    {
        var ex = Assert.Throws<WorkerException>(call);
        Assert.Equal(reason, ex.Reason);
    }

    private static Task ReclaimedAsync(OwnershipGraph graph) =>
        Bounded.Eventually(() => Task.FromResult(!graph.Reclaiming), TimeSpan.FromSeconds(30), "the background reclaim finished");
}
