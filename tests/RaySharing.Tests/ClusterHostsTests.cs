using System.Globalization;
using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// A cluster on real hosts: redis-server and two workers, each in its own network namespace joined by veth links
/// (<see cref="NetworkHosts"/>), so every call between workers crosses a link that a test can cut. Workers run
/// with shared memory and the Unix socket off, since namespaces of one machine still share /dev/shm and /tmp: every
/// byte takes the network. Clients run in this process and reach the workers over the bridge.
/// </summary>
public sealed class ClusterHostsTests
{
    private const int LeaseMs = 3000;
    private const int RedisPort = 6379;
    private const int WorkerPort = 7480;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    [NetworkHostsFact]
    public async Task HolderOnOneHost_CalledFromAnother_LinkCutEndsInOwnerDiedAndTheCutWorkerStops()
    {
        using var hosts = NetworkHosts.Create(3);
        var (redisHost, first, second) = (hosts.Hosts[0], hosts.Hosts[1], hosts.Hosts[2]);
        await using var redis = await RedisProcess.StartAsync(redisHost.Address.ToString(), RedisPort, redisHost.StartProgram).Within(TimeSpan.FromMinutes(3));
        var (workerOne, addressOne) = await StartWorkerAsync(first, redis);
        var (workerTwo, addressTwo) = await StartWorkerAsync(second, redis);
        await using var clientOne = await ConnectAsync(addressOne);
        await using var clientTwo = await ConnectAsync(addressTwo);

        var holder = await clientOne.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();
        var put = await clientOne.PutEncodedAsync(new byte[] { 4, 2 }, owner: holder).Within();
        await holder.RegisterAsync("uuid", [put]).Within();
        var viaTwo = await clientTwo.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();
        Assert.Equal(holder.Incarnation, viaTwo.Incarnation);
        Assert.Equal(addressOne, viaTwo.WorkerAddress);
        // Forwarded from the second host to the first, over the links.
        Assert.Equal([put.Id], (await viaTwo.FetchAsync("uuid").Within()).Select(r => r.Id));

        first.CutLink();

        // Cut off from Redis, the first worker cannot renew its record: it stops within a lease, and the second
        // worker, finding its record gone, answers OWNER_DIED for its holder rather than hang on the dead link.
        Assert.Equal(4, await workerOne.WaitForExitCodeAsync(TimeSpan.FromMilliseconds(LeaseMs * 5)));
        var error = await Assert.ThrowsAsync<OwnerDiedException>(() => viaTwo.ListKeysAsync()).Within(TimeSpan.FromMilliseconds(LeaseMs * 5));
        Assert.Contains("died", error.Message, StringComparison.Ordinal);
        var fresh = await clientTwo.GetOrCreateHolderAsync("DUMMY_HOLDER").Within();
        Assert.NotEqual(holder.Incarnation, fresh.Incarnation);
        Assert.Equal(addressTwo, fresh.WorkerAddress);
        Assert.False(workerTwo.HasExited);
    }

    [NetworkHostsFact]
    public async Task ExecutorsPutForAHolderOnAnotherHost_BytesStayWithThem_HoldersHostCutFreesThem()
    {
        using var hosts = NetworkHosts.Create(4);
        var (redisHost, holderHost, executorHost, driverHost) = (hosts.Hosts[0], hosts.Hosts[1], hosts.Hosts[2], hosts.Hosts[3]);
        await using var redis = await RedisProcess.StartAsync(redisHost.Address.ToString(), RedisPort, redisHost.StartProgram).Within(TimeSpan.FromMinutes(3));
        var (holderWorker, holderAddress) = await StartWorkerAsync(holderHost, redis);
        var (executorWorker, executorAddress) = await StartWorkerAsync(executorHost, redis);
        var (driverWorker, driverAddress) = await StartWorkerAsync(driverHost, redis);
        await using var master = await ConnectAsync(holderAddress);
        await using var executor = await ConnectAsync(executorAddress);
        await using var driver = await ConnectAsync(driverAddress);
        await master.GetOrCreateHolderAsync("job").Within();

        var forExecutor = await executor.GetHolderAsync("job").Within();
        var partitions = new List<byte[]>();
        var refs = new List<ObjectRef>();
        for (var i = 0; i < 4; i++)
        {
            partitions.Add(Enumerable.Range(0, 256 << 10).Select(b => (byte)(b * (i + 1))).ToArray());
            refs.Add(await executor.PutEncodedAsync(partitions[i], owner: forExecutor).Within());
        }

        await forExecutor.RegisterAsync("partitions", refs).Within();
        var fetched = await (await driver.GetHolderAsync("job").Within()).FetchAsync("partitions").Within();
        Assert.All(fetched, r => Assert.Equal(executorAddress, r.WorkerAddress));
        Assert.Equal(0, (await master.GetStoreStatsAsync().Within()).Objects);
        Assert.Equal(4, (await executor.GetStoreStatsAsync().Within()).Objects);

        holderHost.CutLink();

        // The holder's host is unreachable, yet the driver reads every partition: the bytes come from the executors' host.
        for (var i = 0; i < fetched.Count; i++)
        {
            Assert.Equal(partitions[i], await driver.GetBytesAsync(fetched[i]).Within());
        }

        // Then the holder's worker, unable to renew, stops; the executors' worker frees what it stored for the dead holder.
        Assert.Equal(4, await holderWorker.WaitForExitCodeAsync(TimeSpan.FromMilliseconds(LeaseMs * 5)));
        await Bounded.Eventually(async () => (await executor.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromMilliseconds(LeaseMs * 4),
            "the executors' worker freed the dead holder's objects");
        await Assert.ThrowsAsync<OwnerDiedException>(() => driver.GetBytesAsync(fetched[0])).Within(TimeSpan.FromMilliseconds(LeaseMs * 3));
        Assert.False(executorWorker.HasExited);
        Assert.False(driverWorker.HasExited);
    }

    private static async Task<(ChildProcess Worker, string Address)> StartWorkerAsync(NetworkHost host, RedisProcess redis)
    {
        var worker = host.StartAssembly("raysharing-worker", BuildOutputs.AssemblyPath("src/RaySharing.Worker.Host", "RaySharing.Worker.Host"),
            "--listen", host.Address.ToString(), "--port", WorkerPort.ToString(CultureInfo.InvariantCulture),
            "--redis", redis.ConnectionString, "--cluster", "hosts", "--cluster-lease-ms", LeaseMs.ToString(CultureInfo.InvariantCulture),
            "--shared-memory", "false", "--channel-socket-dir", string.Empty);
        var line = await worker.WaitForLineAsync("listening ", StartTimeout).Within(StartTimeout + TimeSpan.FromSeconds(5));
        return (worker, line["listening ".Length..]);
    }

    private static Task<RaySharingClient> ConnectAsync(string address) =>
        TestWorker.ConnectAsync(address, o =>
        {
            o.UseSharedMemory = false;
            o.CallTimeout = TimeSpan.FromMilliseconds(LeaseMs * 3);
        });
}
