using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using Xunit;

namespace RaySharing.Tests;

public sealed class ConnectionTests
{
    // Each bound below is the call's own deadline plus room for a busy machine: a hang fails the test
    // fast with the awaiting line, while a slow but typed answer within the deadline passes.
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Connect_NoWorkerListening_ThrowsWorkerUnavailableWithinDeadline()
    {
        var address = $"http://127.0.0.1:{FreePort()}";
        var callTimeout = TimeSpan.FromSeconds(3);

        var ex = await Assert.ThrowsAsync<WorkerUnavailableException>(() => TestWorker.ConnectAsync(address, o => o.CallTimeout = callTimeout).Within(callTimeout + Slack));

        Assert.Equal(address, ex.Address);
        Assert.True(ex.IsTransient);
    }

    [Fact]
    public async Task Connect_PeerThatNeverAnswers_ThrowsTimeoutWithinDeadline()
    {
        // A listener that never accepts: the kernel completes the TCP handshake and queues the connection,
        // and nothing ever answers, like a hung process.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var address = $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}";
        var callTimeout = TimeSpan.FromSeconds(1);

        var ex = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => TestWorker.ConnectAsync(address, o => o.CallTimeout = callTimeout).Within(callTimeout + Slack));

        Assert.True(ex.IsTransient);
    }

    [Fact]
    public async Task Call_WorkerStopped_ThrowsWorkerUnavailableWithinDeadline()
    {
        var callTimeout = TimeSpan.FromSeconds(2);
        await using var worker = await TestWorker.StartAsync();
        var client = await TestWorker.ConnectAsync(worker.Address, o => o.CallTimeout = callTimeout);
        await using var disposeClient = client.DisposedWithin();
        await worker.DisposeAsync();

        // Nothing listens on the port any more: the connection is refused, which is not a timeout.
        var ex = await Assert.ThrowsAsync<WorkerUnavailableException>(() => client.GetOrCreateHolderAsync("H").Within(callTimeout + Slack));

        Assert.Equal(worker.Address, ex.Address);
    }

    [Fact]
    public async Task WorkerRestarted_RefsFromBefore_ThrowOwnerDied()
    {
        await using var first = await TestWorker.StartAsync();
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
        Assert.Equal("lost", await after.GetAsync(await after.PutAsync("lost").Within()).Within());
    }

    [Fact]
    public async Task Call_Canceled_ThrowsOperationCanceledAndClientStillWorks()
    {
        await using var worker = await TestWorker.StartAsync();
        var client = await worker.ConnectAsync();
        using var canceled = new CancellationTokenSource();
        await canceled.CancelAsync().Within();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.PutAsync(new byte[10], cancellationToken: canceled.Token).Within());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.PutAsync(new byte[5 << 20], cancellationToken: canceled.Token).Within());

        Assert.NotNull(await client.PutAsync(1).Within());
        Assert.Equal(1, (await client.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task Lease_ClientAlive_RenewsPastSeveralLeases()
    {
        var lease = TimeSpan.FromSeconds(1);
        await using var worker = await TestWorker.StartAsync(o => { o.MinLease = TimeSpan.FromMilliseconds(100); o.DefaultLease = TimeSpan.FromSeconds(3.5); });
        var client = await worker.ConnectAsync(o => o.Lease = lease);
        var objectRef = await client.PutAsync("kept").Within();
        // A session that never renews, with the worker's default lease: it lapses only at the last step below.
        using var wire = new RawWire(worker.Address);
        Assert.Equal(StatusCode.OK, (await wire.CallAsync("raysharing.v1.Sessions", "Open", [], session: null)).Status);
        Assert.Equal(2, (await client.GetWorkerStatsAsync().Within()).Sessions);

        // No calls meanwhile: only the background renewals carry the session through 3.6 leases of the worker's clock.
        await worker.AdvanceAfterRenewalsAsync(lease * 0.9, times: 4);

        // The lease check after the last step ended the silent session, so it also saw this one, renewed.
        await Bounded.Eventually(async () => (await client.GetWorkerStatsAsync()).Sessions == 1, TimeSpan.FromSeconds(10), "the silent session lapses");
        Assert.Equal("kept", await client.GetAsync(objectRef).Within());
    }

    [Fact]
    public async Task Options_OutOfRange_ThrowArgumentExceptionNamingTheOption()
    {
        var client = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingClient.ConnectAsync(new RaySharingClientOptions { CallTimeout = TimeSpan.Zero }).Within());
        Assert.Equal("CallTimeout", client.ParamName);
        var renew = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingClient.ConnectAsync(new RaySharingClientOptions { Lease = TimeSpan.FromSeconds(1), LeaseRenewInterval = TimeSpan.FromSeconds(2) }).Within());
        Assert.Equal("LeaseRenewInterval", renew.ParamName);
        var worker = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingWorker.StartAsync(new WorkerOptions { StoreCapacityBytes = 0 }).Within());
        Assert.Equal("StoreCapacityBytes", worker.ParamName);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
