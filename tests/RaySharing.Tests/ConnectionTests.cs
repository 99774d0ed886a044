using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using Xunit;

namespace RaySharing.Tests;

public sealed class ConnectionTests
{
    [Fact]
    public async Task Connect_NoWorkerListening_ThrowsWorkerUnavailableWithinDeadline()
    {
        var address = $"http://127.0.0.1:{FreePort()}";
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<WorkerUnavailableException>(() => TestWorker.ConnectAsync(address, o => o.CallTimeout = TimeSpan.FromSeconds(3)));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3.5), $"took {clock.Elapsed}");
        Assert.Equal(address, ex.Address);
        Assert.True(ex.IsTransient);
    }

    [Fact]
    public async Task Connect_PeerThatNeverAnswers_ThrowsTimeoutWithinDeadline()
    {
        // Accepts TCP connections and then says nothing, like a hung process.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var accepted = new List<Socket>();
        _ = Task.Run(async () =>
        {
            while (true)
            {
                accepted.Add(await silent.AcceptSocketAsync());
            }
        });
        var address = $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}";
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAnyAsync<TimeoutException>(() => TestWorker.ConnectAsync(address, o => o.CallTimeout = TimeSpan.FromSeconds(1)).Within());

        Assert.IsType<RaySharingTimeoutException>(ex);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Call_WorkerStopped_ThrowsTypedErrorWithinDeadline()
    {
        var worker = await TestWorker.StartAsync();
        var client = await TestWorker.ConnectAsync(worker.Address, o => o.CallTimeout = TimeSpan.FromSeconds(2));
        await worker.DisposeAsync();
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAnyAsync<Exception>(() => client.GetOrCreateHolderAsync("H").Within());

        Assert.True(ex is WorkerUnavailableException or RaySharingTimeoutException, ex.ToString());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
        await client.DisposeAsync().Within();
    }

    [Fact]
    public async Task WorkerRestarted_RefsFromBefore_ThrowOwnerDied()
    {
        var first = await TestWorker.StartAsync();
        var port = new Uri(first.Address).Port;
        var before = await first.ConnectAsync();
        var holder = await before.GetOrCreateHolderAsync("H").Within();
        var envelope = (await before.PutAsync("lost", holder).Within()).ToEnvelopeBytes();
        await first.DisposeAsync();

        await using var second = await TestWorker.StartAsync(o => o.Port = port);
        var after = await second.ConnectAsync();
        await after.GetOrCreateHolderAsync("H").Within();

        var ex = await Assert.ThrowsAsync<OwnerDiedException>(() => after.BorrowFromEnvelopeAsync(envelope).Within());
        Assert.Equal(holder.Incarnation, ex.Incarnation);
        Assert.NotEqual(first.Worker.WorkerId, second.Worker.WorkerId);
    }

    [Fact]
    public async Task Call_Canceled_ThrowsOperationCanceledAndClientStillWorks()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        using var canceled = new CancellationTokenSource();
        await canceled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.PutAsync(new byte[10], cancellationToken: canceled.Token).Within());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.PutAsync(new byte[5 << 20], cancellationToken: canceled.Token).Within());

        Assert.NotNull(await client.PutAsync(1).Within());
        Assert.Equal(1, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task Lease_ClientAlive_RenewsPastSeveralLeases()
    {
        await using var worker = await TestWorker.StartAsync(o => o.MinLease = TimeSpan.FromMilliseconds(100));
        var client = await worker.ConnectAsync(o => o.Lease = TimeSpan.FromSeconds(1));
        var objectRef = await client.PutAsync("kept").Within();

        // No calls meanwhile, for more than three leases: only the background renewals keep the session.
        await Task.Delay(TimeSpan.FromSeconds(3.5));

        Assert.Equal("kept", await client.GetAsync(objectRef).Within());
    }

    [Fact]
    public async Task Options_OutOfRange_ThrowArgumentExceptionNamingTheOption()
    {
        var client = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingClient.ConnectAsync(new RaySharingClientOptions { CallTimeout = TimeSpan.Zero }));
        Assert.Equal("CallTimeout", client.ParamName);
        var renew = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingClient.ConnectAsync(new RaySharingClientOptions { Lease = TimeSpan.FromSeconds(1), LeaseRenewInterval = TimeSpan.FromSeconds(2) }));
        Assert.Equal("LeaseRenewInterval", renew.ParamName);
        var worker = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingWorker.StartAsync(new WorkerOptions { StoreCapacityBytes = 0 }));
        Assert.Equal("StoreCapacityBytes", worker.ParamName);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
