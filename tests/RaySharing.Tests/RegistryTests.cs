using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class RegistryTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(10_000)]
    public async Task RegisterAndFetch_ManyRefs_OrderPreserved(int count)
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var driver = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var refs = new List<ObjectRef<int>>(count);
        for (var i = 0; i < count; i++)
        {
            refs.Add(await executor.PutAsync(i, holder).Within());
        }

        Assert.Equal(count, await holder.RegisterAsync("job", refs).Within());
        await executor.ReleaseAsync(refs).Within();

        var fetched = await (await driver.GetHolderAsync("H").Within()).FetchAsync<int>("job").Within();

        Assert.Equal(refs.Select(r => r.Id), fetched.Select(r => r.Id));
        foreach (var i in new[] { 0, count / 2, count - 1 })
        {
            Assert.Equal(i, await driver.GetAsync(fetched[i]).Within());
        }
    }

    [Fact]
    public async Task Register_SameKeyTwice_Appends()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var a = await client.PutAsync("a", holder).Within();
        var b = await client.PutAsync("b", holder).Within();

        Assert.Equal(1, await holder.RegisterAsync("k", [a]).Within());
        Assert.Equal(2, await holder.RegisterAsync("k", [b]).Within());

        Assert.Equal([a.Id, b.Id], (await holder.FetchAsync("k").Within()).Select(r => r.Id));
        Assert.Equal(["k"], await holder.ListKeysAsync().Within());
    }

    [Fact]
    public async Task Register_RefOwnedBySomeoneElse_ThrowsRefNotOwnedAndRegistersNothing()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();
        var otherHolder = await client.GetOrCreateHolderAsync("Other").Within();
        var mine = await client.PutAsync(1, holder).Within();
        var sessionOwned = await client.PutAsync(2).Within();
        var theirs = await client.PutAsync(3, otherHolder).Within();

        var ex = await Assert.ThrowsAsync<RefNotOwnedException>(() => holder.RegisterAsync("k", [mine, theirs]).Within());
        Assert.Equal(theirs.Id, ex.ObjectId);
        await Assert.ThrowsAsync<RefNotOwnedException>(() => holder.RegisterAsync("k", [sessionOwned]).Within());

        Assert.Empty(await holder.ListKeysAsync().Within());
        Assert.Equal(1, await holder.RegisterAsync("k", [mine]).Within());
    }

    [Fact]
    public async Task Fetch_UnknownKey_ThrowsRegistryKeyNotFound()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        var holder = await client.GetOrCreateHolderAsync("H").Within();

        var ex = await Assert.ThrowsAsync<RegistryKeyNotFoundException>(() => holder.FetchAsync("missing").Within());

        Assert.Equal("missing", ex.Key);
        Assert.Equal("H", ex.HolderName);
        Assert.Equal(0, await holder.UnregisterAsync("missing").Within());
    }

    [Fact]
    public async Task Unregister_NoBorrowers_FreesObjectAndStoreUsageDrops()
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var observer = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var baseline = (await observer.GetStoreStatsAsync().Within()).UsedBytes;
        var objectRef = await executor.PutAsync(new byte[100_000], holder).Within();
        await holder.RegisterAsync("job", [objectRef]).Within();
        var envelope = objectRef.ToEnvelopeBytes();
        await objectRef.DisposeAsync().Within();
        Assert.Equal(baseline + 100_000, (await observer.GetStoreStatsAsync().Within()).UsedBytes);

        Assert.Equal(1, await holder.UnregisterAsync("job").Within());

        var stats = await observer.GetStoreStatsAsync().Within();
        Assert.Equal(baseline, stats.UsedBytes);
        Assert.Equal(0, stats.Objects);
        var ex = await Assert.ThrowsAsync<ObjectFreedException>(() => observer.BorrowFromEnvelopeAsync(envelope).Within());
        Assert.Equal(objectRef.Id, ex.ObjectId);
    }

    [Fact]
    public async Task Unregister_WhileBorrowed_ObjectLivesUntilBorrowReleased()
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var driver = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var objectRef = await executor.PutAsync("alive", holder).Within();
        await holder.RegisterAsync("job", [objectRef]).Within();
        await objectRef.DisposeAsync().Within();
        var fetched = (await (await driver.GetHolderAsync("H").Within()).FetchAsync<string>("job").Within()).Single();

        await holder.UnregisterAsync("job").Within();

        Assert.Equal("alive", await driver.GetAsync(fetched).Within());
        var envelope = fetched.ToEnvelopeBytes();
        await fetched.DisposeAsync().Within();
        await fetched.DisposeAsync().Within();
        Assert.True(fetched.IsReleased);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => driver.GetAsync(fetched).Within());
        await Assert.ThrowsAsync<ObjectFreedException>(() => driver.BorrowFromEnvelopeAsync(envelope).Within());
        Assert.Equal(0, (await driver.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task Fetch_TwiceByTwoSessions_EachBorrowCountsSeparately()
    {
        await using var worker = await TestWorker.StartAsync();
        var executor = await worker.ConnectAsync();
        var a = await worker.ConnectAsync();
        var b = await worker.ConnectAsync();
        var holder = await executor.GetOrCreateHolderAsync("H").Within();
        var objectRef = await executor.PutAsync(7, holder).Within();
        await holder.RegisterAsync("job", [objectRef]).Within();
        await objectRef.DisposeAsync().Within();
        var fromA = (await (await a.GetHolderAsync("H").Within()).FetchAsync<int>("job").Within()).Single();
        var fromB = (await (await b.GetHolderAsync("H").Within()).FetchAsync<int>("job").Within()).Single();
        await holder.UnregisterAsync("job").Within();

        await a.DisposeAsync().Within();

        Assert.Equal(7, await b.GetAsync(fromB).Within());
        await fromB.DisposeAsync().Within();
        Assert.Equal(0, (await executor.GetStoreStatsAsync().Within()).Objects);
    }
}
