using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Objects put for a holder of another worker: the bytes stay on the putting session's worker (the envelope names
/// it), the holder records them, and any session of the cluster reads them from there. They are freed there when
/// their owner frees them: unregistered and unborrowed anywhere, or the holder dead.
/// </summary>
public sealed class ClusterRemotePutsTests(RedisFixture fixture) : IClassFixture<RedisFixture>, IAsyncLifetime
{
    private readonly string _cluster = "p" + Guid.NewGuid().ToString("N")[..12];
    private TestWorker _a = null!;
    private TestWorker _b = null!;
    private TestWorker _c = null!;

    public async Task InitializeAsync()
    {
        _a = await TestWorker.StartAsync(Join);
        _b = await TestWorker.StartAsync(Join);
        _c = await TestWorker.StartAsync(Join);
    }

    public async Task DisposeAsync()
    {
        await _c.DisposeAsync();
        await _b.DisposeAsync();
        await _a.DisposeAsync();
    }

    [Theory]
    [InlineData(true, 100)]
    [InlineData(true, 3 << 20)]
    [InlineData(false, 100)]
    [InlineData(false, 3 << 20)]
    public async Task PutForAHolderOfAnotherWorker_StoredWhereItWasPut_RegisteredAndReadAnywhere(bool channel, int size)
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync(o => o.UseChannel = channel);
        var viaB = await clientB.GetHolderAsync("H").Within();
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);

        var put = await clientB.PutEncodedAsync(bytes, owner: viaB).Within();
        Assert.Equal(1, await viaB.RegisterAsync("partitions", [put]).Within());

        Assert.Equal(_b.Address, put.WorkerAddress);
        Assert.Equal(onA.Incarnation, viaB.Incarnation);
        Assert.Equal(0, (await clientA.GetStoreStatsAsync().Within()).Objects);
        Assert.Equal(1, (await clientB.GetStoreStatsAsync().Within()).Objects);
        var clientC = await _c.ConnectAsync(o => o.UseChannel = channel);
        var fromC = (await (await clientC.GetHolderAsync("H").Within()).FetchAsync("partitions").Within()).Single();
        var fromA = (await onA.FetchAsync("partitions").Within()).Single();
        Assert.Equal(_b.Address, fromC.WorkerAddress);
        Assert.Equal(bytes, await clientC.GetBytesAsync(fromC).Within());
        Assert.Equal(bytes, await clientA.GetBytesAsync(fromA).Within());
        Assert.Equal(bytes, await clientB.GetBytesAsync(put).Within());
    }

    [Fact]
    public async Task HoldersWorkerWithoutAChannel_ForwardedCallsGoOverGrpc_SameOutcome()
    {
        // Workers forward register and fetch on each other's channel when they offer one; this one offers none.
        await using var noChannel = await TestWorker.StartAsync(o =>
        {
            Join(o);
            o.Channel = false;
        });
        var owner = await noChannel.ConnectAsync();
        var holder = await owner.GetOrCreateHolderAsync("plain").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("plain").Within();
        var put = await clientB.PutEncodedAsync(new byte[] { 6, 6 }, owner: viaB).Within();

        Assert.Equal(1, await viaB.RegisterAsync("k", [put]).Within());
        var fetched = (await viaB.FetchAsync("k").Within()).Single();
        Assert.Equal(new byte[] { 6, 6 }, await clientB.GetBytesAsync(fetched).Within());
        await Assert.ThrowsAsync<RegistryKeyNotFoundException>(() => viaB.FetchAsync("missing")).Within();
        Assert.Equal(1, await holder.UnregisterAsync("k").Within());
    }

    [Fact]
    public async Task ObjectStoredElsewhere_FreedThere_OnceUnregisteredAndReleasedEverywhere()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();
        var put = await clientB.PutEncodedAsync(new byte[] { 4, 5, 6 }, owner: viaB).Within();
        await viaB.RegisterAsync("k", [put]).Within();
        await viaB.RegisterAsync("k2", [put]).Within();
        await put.DisposeAsync();
        var clientC = await _c.ConnectAsync();
        var fetched = (await (await clientC.GetHolderAsync("H").Within()).FetchAsync("k").Within()).Single();

        await onA.UnregisterAsync("k").Within();
        await onA.UnregisterAsync("k2").Within();
        await Task.Delay(300);
        Assert.Equal(1, (await clientB.GetStoreStatsAsync().Within()).Objects);
        Assert.Equal(new byte[] { 4, 5, 6 }, await clientC.GetBytesAsync(fetched).Within());

        await fetched.DisposeAsync();
        await Bounded.Eventually(async () => (await clientB.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "the object freed on B once C released the last ref");
        await Assert.ThrowsAsync<ObjectFreedException>(() => clientC.BorrowFromEnvelopeAsync(fetched.ToEnvelopeBytes())).Within();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RefBorrowedByEnvelopeOnAThirdWorker_FreedWhereStoredOnceReleasedAndUnregistered(bool channel)
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync(o => o.UseChannel = channel);
        var put = await clientB.PutEncodedAsync(new byte[100], owner: await clientB.GetHolderAsync("H").Within()).Within();
        await onA.RegisterAsync("k", [put]).Within();
        var clientC = await _c.ConnectAsync(o => o.UseChannel = channel);

        var borrowed = await clientC.BorrowFromEnvelopeAsync(put.ToEnvelopeBytes()).Within();
        await borrowed.DisposeAsync();
        await put.DisposeAsync();
        await onA.UnregisterAsync("k").Within();

        await Bounded.Eventually(async () => (await clientB.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "B freed the object once unregistered and released everywhere");
    }

    [Fact]
    public async Task RefBorrowedThroughTwoWorkers_EachBorrowGoesBackWhereItWasMade()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync();
        var put = await clientB.PutEncodedAsync(new byte[] { 8 }, owner: await clientB.GetHolderAsync("H").Within()).Within();
        await onA.RegisterAsync("k", [put]).Within();
        await put.DisposeAsync();
        var clientC = await _c.ConnectAsync();
        // Fetched through the holder's worker A, and borrowed by envelope through the storing worker B.
        var fetched = (await (await clientC.GetHolderAsync("H").Within()).FetchAsync("k").Within()).Single();
        var borrowed = await clientC.BorrowFromEnvelopeAsync(fetched.ToEnvelopeBytes()).Within();
        await onA.UnregisterAsync("k").Within();

        await fetched.DisposeAsync();
        await Task.Delay(300);
        Assert.Equal(new byte[] { 8 }, await clientC.GetBytesAsync(borrowed).Within());
        await borrowed.DisposeAsync();

        await Bounded.Eventually(async () => (await clientB.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "B freed the object once both borrows went back");
    }

    [Fact]
    public async Task HolderKilled_ObjectsStoredElsewhere_OwnerDiedEverywhere_FreedWhereStored()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();
        var registered = await clientB.PutEncodedAsync(new byte[] { 1 }, owner: viaB).Within();
        var unregistered = await clientB.PutEncodedAsync(new byte[] { 2 }, owner: viaB).Within();
        await viaB.RegisterAsync("k", [registered]).Within();
        var clientC = await _c.ConnectAsync();
        var fetched = (await (await clientC.GetHolderAsync("H").Within()).FetchAsync("k").Within()).Single();

        await onA.KillAsync().Within();

        await Bounded.Eventually(async () => (await clientB.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "B freed the dead holder's objects");
        await Assert.ThrowsAsync<OwnerDiedException>(() => clientB.GetBytesAsync(registered)).Within();
        await Assert.ThrowsAsync<OwnerDiedException>(() => clientB.GetBytesAsync(unregistered)).Within();
        await Assert.ThrowsAsync<OwnerDiedException>(() => clientC.GetBytesAsync(fetched)).Within();
        await Assert.ThrowsAsync<OwnerDiedException>(() => clientB.PutEncodedAsync(new byte[] { 3 }, owner: viaB)).Within();
    }

    [Fact]
    public async Task HoldersWorkerStops_TheStoringWorkerFreesItsObjects_GetsSayOwnerDied()
    {
        var clientA = await _a.ConnectAsync();
        await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();
        var put = await clientB.PutEncodedAsync(new byte[] { 1, 2 }, owner: viaB).Within();
        await viaB.RegisterAsync("k", [put]).Within();

        await _a.DisposeAsync();

        await Bounded.Eventually(async () => (await clientB.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(15), "B freed the objects of the stopped worker's holder");
        await Assert.ThrowsAsync<OwnerDiedException>(() => clientB.GetBytesAsync(put)).Within();
    }

    [Fact]
    public async Task HolderGoneFromTheDirectory_NoDeathNotice_TheStoringWorkerFreesItsObjectsWithinALease()
    {
        // The storing worker also checks the directory after each renewal, in case a death notice never came: here the
        // holder's entry is removed behind everyone's back, and the storing worker takes the holder for dead.
        var clientA = await _a.ConnectAsync();
        await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();
        var put = await clientB.PutEncodedAsync(new byte[] { 3 }, owner: viaB).Within();

        Assert.Equal(":1", await fixture.Redis.CommandAsync(TimeSpan.FromSeconds(5), "HDEL", $"rs:{{{_cluster}}}:holders", "default\0H").Within());

        await Bounded.Eventually(async () => (await clientB.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(12), "B freed the objects of a holder the directory no longer has");
        await Assert.ThrowsAsync<OwnerDiedException>(() => clientB.GetBytesAsync(put)).Within();
    }

    [Fact]
    public async Task StoringWorkerStops_HolderLives_GetsSayObjectLost_RegistryNamesTheLostRefs()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();
        var onB = await clientB.PutEncodedAsync(new byte[] { 1 }, owner: viaB).Within();
        var local = await clientA.PutEncodedAsync(new byte[] { 2 }, owner: onA).Within();
        var large = await clientB.PutEncodedAsync(new byte[2 << 20], owner: viaB).Within();
        await viaB.RegisterAsync("k", [onB]).Within();
        await onA.RegisterAsync("k", [local]).Within();
        await viaB.RegisterAsync("large", [large]).Within();

        await _b.DisposeAsync();

        // A streamed get (over the unary limit) says the same, every time: relayed by the reader's worker, whose way to
        // the dead worker is gone after the first.
        var largeRef = (await onA.FetchAsync("large").Within()).Single();
        for (var i = 0; i < 3; i++)
        {
            await Assert.ThrowsAsync<ObjectLostException>(() => clientA.CopyToAsync(largeRef, Stream.Null)).Within();
        }

        var clientC = await _c.ConnectAsync();
        var fetched = await (await clientC.GetHolderAsync("H").Within()).FetchAsync("k").Within();
        await Bounded.Eventually(async () => (await onA.GetLostRefsAsync()).Count == 2, TimeSpan.FromSeconds(15), "A's registry names the refs B stored as lost");
        var lost = (await onA.GetLostRefsAsync().Within()).Single(l => l.Key == "k");
        Assert.Equal(("k", 0, onB.Id), (lost.Key, lost.Index, lost.ObjectId));
        await Assert.ThrowsAsync<ObjectLostException>(() => clientC.GetBytesAsync(fetched[0])).Within();
        Assert.Equal(new byte[] { 2 }, await clientC.GetBytesAsync(fetched[1]).Within());
        Assert.Equal(2, await onA.UnregisterAsync("k").Within());
        Assert.Equal(1, await onA.UnregisterAsync("large").Within());
        Assert.Empty(await onA.GetLostRefsAsync().Within());
    }

    [Fact]
    public async Task RegisterOfRefsStoredElsewhere_BadRefs_NothingRegistered()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var other = await clientA.GetOrCreateHolderAsync("other").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();
        var good = await clientB.PutEncodedAsync(new byte[] { 1 }, owner: viaB).Within();
        var ofOther = await clientB.PutEncodedAsync(new byte[] { 2 }, owner: await clientB.GetHolderAsync("other").Within()).Within();

        await Assert.ThrowsAsync<RefNotOwnedException>(() => viaB.RegisterAsync("k", [good, ofOther])).Within();
        await Assert.ThrowsAsync<RefNotOwnedException>(() => onA.RegisterAsync("k", [good, ofOther])).Within();

        Assert.Empty(await onA.ListKeysAsync().Within());
        Assert.Equal(1, await other.RegisterAsync("k", [ofOther]).Within());
        await good.DisposeAsync();
        await Bounded.Eventually(async () => (await clientB.GetStoreStatsAsync()).Objects == 1, TimeSpan.FromSeconds(10), "only the registered object is left on B");
    }

    private void Join(Worker.WorkerOptions options)
    {
        options.Redis = fixture.Redis.ConnectionString;
        options.ClusterName = _cluster;
        options.ClusterLease = TimeSpan.FromSeconds(4);
    }
}
