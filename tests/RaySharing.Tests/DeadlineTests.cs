using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>A worker that stops answering becomes a typed error within the bound, never a hang.</summary>
public sealed class DeadlineTests
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(1);

    // Each bound is the client's own timeout plus room for a busy machine: a hang fails fast at its line,
    // while a typed timeout that comes a little late on a loaded machine does not flake.
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task GetStream_WorkerStopsAnsweringMidTransfer_TimeoutWithinIdleBound()
    {
        await using var worker = await TestWorker.StartAsync();
        var putter = await worker.ConnectAsync();
        var objectRef = await putter.PutAsync(new byte[48 << 20], await putter.GetOrCreateHolderAsync("H").Within()).Within();
        await using var proxy = new FreezableProxy(worker.Address);
        var getter = await TestWorker.ConnectAsync(proxy.Address, o => { o.StreamIdleTimeout = Idle; o.ChunkBytes = 64 << 10; o.UseSharedMemory = false; o.UseChannel = false; });
        var borrowed = await getter.BorrowFromEnvelopeAsync<byte[]>(objectRef.ToEnvelopeBytes()).Within();

        proxy.FreezeToClientAfter(1 << 20);
        var ex = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => getter.GetAsync(borrowed).Within(Idle + Slack));

        Assert.Contains("StreamIdleTimeout", ex.Message, StringComparison.Ordinal);
        Assert.True(ex.IsTransient);
        Assert.Equal(48 << 20, (await putter.GetAsync(objectRef).Within()).Length);
    }

    [Fact]
    public async Task PutStream_WorkerStopsReadingMidTransfer_TimeoutWithinIdleBoundAndNothingStored()
    {
        await using var worker = await TestWorker.StartAsync(o => o.StreamIdleTimeout = TimeSpan.FromSeconds(2));
        var observer = await worker.ConnectAsync();
        await using var proxy = new FreezableProxy(worker.Address);
        var putter = await TestWorker.ConnectAsync(proxy.Address, o => { o.StreamIdleTimeout = Idle; o.ChunkBytes = 64 << 10; o.UseSharedMemory = false; o.UseChannel = false; });

        proxy.FreezeToWorkerAfter(2 << 20);
        await Assert.ThrowsAsync<RaySharingTimeoutException>(() => putter.PutAsync(new byte[64 << 20]).Within(Idle + Slack));

        // The worker abandons the half-received put after its own idle timeout; nothing is stored.
        await Bounded.Eventually(async () => (await observer.GetStoreStatsAsync()).UsedBytes == 0, TimeSpan.FromSeconds(10), "the half put is dropped");
        Assert.Equal(0, (await observer.GetStoreStatsAsync().Within()).Objects);
    }

    [Fact]
    public async Task UnaryCall_WorkerStopsAnswering_TimeoutWithinCallTimeout()
    {
        var callTimeout = TimeSpan.FromSeconds(2);
        await using var worker = await TestWorker.StartAsync();
        // Warm up the gRPC stacks first: a cold first call can take longer than the short deadline below.
        await (await worker.ConnectAsync()).GetOrCreateHolderAsync("H").Within();
        await using var proxy = new FreezableProxy(worker.Address);
        var client = await TestWorker.ConnectAsync(proxy.Address, o => { o.CallTimeout = callTimeout; o.UseChannel = false; });
        var holder = await client.GetOrCreateHolderAsync("H").Within();

        proxy.FreezeToClientAfter(0);
        await Assert.ThrowsAsync<RaySharingTimeoutException>(() => holder.ListKeysAsync().Within(callTimeout + Slack));
        // With a token of the caller's own (which never fires here), the deadline still does.
        using var callerToken = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await Assert.ThrowsAsync<RaySharingTimeoutException>(() => client.PutAsync(1, holder, callerToken.Token).Within(callTimeout + Slack));
    }
}
