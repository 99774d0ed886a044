using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

/// <summary>Every public call of the client fails typed, whatever the transport does under it.</summary>
public sealed class CatchPathTests
{
    private const int Large = 3 << 20;

    public static TheoryData<string> Calls => new(CallNames);

    private static readonly string[] CallNames =
    [
        "GetOrCreateHolder", "GetHolder", "ListHolders", "KillHolder", "Register", "Fetch", "Unregister", "ListKeys",
        "Stats", "PutUnary", "PutStream", "GetUnary", "GetStream", "BorrowFromEnvelope", "Release",
    ];

    [Theory]
    [MemberData(nameof(Calls))]
    public async Task Call_WorkerStopped_ThrowsWorkerUnavailableOrTimeout(string call)
    {
        var worker = await TestWorker.StartAsync();
        // Long enough for the set-up calls on a loaded machine; the call under test fails fast or times out within it.
        var client = await TestWorker.ConnectAsync(worker.Address, o => o.CallTimeout = TimeSpan.FromSeconds(10));
        try
        {
            var state = await PrepareAsync(client);
            await worker.DisposeAsync();

            var ex = await Record.ExceptionAsync(() => InvokeAsync(client, state, call).Within());

            Assert.True(ex is WorkerUnavailableException or RaySharingTimeoutException, $"{call}: {ex}");
        }
        finally
        {
            await client.DisposeAsync().Within();
        }
    }

    [Theory]
    [MemberData(nameof(Calls))]
    public async Task Call_WorkerFrozen_ThrowsTimeoutNamingTheOperation(string call)
    {
        await using var worker = await TestWorker.StartAsync();
        await using var proxy = new FreezableProxy(worker.Address);
        // The proxy stands in front of the gRPC port only: the channel's freeze is ChannelServedTests' (a stopped worker process).
        // Long enough for the set-up calls on a loaded machine (1 s was not), short enough for fifteen frozen calls.
        var client = await TestWorker.ConnectAsync(proxy.Address, o =>
        {
            o.CallTimeout = TimeSpan.FromSeconds(3);
            o.StreamIdleTimeout = TimeSpan.FromSeconds(3);
            o.UseChannel = false;
        });
        try
        {
            var state = await PrepareAsync(client);
            proxy.FreezeToClientAfter(0);
            proxy.FreezeToWorkerAfter(0);

            var ex = await Record.ExceptionAsync(() => InvokeAsync(client, state, call).Within());

            var timeout = Assert.IsType<RaySharingTimeoutException>(ex);
            Assert.False(string.IsNullOrEmpty(timeout.Operation), call);
        }
        finally
        {
            await client.DisposeAsync().Within();
        }
    }

    private static async Task<State> PrepareAsync(RaySharingClient client)
    {
        var holder = await client.GetOrCreateHolderAsync("catch-paths").Within();
        var small = await client.PutAsync("small", holder).Within();
        var large = await client.PutAsync(new byte[Large], holder).Within();
        await holder.RegisterAsync("key", [small]).Within();
        return new State(holder, small, large);
    }

    private static Task InvokeAsync(RaySharingClient client, State state, string call) => call switch
    {
        "GetOrCreateHolder" => client.GetOrCreateHolderAsync("other"),
        "GetHolder" => client.GetHolderAsync("catch-paths"),
        "ListHolders" => client.ListHoldersAsync(),
        "KillHolder" => state.Holder.KillAsync(),
        "Register" => state.Holder.RegisterAsync("key2", [state.Small]),
        "Fetch" => state.Holder.FetchAsync("key"),
        "Unregister" => state.Holder.UnregisterAsync("key"),
        "ListKeys" => state.Holder.ListKeysAsync(),
        "Stats" => client.GetStoreStatsAsync(),
        "PutUnary" => client.PutAsync("more"),
        "PutStream" => client.PutAsync(new byte[Large]),
        "GetUnary" => client.GetAsync(state.Small),
        "GetStream" => client.GetAsync(state.Large),
        "BorrowFromEnvelope" => client.BorrowFromEnvelopeAsync(state.Small.ToEnvelopeBytes()),
        "Release" => client.ReleaseAsync([state.Small]),
        _ => throw new ArgumentOutOfRangeException(nameof(call), call, "unknown call"),
    };

    private sealed record State(ObjectHolder Holder, ObjectRef<string> Small, ObjectRef<byte[]> Large);
}

public sealed class TimeoutContextTests
{
    [Fact]
    public async Task Get_WorkerFrozen_TimeoutNamesOperationObjectAndBound()
    {
        await using var worker = await TestWorker.StartAsync();
        await using var proxy = new FreezableProxy(worker.Address);
        var client = await TestWorker.ConnectAsync(proxy.Address, o => { o.CallTimeout = TimeSpan.FromSeconds(1); o.UseChannel = false; });
        try
        {
            var objectRef = await client.PutAsync("frozen").Within();
            proxy.FreezeToWorkerAfter(0);

            var ex = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => client.GetAsync(objectRef).Within());

            Assert.Equal("Get", ex.Operation);
            Assert.Equal(objectRef.Id, ex.ObjectId);
            Assert.Equal(TimeSpan.FromSeconds(1), ex.Timeout);
            Assert.Equal(proxy.Address, ex.Address);
            // The request went out on a live connection and no answer came: whether it arrived is unknown.
            Assert.Null(ex.RequestSent);
            Assert.Contains(objectRef.Id.ToString(), ex.Message, StringComparison.Ordinal);
            Assert.Contains("CallTimeout", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await client.DisposeAsync().Within();
        }
    }

    [Fact]
    public async Task HolderCall_WorkerFrozen_TimeoutNamesTheHolder()
    {
        await using var worker = await TestWorker.StartAsync();
        await using var proxy = new FreezableProxy(worker.Address);
        var client = await TestWorker.ConnectAsync(proxy.Address, o => { o.CallTimeout = TimeSpan.FromSeconds(1); o.UseChannel = false; });
        try
        {
            var holder = await client.GetOrCreateHolderAsync("frozen-holder").Within();
            proxy.FreezeToClientAfter(0);

            var ex = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => holder.ListKeysAsync().Within());

            Assert.Equal("ListKeys", ex.Operation);
            Assert.Equal("default", ex.HolderNamespace);
            Assert.Equal("frozen-holder", ex.HolderName);
            Assert.Null(ex.ObjectId);
            Assert.Contains("'default/frozen-holder'", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await client.DisposeAsync().Within();
        }
    }

    [Fact]
    public async Task PutStream_WorkerStopsReadingAfterAccepting_TimeoutSaysTheRequestWasSent()
    {
        await using var worker = await TestWorker.StartAsync();
        await using var proxy = new FreezableProxy(worker.Address);
        var client = await TestWorker.ConnectAsync(proxy.Address, o => { o.StreamIdleTimeout = TimeSpan.FromSeconds(1); o.ChunkBytes = 64 << 10; o.UseSharedMemory = false; o.UseChannel = false; });
        try
        {
            proxy.FreezeToWorkerAfter(1 << 20);

            var ex = await Assert.ThrowsAsync<RaySharingTimeoutException>(() => client.PutAsync(new byte[64 << 20]).Within());

            Assert.Equal("PutStream", ex.Operation);
            Assert.True(ex.RequestSent);
            Assert.Equal(TimeSpan.FromSeconds(1), ex.Timeout);
            Assert.Contains("StreamIdleTimeout", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await client.DisposeAsync().Within();
        }
    }
}
