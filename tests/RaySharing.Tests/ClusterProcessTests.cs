using RaySharing.Testing;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>
/// Cluster workers as their own processes (the raysharing-worker host with <c>--redis</c>): killed with SIGKILL, their
/// holders are dead to the cluster within a lease; cut off from Redis for a lease, they stop with exit code 4; unable
/// to reach Redis at start, they exit 5 with one line.
/// </summary>
public sealed class ClusterProcessTests(RedisFixture fixture) : IClassFixture<RedisFixture>
{
    private const int LeaseMs = 2000;
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    private readonly string _cluster = "p" + Guid.NewGuid().ToString("N")[..12];

    [Fact]
    public async Task HolderWorkerKilled_WithinALeaseItsNameMakesANewIncarnationElsewhere()
    {
        var (host, address) = await StartListeningHostAsync();
        using var started = host;
        await using var other = await StartWorkerHereAsync();
        await using var onKilled = await TestWorker.ConnectAsync(address);
        var first = await onKilled.GetOrCreateHolderAsync("H").Within();
        var client = await other.ConnectAsync();
        Assert.Equal(first.Incarnation, (await client.GetOrCreateHolderAsync("H").Within()).Incarnation);

        host.Kill();
        var killedAt = DateTime.UtcNow;

        // No clean stop deleted its record: the name frees when the lease runs out, not before it.
        var second = await Bounded.EventuallyValue(async () =>
        {
            var holder = await client.GetOrCreateHolderAsync("H");
            return holder.Incarnation != first.Incarnation ? holder : null;
        }, TimeSpan.FromMilliseconds(LeaseMs * 3), "a new incarnation once the killed worker's lease lapsed");
        Assert.Equal(other.Address, second.WorkerAddress);
        Assert.True(DateTime.UtcNow - killedAt >= TimeSpan.FromMilliseconds(LeaseMs / 2), "the name was free long before the killed worker's lease could lapse");
    }

    [Fact]
    public async Task ForwardingWorkerKilled_ItsBorrowsOnTheHoldersWorkerDropWithinALease()
    {
        await using var holderWorker = await StartWorkerHereAsync();
        var owner = await holderWorker.ConnectAsync();
        var holder = await owner.GetOrCreateHolderAsync("H").Within();
        var put = await owner.PutEncodedAsync(new byte[] { 1, 2, 3 }, owner: holder).Within();
        await holder.RegisterAsync("k", [put]).Within();
        await put.DisposeAsync();
        var (host, address) = await StartListeningHostAsync();
        using var started = host;
        var viaKilled = await TestWorker.ConnectAsync(address);
        await (await viaKilled.GetHolderAsync("H").Within()).FetchAsync("k").Within();
        await holder.UnregisterAsync("k").Within();
        await Task.Delay(200);
        Assert.Equal(1, (await owner.GetStoreStatsAsync().Within()).Objects);

        host.Kill();

        // The killed worker's session on the holder's worker ends once its cluster record lapses.
        await Bounded.Eventually(async () => (await owner.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromMilliseconds(LeaseMs * 4),
            "the object freed once the worker that fetched it through its peer session died");
    }

    [Fact]
    public async Task StoringWorkerKilledMidTransfer_ReaderGetsATypedErrorThenOwnerDied_NoHang()
    {
        var (host, address) = await StartListeningHostAsync();
        using var started = host;
        await using var reading = await StartWorkerHereAsync();
        await using var owner = await TestWorker.ConnectAsync(address);
        var holder = await owner.GetOrCreateHolderAsync("H").Within();
        var bytes = new byte[32 << 20];
        await holder.RegisterAsync("k", [await owner.PutEncodedAsync(bytes, owner: holder).Within()]).Within();
        // Over the network paths: a same-host reader maps the store's arena, which stays readable after its worker dies.
        var reader = await reading.ConnectAsync(o => o.UseSharedMemory = false);
        var fetched = (await (await reader.GetHolderAsync("H").Within()).FetchAsync("k").Within()).Single();
        using var slow = new SlowStream();

        var copy = reader.CopyToAsync(fetched, slow);
        await slow.FirstWrite.Within();
        host.Kill();

        // Whatever the transport was doing, the read ends typed, and a later get says the owner died with its worker.
        var midway = await Assert.ThrowsAnyAsync<Exception>(() => copy).Within(TimeSpan.FromMilliseconds(LeaseMs * 5));
        Assert.True(midway is RaySharingException or RaySharingTimeoutException, $"untyped: {midway}");
        var died = await Bounded.EventuallyValue(async () =>
        {
            try
            {
                await reader.GetBytesAsync(fetched);
                return null;
            }
            catch (OwnerDiedException ex)
            {
                return ex;
            }
            catch (WorkerUnavailableException)
            {
                return null;
            }
        }, TimeSpan.FromMilliseconds(LeaseMs * 5), "OWNER_DIED once the storing worker's lease lapsed");
        Assert.Contains("died", died.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HoldersWorkerKilled_TheWorkerStoringItsObjectsFreesThemWithinALease()
    {
        var (host, address) = await StartListeningHostAsync();
        using var started = host;
        await using var storing = await StartWorkerHereAsync();
        await using var onKilled = await TestWorker.ConnectAsync(address);
        await onKilled.GetOrCreateHolderAsync("H").Within();
        var putter = await storing.ConnectAsync();
        var holder = await putter.GetHolderAsync("H").Within();
        var registered = await putter.PutEncodedAsync(new byte[1 << 20], owner: holder).Within();
        var unregistered = await putter.PutEncodedAsync(new byte[] { 1 }, owner: holder).Within();
        await holder.RegisterAsync("k", [registered]).Within();
        Assert.Equal(2, (await putter.GetStoreStatsAsync().Within()).Objects);

        host.Kill();

        // No death notice can come from a killed worker: the storing worker learns it from the directory.
        await Bounded.Eventually(async () => (await putter.GetStoreStatsAsync()).Objects == 0, TimeSpan.FromMilliseconds(LeaseMs * 4),
            "the objects stored for the killed worker's holder freed once its lease lapsed");
        await Assert.ThrowsAsync<OwnerDiedException>(() => putter.GetBytesAsync(registered)).Within();
        await Assert.ThrowsAsync<OwnerDiedException>(() => putter.GetBytesAsync(unregistered)).Within();
    }

    [Fact]
    public async Task StoringWorkerKilled_HolderLives_GetsSayObjectLostWithinALease_RegistryNamesThem()
    {
        var (host, address) = await StartListeningHostAsync();
        using var started = host;
        await using var holderWorker = await StartWorkerHereAsync();
        var owner = await holderWorker.ConnectAsync();
        var holder = await owner.GetOrCreateHolderAsync("H").Within();
        await using var putter = await TestWorker.ConnectAsync(address);
        var viaKilled = await putter.GetHolderAsync("H").Within();
        var put = await putter.PutEncodedAsync(new byte[] { 7, 7 }, owner: viaKilled).Within();
        await viaKilled.RegisterAsync("partitions", [put]).Within();
        var fetched = (await holder.FetchAsync("partitions").Within()).Single();
        Assert.Equal(new byte[] { 7, 7 }, await owner.GetBytesAsync(fetched).Within());

        host.Kill();

        var lost = await Bounded.EventuallyValue(async () =>
        {
            try
            {
                await owner.GetBytesAsync(fetched);
                return null;
            }
            catch (ObjectLostException ex)
            {
                return ex;
            }
            catch (WorkerUnavailableException)
            {
                return null;
            }
        }, TimeSpan.FromMilliseconds(LeaseMs * 5), "OBJECT_LOST once the storing worker's lease lapsed");
        Assert.Contains(address, lost.Message, StringComparison.Ordinal);
        await Bounded.Eventually(async () => (await holder.GetLostRefsAsync()).Count == 1, TimeSpan.FromMilliseconds(LeaseMs * 4), "the registry names the lost ref");
        Assert.Equal(put.Id, (await holder.GetLostRefsAsync().Within()).Single().ObjectId);
        Assert.Equal(1, await holder.UnregisterAsync("partitions").Within());
    }

    [Fact]
    public async Task StoringWorkerRestartedOnItsAddress_IsANewWorker_OldRefsSayObjectLost()
    {
        await using var holderWorker = await StartWorkerHereAsync();
        var owner = await holderWorker.ConnectAsync();
        var holder = await owner.GetOrCreateHolderAsync("H").Within();
        var port = FreePort();
        var (first, address) = await StartListeningHostAsync(port: port);
        ObjectRef put;
        using (first)
        {
            await using var putter = await TestWorker.ConnectAsync(address);
            var viaFirst = await putter.GetHolderAsync("H").Within();
            put = await putter.PutEncodedAsync(new byte[] { 5 }, owner: viaFirst).Within();
            await viaFirst.RegisterAsync("k", [put]).Within();
            first.Kill();
            // Gone before the next one binds its port.
            Assert.True(await first.WaitForExitAsync(ProcessTimeout, CancellationToken.None), "the killed worker did not exit");
        }

        var (second, sameAddress) = await StartListeningHostAsync(port: port);
        using var restarted = second;
        Assert.Equal(address, sameAddress);
        var fetched = (await holder.FetchAsync("k").Within()).Single();
        await using var onRestarted = await TestWorker.ConnectAsync(sameAddress);

        // From the holder's worker and from the new worker at the old address alike: the bytes died with the old worker id.
        await Bounded.Eventually(async () =>
        {
            try
            {
                await owner.GetBytesAsync(fetched);
                return false;
            }
            catch (WorkerUnavailableException)
            {
                return false;
            }
            catch (ObjectLostException)
            {
                return true;
            }
        }, TimeSpan.FromMilliseconds(LeaseMs * 5), "OBJECT_LOST once the old worker's lease lapsed");
        await Assert.ThrowsAsync<ObjectLostException>(() => onRestarted.BorrowFromEnvelopeAsync(put.ToEnvelopeBytes())).Within();
    }

    [Fact]
    public async Task HoldersWorkerStopped_SIGSTOP_ForwardedCallEndsTypedWithinAboutALease_NoHang()
    {
        var (host, address) = await StartListeningHostAsync();
        using var started = host;
        await using var onStopped = await TestWorker.ConnectAsync(address);
        await onStopped.GetOrCreateHolderAsync("H").Within();
        await using var other = await StartWorkerHereAsync();
        var viaOther = await (await other.ConnectAsync()).GetHolderAsync("H").Within();
        Assert.Empty(await viaOther.ListKeysAsync().Within());

        await SignalAsync(host.Id, "STOP");
        try
        {
            // The forwarded call gets no answer: bounded by one cluster lease, then the directory decides.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var error = await Assert.ThrowsAnyAsync<RaySharingException>(() => viaOther.ListKeysAsync()).Within(TimeSpan.FromMilliseconds(LeaseMs * 4));
            Assert.True(error is WorkerUnavailableException or OwnerDiedException, error.ToString());
            Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(LeaseMs * 3), $"took {clock.Elapsed}");
        }
        finally
        {
            await SignalAsync(host.Id, "CONT");
        }
    }

    [Fact]
    public async Task ForwardedCallStuckOnAStoppedWorker_TheSameClientsOtherCallsGoOn()
    {
        var (host, address) = await StartListeningHostAsync();
        using var started = host;
        await using var onStopped = await TestWorker.ConnectAsync(address);
        var holder = await onStopped.GetOrCreateHolderAsync("H").Within();
        await holder.RegisterAsync("k", [await onStopped.PutEncodedAsync(new byte[] { 1 }, owner: holder).Within()]).Within();
        await using var other = await StartWorkerHereAsync();
        var client = await other.ConnectAsync(o => o.UseChannel = true);
        Assert.True(client.UsesChannel);
        var viaOther = await client.GetHolderAsync("H").Within();

        await SignalAsync(host.Id, "STOP");
        try
        {
            var stuck = viaOther.FetchAsync("k");
            await Task.Delay(200);
            Assert.False(stuck.IsCompleted, "the fetch answered although the holder's worker is stopped");

            // Calls of the same client that do not involve the stopped worker are not queued behind the stuck one.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var local = await client.PutEncodedAsync(new byte[] { 2, 3 }).Within(TimeSpan.FromSeconds(1));
            Assert.Equal(new byte[] { 2, 3 }, await client.GetBytesAsync(local).Within(TimeSpan.FromSeconds(1)));
            Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(LeaseMs / 2), $"local calls took {clock.Elapsed}");

            await Assert.ThrowsAnyAsync<RaySharingException>(() => stuck).Within(TimeSpan.FromMilliseconds(LeaseMs * 4));
        }
        finally
        {
            await SignalAsync(host.Id, "CONT");
        }
    }

    private static async Task SignalAsync(int pid, string signal)
    {
        using var kill = System.Diagnostics.Process.Start("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync().Within();
    }

    [Fact]
    public async Task Sample_ExecutorsOnOneWorkerDriverOnAnother_DriverVerifiesEveryPartition()
    {
        // Not about lapses: a lease a loaded machine renews in time.
        var (executorsWorker, executorsAddress) = await StartListeningHostAsync(leaseMs: 10_000);
        using var executorsHost = executorsWorker;
        var (driverWorker, driverAddress) = await StartListeningHostAsync(leaseMs: 10_000);
        using var driverHost = driverWorker;

        using var sample = BuildOutputs.Start("samples/ExecutorsToDriver", "ExecutorsToDriver",
            "run", "--executors", "3", "--address", executorsAddress, "--driver-address", driverAddress);

        Assert.Equal(0, await sample.WaitForExitCodeAsync(TimeSpan.FromSeconds(120)));
        Assert.True(sample.HasLine("driver: verified 3/3 partitions"), sample.Describe());
        // The holder lives with the driver; the partitions stayed where the executors put them.
        Assert.True(sample.HasLine($"driver: 3 partitions stored on the worker at {executorsAddress}, the holder on {driverAddress}"), sample.Describe());
        Assert.True(sample.HasLine("master: unregistered job"), sample.Describe());
    }

    [Fact]
    public async Task RedisUnreachableForALease_HostStops_ExitsFourWithOneLine()
    {
        await using var redis = await RedisProcess.StartAsync().Within(TimeSpan.FromMinutes(3));
        using var host = StartHost(redis.ConnectionString);
        await host.WaitForLineAsync("listening ", ProcessTimeout);

        await redis.KillAsync().Within();

        Assert.Equal(4, await host.WaitForExitCodeAsync(TimeSpan.FromMilliseconds(LeaseMs * 5)));
        var error = host.StderrTail.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1];
        Assert.StartsWith("raysharing-worker: the worker could not renew its registration in cluster", error, StringComparison.Ordinal);
        Assert.Contains(redis.ConnectionString, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RedisUnreachableAtStart_ExitsFiveWithOneLineNamingIt()
    {
        using var host = BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", "--port", "0", "--redis", "127.0.0.1:1", "--cluster-lease-ms", "1000");

        Assert.Equal(5, await host.WaitForExitCodeAsync(ProcessTimeout));
        Assert.Empty(host.Lines);
        var error = host.StderrTail;
        Assert.DoesNotContain('\n', error);
        Assert.StartsWith("raysharing-worker: cannot join cluster 'default'", error, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:1", error, StringComparison.Ordinal);
        Assert.Contains("--redis", error, StringComparison.Ordinal);
    }

    /// <summary>A worker of the test's cluster in this process, on the same lease as the host processes.</summary>
    private Task<TestWorker> StartWorkerHereAsync() => TestWorker.StartAsync(o =>
    {
        o.Redis = fixture.Redis.ConnectionString;
        o.ClusterName = _cluster;
        o.ClusterLease = TimeSpan.FromMilliseconds(LeaseMs);
    });

    /// <summary>A worker host process of the test's cluster, once it listens, and its address.</summary>
    private async Task<(ChildProcess Host, string Address)> StartListeningHostAsync(int leaseMs = LeaseMs, int port = 0)
    {
        var host = StartHost(leaseMs: leaseMs, port: port);
        try
        {
            return (host, (await host.WaitForLineAsync("listening ", ProcessTimeout))["listening ".Length..]);
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private ChildProcess StartHost(string? redis = null, int leaseMs = LeaseMs, int port = 0) =>
        BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host",
            "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--redis", redis ?? fixture.Redis.ConnectionString, "--cluster", _cluster, "--cluster-lease-ms", leaseMs.ToString(System.Globalization.CultureInfo.InvariantCulture));
}

/// <summary>A destination that takes its time: each write waits, so a transfer is still under way when a test acts.</summary>
internal sealed class SlowStream : Stream
{
    private readonly TaskCompletionSource _firstWrite = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task FirstWrite => _firstWrite.Task;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _firstWrite.TrySetResult();
        await Task.Delay(50, cancellationToken);
    }

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
