using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using RaySharing.Worker.Cluster;
using Xunit;

namespace RaySharing.Tests;

/// <summary>One redis-server for the class; each test a cluster of its own on it.</summary>
public sealed class RedisFixture : IAsyncLifetime
{
    public RedisProcess Redis { get; private set; } = null!;

    public async Task InitializeAsync() => Redis = await RedisProcess.StartAsync().Within(TimeSpan.FromMinutes(3));

    public async Task DisposeAsync() => await Redis.DisposeAsync();
}

/// <summary>
/// Workers joined through a real redis-server: registration, holders found from any worker with one incarnation per
/// name, and what a worker does when Redis restarts, pauses or stays away. Workers run in this process on loopback
/// ports; the cluster's leases run on real time (4 s here).
/// </summary>
public sealed class ClusterDirectoryTests(RedisFixture fixture) : IClassFixture<RedisFixture>, IAsyncLifetime
{
    // Long enough that a loaded CI machine (other test classes run meanwhile) renews in time; the tests about a
    // lapse wait it out.
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(4);

    private readonly string _cluster = "t" + Guid.NewGuid().ToString("N")[..12];
    private readonly List<TestWorker> _workers = [];

    private RedisProcess Redis => fixture.Redis;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var worker in _workers)
        {
            await worker.DisposeAsync();
        }
    }

    [Fact]
    public async Task GetOrCreate_SixteenSessionsOnThreeWorkers_OneIncarnationOnOneWorker()
    {
        var workers = await StartWorkersAsync(3);
        var clients = new List<RaySharingClient>();
        for (var i = 0; i < 16; i++)
        {
            clients.Add(await workers[i % 3].ConnectAsync());
        }

        var holders = await Task.WhenAll(clients.Select(c => c.GetOrCreateHolderAsync("DUMMY_HOLDER"))).Within();

        Assert.Single(holders.Select(h => h.Incarnation).Distinct());
        Assert.Single(holders.Select(h => h.WorkerAddress).Distinct());
        Assert.Contains(holders[0].WorkerAddress, workers.Select(w => w.Address));
    }

    [Fact]
    public async Task GetHolder_HostedByAnotherWorker_NamesThatWorker()
    {
        var (a, b) = await TwoWorkersAsync();
        var onA = await (await a.ConnectAsync()).GetOrCreateHolderAsync("H").Within();
        var clientB = await b.ConnectAsync();

        var found = await clientB.GetHolderAsync("H").Within();
        var listed = await clientB.ListHoldersAsync().Within();

        Assert.Equal(onA.Incarnation, found.Incarnation);
        Assert.Equal(a.Address, found.WorkerAddress);
        Assert.Contains(listed, h => h.Name == "H" && h.Incarnation == onA.Incarnation && h.WorkerAddress == a.Address);
        await Assert.ThrowsAsync<HolderNotFoundException>(() => clientB.GetHolderAsync("never-made")).Within();
    }

    [Fact]
    public async Task GetOrCreate_SameNameInAnotherNamespaceOrCluster_IsAnotherHolder()
    {
        var (a, b) = await TwoWorkersAsync();
        await using var other = await TestWorker.StartAsync(o => Join(o, "other" + _cluster));
        var first = await (await a.ConnectAsync()).GetOrCreateHolderAsync("H").Within();

        var otherNamespace = await (await b.ConnectAsync()).GetOrCreateHolderAsync("H", holderNamespace: "elsewhere").Within();
        var otherCluster = await (await other.ConnectAsync()).GetOrCreateHolderAsync("H").Within();

        Assert.NotEqual(first.Incarnation, otherNamespace.Incarnation);
        Assert.Equal(b.Address, otherNamespace.WorkerAddress);
        Assert.NotEqual(first.Incarnation, otherCluster.Incarnation);
        Assert.Equal(other.Address, otherCluster.WorkerAddress);
    }

    [Fact]
    public async Task Kill_HolderOfAnotherWorkerGone_GetOrCreateMakesANewIncarnationWhereAsked()
    {
        var (a, b) = await TwoWorkersAsync();
        var first = await (await a.ConnectAsync()).GetOrCreateHolderAsync("H").Within();
        await first.KillAsync().Within();
        var clientB = await b.ConnectAsync();

        // The entry is dropped in the background right after the kill.
        var second = await Bounded.EventuallyValue(async () =>
        {
            var holder = await clientB.GetOrCreateHolderAsync("H");
            return holder.Incarnation != first.Incarnation ? holder : null;
        }, TimeSpan.FromSeconds(10), "a new incarnation of H once the killed one's entry is gone");

        Assert.Equal(b.Address, second.WorkerAddress);
    }

    [Fact]
    public async Task WorkerStopped_ItsHoldersAreDead_GetOrCreateElsewhereMakesANewIncarnation()
    {
        var (a, b) = await TwoWorkersAsync();
        var first = await (await a.ConnectAsync()).GetOrCreateHolderAsync("H").Within();
        var clientB = await b.ConnectAsync();
        Assert.Equal(first.Incarnation, (await clientB.GetHolderAsync("H").Within()).Incarnation);

        await a.DisposeAsync();

        // A clean stop drops the registration at once: no lease to wait out.
        await Assert.ThrowsAsync<HolderNotFoundException>(() => clientB.GetHolderAsync("H")).Within();
        var second = await clientB.GetOrCreateHolderAsync("H").Within();
        Assert.NotEqual(first.Incarnation, second.Incarnation);
        Assert.Equal(b.Address, second.WorkerAddress);
    }

    [Fact]
    public async Task RedisRestartedEmpty_WorkersPublishTheirHoldersAgain_NoNewIncarnation()
    {
        var (a, b) = await TwoWorkersAsync();
        var first = await (await a.ConnectAsync()).GetOrCreateHolderAsync("H").Within();
        var clientB = await b.ConnectAsync();

        await Redis.RestartAsync().Within();
        Assert.Equal(":0", await Redis.CommandAsync(TimeSpan.FromSeconds(5), "EXISTS", $"rs:{{{_cluster}}}:holders"));

        // Within a renewal (a third of the lease) worker A writes its holder back; B then finds it, not a new one.
        var found = await Bounded.EventuallyValue(async () =>
        {
            try
            {
                return await clientB.GetHolderAsync("H");
            }
            catch (RaySharingException ex) when (ex is HolderNotFoundException or WorkerUnavailableException)
            {
                return null;
            }
        }, TimeSpan.FromSeconds(15), "holder H published again after the Redis restart");
        Assert.Equal(first.Incarnation, found.Incarnation);
        Assert.Equal(first.Incarnation, (await clientB.GetOrCreateHolderAsync("H").Within()).Incarnation);
        Assert.False(a.Worker.Completion.IsCompleted);
    }

    [Fact]
    public async Task RedisPausedForLessThanALease_NothingIsLost()
    {
        var (a, b) = await TwoWorkersAsync();
        var first = await (await a.ConnectAsync()).GetOrCreateHolderAsync("H").Within();

        Redis.Pause();
        try
        {
            await Task.Delay(Lease / 2);
        }
        finally
        {
            Redis.Resume();
        }

        await Task.Delay(Lease);
        Assert.False(a.Worker.Completion.IsCompleted);
        Assert.Equal(first.Incarnation, (await (await b.ConnectAsync()).GetHolderAsync("H").Within()).Incarnation);
    }

    [Fact]
    public async Task RedisGoneForLongerThanALease_WorkersStopAndTheirHoldersDie()
    {
        var (a, _) = await TwoWorkersAsync();
        var client = await a.ConnectAsync(o => o.CallTimeout = TimeSpan.FromSeconds(2));
        var holder = await client.GetOrCreateHolderAsync("H").Within();

        Redis.Pause();
        try
        {
            // The worker counts a whole lease from its last renewal, then stops by itself.
            await a.Worker.Completion.Within(Lease * 3);
        }
        finally
        {
            Redis.Resume();
        }

        await Assert.ThrowsAsync<WorkerUnavailableException>(() => holder.ListKeysAsync()).Within();
    }

    [Fact]
    public async Task Start_RedisUnreachable_FailsNamingTheDirectory()
    {
        var error = await Assert.ThrowsAsync<ClusterDirectoryException>(() => TestWorker.StartAsync(o =>
        {
            Join(o, _cluster);
            o.Redis = "127.0.0.1:1";
            o.ClusterLease = TimeSpan.FromSeconds(1);
        })).Within();

        Assert.Contains("127.0.0.1:1", error.Message);
    }

    [Theory]
    [InlineData(nameof(WorkerOptions.ClusterName), "a b")]
    [InlineData(nameof(WorkerOptions.ClusterName), "")]
    [InlineData(nameof(WorkerOptions.ClusterName), "{x}")]
    [InlineData(nameof(WorkerOptions.Redis), " ")]
    [InlineData(nameof(WorkerOptions.ClusterLease), "00:00:00.5")]
    [InlineData(nameof(WorkerOptions.ClusterLease), "00:11:00")]
    public void Validate_BadClusterOption_NamesIt(string option, string value)
    {
        var options = new WorkerOptions();
        switch (option)
        {
            case nameof(WorkerOptions.ClusterName):
                options.ClusterName = value;
                break;
            case nameof(WorkerOptions.Redis):
                options.Redis = value;
                break;
            default:
                options.ClusterLease = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
                break;
        }

        var error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Equal(option, error.ParamName);
    }

    private void Join(WorkerOptions options, string cluster)
    {
        options.Redis = Redis.ConnectionString;
        options.ClusterName = cluster;
        options.ClusterLease = Lease;
    }

    private async Task<(TestWorker A, TestWorker B)> TwoWorkersAsync()
    {
        var workers = await StartWorkersAsync(2);
        return (workers[0], workers[1]);
    }

    private async Task<IReadOnlyList<TestWorker>> StartWorkersAsync(int count)
    {
        var started = new List<TestWorker>();
        for (var i = 0; i < count; i++)
        {
            var worker = await TestWorker.StartAsync(o => Join(o, _cluster));
            _workers.Add(worker);
            started.Add(worker);
        }

        return started;
    }
}
