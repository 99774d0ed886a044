using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Calls on a holder of another worker, made through the caller's own worker: it forwards them to the holder's
/// worker through a session of its own there. What a forwarded fetch borrows is the calling session's: it keeps the
/// objects alive until the session releases them or ends.
/// </summary>
public sealed class ClusterForwardingTests(RedisFixture fixture) : IClassFixture<RedisFixture>, IAsyncLifetime
{
    private readonly string _cluster = "f" + Guid.NewGuid().ToString("N")[..12];
    private TestWorker _a = null!;
    private TestWorker _b = null!;

    public async Task InitializeAsync()
    {
        _a = await TestWorker.StartAsync(Join);
        _b = await TestWorker.StartAsync(Join);
    }

    public async Task DisposeAsync()
    {
        await _b.DisposeAsync();
        await _a.DisposeAsync();
    }

    [Fact]
    public async Task RegisterFetchListUnregister_ThroughAnotherWorker_ActOnTheHoldersWorker()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 3; i++)
        {
            refs.Add(await clientA.PutEncodedAsync(new byte[] { (byte)i, 1, 2 }, owner: onA).Within());
        }

        Assert.Equal(3, await viaB.RegisterAsync("partitions", refs).Within());
        Assert.Equal(["partitions"], await viaB.ListKeysAsync().Within());
        Assert.Equal(["partitions"], await onA.ListKeysAsync().Within());
        var fetched = await viaB.FetchAsync("partitions").Within();
        Assert.Equal(refs.Select(r => r.Id), fetched.Select(r => r.Id));
        Assert.Equal(3, await viaB.UnregisterAsync("partitions").Within());
        Assert.Empty(await onA.ListKeysAsync().Within());
    }

    [Fact]
    public async Task ForwardedFetch_BorrowsForTheCallingSession_ObjectsLiveUntilItReleases()
    {
        var clientB = await _b.ConnectAsync();
        var (clientA, fetched) = await HeldOnlyByAFetchThroughBAsync(clientB, [7, 7, 7]);
        await Task.Delay(200);
        Assert.Equal(1, (await clientA.GetStoreStatsAsync().Within()).Objects);

        await fetched.DisposeAsync();
        await Bounded.Eventually(async () => (await clientA.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "the object freed once B's session released its fetched ref");
    }

    [Fact]
    public async Task SessionOnTheForwardingWorkerEnds_ItsRemoteBorrowsAreGivenBack()
    {
        var clientB = await TestWorker.ConnectAsync(_b.Address);
        var (clientA, _) = await HeldOnlyByAFetchThroughBAsync(clientB, [1]);

        await clientB.DisposeAsync();

        await Bounded.Eventually(async () => (await clientA.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "the object freed once the fetching session on B ended");
    }

    [Fact]
    public async Task RedisRestartedEmpty_PeerSessionsSurvive_BorrowedObjectsStay()
    {
        var clientB = await _b.ConnectAsync();
        var (clientA, fetched) = await HeldOnlyByAFetchThroughBAsync(clientB, [9]);

        // Emptied, the directory misses both records until each worker renews: neither may take the other for dead.
        await fixture.Redis.RestartAsync().Within();
        await Task.Delay(TimeSpan.FromSeconds(5));

        Assert.Equal(1, (await clientA.GetStoreStatsAsync().Within()).Objects);
        Assert.Equal(new byte[] { 9 }, await clientB.GetBytesAsync(fetched).Within());
        Assert.False(_a.Worker.Completion.IsCompleted);
        Assert.False(_b.Worker.Completion.IsCompleted);
    }

    [Fact]
    public async Task KillThroughAnotherWorker_KillsItThere()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        await clientA.PutEncodedAsync(new byte[] { 1 }, owner: onA).Within();
        var clientB = await _b.ConnectAsync();
        var viaB = await clientB.GetHolderAsync("H").Within();

        Assert.Equal(1, await viaB.KillAsync().Within());

        await Assert.ThrowsAsync<OwnerDiedException>(() => onA.ListKeysAsync()).Within();
        await Assert.ThrowsAsync<OwnerDiedException>(() => viaB.ListKeysAsync()).Within();
    }

    [Fact]
    public async Task HoldersWorkerStopped_CallsThroughAnotherWorker_OwnerDied()
    {
        var onA = await (await _a.ConnectAsync()).GetOrCreateHolderAsync("H").Within();
        var viaB = await (await _b.ConnectAsync()).GetHolderAsync("H").Within();
        Assert.Empty(await viaB.ListKeysAsync().Within());

        await _a.DisposeAsync();

        var error = await Assert.ThrowsAsync<OwnerDiedException>(() => viaB.ListKeysAsync()).Within();
        Assert.Equal(onA.Incarnation, viaB.Incarnation);
        Assert.Contains("died", error.Message);
    }

    [Theory]
    [InlineData(true, 100)]
    [InlineData(true, 3 << 20)]
    [InlineData(false, 100)]
    [InlineData(false, 3 << 20)]
    public async Task GetOfAnObjectStoredOnAnotherWorker_ReadStraightFromThatWorker(bool channel, int size)
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        await onA.RegisterAsync("k", [await clientA.PutEncodedAsync(bytes, owner: onA).Within()]).Within();
        var clientB = await _b.ConnectAsync(o => o.UseChannel = channel);
        var fetched = (await (await clientB.GetHolderAsync("H").Within()).FetchAsync("k").Within()).Single();

        Assert.Equal(_a.Address, fetched.WorkerAddress);
        Assert.Equal(bytes, await clientB.GetBytesAsync(fetched).Within());
        var copy = new System.Buffers.ArrayBufferWriter<byte>();
        await clientB.CopyToAsync(fetched, copy).Within();
        Assert.Equal(bytes, copy.WrittenSpan.ToArray());
        await using var lease = await clientB.GetLeaseAsync(fetched).Within();
        // Read where the bytes are: from the storing worker's arena on this host, as a client of that worker would.
        Assert.Equal(!channel || size >= 64 << 10, lease.IsZeroCopy);
        Assert.Equal(bytes, System.Buffers.BuffersExtensions.ToArray(lease.Bytes));
    }

    [Theory]
    [InlineData(100)]
    [InlineData(3 << 20)]
    public async Task GetWhenTheStoringWorkerIsNotReachableDirectly_RelayedByTheCallersWorker(int size)
    {
        // The envelope's address answers with another worker (as when a client cannot route to the storing host): the
        // client reads through its own worker, which reaches the storing worker by the id the directory knows.
        await using var impostor = await TestWorker.StartAsync();
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        var put = await clientA.PutEncodedAsync(bytes, owner: onA).Within();
        var envelope = Wire.EnvelopeCodec.Decode(put.ToEnvelopeBytes());
        var misleading = Wire.EnvelopeCodec.Encode(envelope with { Location = envelope.Location with { Address = impostor.Address } });
        var clientB = await _b.ConnectAsync();

        var borrowed = await clientB.BorrowFromEnvelopeAsync(misleading).Within();

        Assert.Equal(bytes, await clientB.GetBytesAsync(borrowed).Within());
        var copy = new System.Buffers.ArrayBufferWriter<byte>();
        await clientB.CopyToAsync(borrowed, copy).Within();
        Assert.Equal(bytes, copy.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task BorrowFromEnvelope_OfAnObjectOnAnotherWorker_KeepsItAliveThereUntilReleased()
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var put = await clientA.PutEncodedAsync(new byte[] { 5, 6 }, owner: onA).Within();
        await onA.RegisterAsync("k", [put]).Within();
        var clientB = await _b.ConnectAsync();

        var borrowed = await clientB.BorrowFromEnvelopeAsync(put.ToEnvelopeBytes()).Within();
        await onA.UnregisterAsync("k").Within();
        await put.DisposeAsync();
        await Task.Delay(200);

        Assert.Equal(new byte[] { 5, 6 }, await clientB.GetBytesAsync(borrowed).Within());
        await borrowed.DisposeAsync();
        await Bounded.Eventually(async () => (await clientA.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromSeconds(10), "the object freed once B's borrow was given back");
    }

    [Fact]
    public async Task GetThroughAnotherWorker_OwnerKilledOrObjectFreedOrWorkerGone_TypedErrors()
    {
        var clientA = await _a.ConnectAsync();
        var killed = await clientA.GetOrCreateHolderAsync("killed").Within();
        var kept = await clientA.GetOrCreateHolderAsync("kept").Within();
        var ofKilled = await clientA.PutEncodedAsync(new byte[] { 1 }, owner: killed).Within();
        var freed = await clientA.PutEncodedAsync(new byte[] { 2 }, owner: kept).Within();
        var ofKept = await clientA.PutEncodedAsync(new byte[] { 3 }, owner: kept).Within();
        await kept.RegisterAsync("k", [ofKept]).Within();
        var clientB = await _b.ConnectAsync();
        var envelopes = new[] { ofKilled, freed, ofKept }.Select(r => r.ToEnvelopeBytes()).ToArray();
        var refs = new List<ObjectRef>();
        foreach (var envelope in envelopes)
        {
            refs.Add(await clientB.BorrowFromEnvelopeAsync(envelope).Within());
        }

        await killed.KillAsync().Within();
        await Assert.ThrowsAsync<OwnerDiedException>(() => clientB.GetBytesAsync(refs[0])).Within();
        await refs[1].DisposeAsync();
        await freed.DisposeAsync();
        await Assert.ThrowsAsync<ObjectFreedException>(() => clientB.BorrowFromEnvelopeAsync(envelopes[1])).Within();

        await _a.DisposeAsync();
        var gone = await Assert.ThrowsAsync<OwnerDiedException>(() => clientB.GetBytesAsync(refs[2])).Within();
        Assert.Contains("died", gone.Message);
    }

    /// <summary>
    /// An object put on A under holder H, fetched through B by <paramref name="clientB"/>, then unregistered and released
    /// on A: only the fetch through B holds it. Returns A's client (to watch A's store) and the fetched ref.
    /// </summary>
    private async Task<(RaySharingClient ClientA, ObjectRef Fetched)> HeldOnlyByAFetchThroughBAsync(RaySharingClient clientB, byte[] bytes)
    {
        var clientA = await _a.ConnectAsync();
        var onA = await clientA.GetOrCreateHolderAsync("H").Within();
        var put = await clientA.PutEncodedAsync(bytes, owner: onA).Within();
        await onA.RegisterAsync("k", [put]).Within();
        await put.DisposeAsync();
        var fetched = (await (await clientB.GetHolderAsync("H").Within()).FetchAsync("k").Within()).Single();
        await onA.UnregisterAsync("k").Within();
        return (clientA, fetched);
    }

    private void Join(Worker.WorkerOptions options)
    {
        options.Redis = fixture.Redis.ConnectionString;
        options.ClusterName = _cluster;
        // No test here is about a lapse: a lease a loaded machine renews in time whatever runs beside it.
        options.ClusterLease = TimeSpan.FromSeconds(6);
    }
}
