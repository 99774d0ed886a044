using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class HolderTests
{
    [Fact]
    public async Task GetOrCreate_TwoSessions_YieldOneIncarnation()
    {
        await using var worker = await TestWorker.StartAsync();
        var first = await worker.ConnectAsync();
        var second = await worker.ConnectAsync();

        var a = await first.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();
        var b = await second.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();

        Assert.Equal(a.Incarnation, b.Incarnation);
        Assert.Equal("default", b.Namespace);
        Assert.Equal(worker.Address, b.WorkerAddress);
    }

    [Fact]
    public async Task GetOrCreate_SixteenConcurrentCreators_YieldOneIncarnation()
    {
        await using var worker = await TestWorker.StartAsync();
        var clients = new List<RaySharingClient>();
        for (var i = 0; i < 16; i++)
        {
            clients.Add(await worker.ConnectAsync());
        }

        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var creators = clients.Select(c => Task.Run(async () =>
        {
            await start.Task;
            return await c.GetOrCreateHolderAsync("contended");
        })).ToArray();
        start.SetResult();
        var holders = await Task.WhenAll(creators).Within();

        Assert.Single(holders.Select(h => h.Incarnation).Distinct());
        Assert.Single(await clients[0].ListHoldersAsync().Within());
    }

    [Fact]
    public async Task GetOrCreate_DifferentNamespaces_AreDifferentHolders()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();

        var a = await client.GetOrCreateHolderAsync("h", holderNamespace: "team-a").Within();
        var b = await client.GetOrCreateHolderAsync("h", holderNamespace: "team-b").Within();

        Assert.NotEqual(a.Incarnation, b.Incarnation);
        Assert.Equal("team-a", (await client.GetHolderAsync("h", "team-a").Within()).Namespace);
    }

    [Fact]
    public async Task GetHolder_NoSuchHolder_ThrowsHolderNotFoundWithName()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();

        var ex = await Assert.ThrowsAsync<HolderNotFoundException>(() => client.GetHolderAsync("nobody").Within());

        Assert.Equal("nobody", ex.HolderName);
        Assert.Equal("default", ex.HolderNamespace);
        Assert.Equal("HOLDER_NOT_FOUND", ex.Reason);
        Assert.NotNull(await client.GetOrCreateHolderAsync("somebody").Within());
    }

    [Fact]
    public async Task Holder_NonAsciiNames_WorkAndTypedErrorsCarryTheNames()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("équipe-数据-🚀", holderNamespace: "名前空間").Within();
        var objectRef = await client.PutAsync("x", holder).Within();
        await holder.RegisterAsync("clé", [objectRef]).Within();

        var missing = await Assert.ThrowsAsync<HolderNotFoundException>(() => client.GetHolderAsync("ñ-nobody", "名前空間").Within());
        Assert.Equal("ñ-nobody", missing.HolderName);
        Assert.Equal("名前空間", missing.HolderNamespace);
        await holder.KillAsync().Within();
        var died = await Assert.ThrowsAsync<OwnerDiedException>(() => client.GetAsync(objectRef).Within());
        Assert.Equal("équipe-数据-🚀", died.HolderName);
        Assert.Equal("名前空間", died.HolderNamespace);
    }

    [Fact]
    public async Task Kill_OtherSessionGetsRef_FailsWithOwnerDiedWithinOneSecond()
    {
        await using var worker = await TestWorker.StartAsync();
        var master = await worker.ConnectAsync();
        var driver = await worker.ConnectAsync();
        var holder = await master.GetOrCreateHolderAsync("doomed").Within();
        var objectRef = await master.PutAsync(new[] { 1, 2, 3 }, holder).Within();
        await holder.RegisterAsync("job", [objectRef]).Within();
        var driverHolder = await driver.GetHolderAsync("doomed").Within();
        var fetched = (await driverHolder.FetchAsync<int[]>("job").Within()).Single();
        Assert.Equal(new[] { 1, 2, 3 }, await driver.GetAsync(fetched).Within());

        Assert.Equal(1, await holder.KillAsync().Within());
        // The answer is immediate; a bound far below the call timeout (10 s) shows it was not a wait for one.
        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => driver.GetAsync(fetched).Within(TimeSpan.FromSeconds(5)));

        Assert.Equal(objectRef.Id, ex.ObjectId);
        Assert.Equal("doomed", ex.HolderName);
        Assert.Equal(holder.Incarnation, ex.Incarnation);
        Assert.Contains(holder.Incarnation.ToString(), ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, (await driver.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task Kill_ThenFetchAndRegister_FailWithOwnerDiedAndGetHolderWithNotFound()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("doomed").Within();
        var objectRef = await client.PutAsync("payload", holder).Within();
        await holder.RegisterAsync("job", [objectRef]).Within();

        await holder.KillAsync().Within();

        var fetch = await Assert.ThrowsAsync<OwnerDiedException>(() => holder.FetchAsync("job").Within());
        Assert.Equal(holder.Incarnation, fetch.Incarnation);
        await Assert.ThrowsAsync<OwnerDiedException>(() => holder.RegisterAsync("job", [objectRef]).Within());
        await Assert.ThrowsAsync<OwnerDiedException>(() => client.PutAsync("more", holder).Within());
        await Assert.ThrowsAsync<HolderNotFoundException>(() => client.GetHolderAsync("doomed").Within());
        await Assert.ThrowsAsync<OwnerDiedException>(() => holder.KillAsync().Within());
    }

    [Fact]
    public async Task Recreate_AfterKill_OldRefsFailAndNeverResolveToTheNewIncarnation()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var old = await client.GetOrCreateHolderAsync("phoenix").Within();
        var oldRef = await client.PutAsync("old", old).Within();
        await old.RegisterAsync("k", [oldRef]).Within();
        await old.KillAsync().Within();

        var reborn = await client.GetOrCreateHolderAsync("phoenix").Within();
        var newRef = await client.PutAsync("new", reborn).Within();
        await reborn.RegisterAsync("k", [newRef]).Within();

        Assert.NotEqual(old.Incarnation, reborn.Incarnation);
        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => client.GetAsync(oldRef).Within());
        Assert.Equal(old.Incarnation, ex.Incarnation);
        await Assert.ThrowsAsync<OwnerDiedException>(() => old.FetchAsync("k").Within());
        Assert.Equal("new", await client.GetAsync((await reborn.FetchAsync<string>("k").Within()).Single()).Within());
    }

    [Fact]
    public async Task SessionLifetimeHolder_CreatorSessionEnds_HolderAndItsObjectsDie()
    {
        await using var worker = await TestWorker.StartAsync();
        var creator = await worker.ConnectAsync();
        var other = await worker.ConnectAsync();
        var holder = await creator.GetOrCreateHolderAsync("ephemeral", HolderLifetime.Session).Within();
        var objectRef = await creator.PutAsync(42L, holder).Within();
        await holder.RegisterAsync("k", [objectRef]).Within();
        var borrowed = await other.BorrowFromEnvelopeAsync<long>(objectRef.ToEnvelopeBytes()).Within();

        await creator.DisposeAsync().Within();

        await Assert.ThrowsAsync<HolderNotFoundException>(() => other.GetHolderAsync("ephemeral").Within());
        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => other.GetAsync(borrowed).Within());
        Assert.Equal(holder.Incarnation, ex.Incarnation);
        Assert.Equal(0, (await other.GetStoreStatsAsync().Within()).UsedBytes);
    }

    [Fact]
    public async Task DetachedHolder_CreatorSessionEnds_HolderLivesOn()
    {
        await using var worker = await TestWorker.StartAsync();
        var creator = await worker.ConnectAsync();
        var other = await worker.ConnectAsync();
        var holder = await creator.GetOrCreateHolderAsync("lasting").Within();

        await creator.DisposeAsync().Within();

        Assert.Equal(holder.Incarnation, (await other.GetHolderAsync("lasting").Within()).Incarnation);
    }

    [Fact]
    public async Task GetOrCreate_InvalidName_ThrowsArgumentException()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => client.GetOrCreateHolderAsync("").Within());
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetOrCreateHolderAsync(new string('x', 1025)).Within());
        Assert.NotNull(await client.GetOrCreateHolderAsync("fine").Within());
    }
}
