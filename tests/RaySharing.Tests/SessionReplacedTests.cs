using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class SessionReplacedTests
{
    [Fact]
    public async Task Client_WorkerRestartedOnSameAddress_OpensNewSessionAndOldRefsFailTyped()
    {
        var first = await TestWorker.StartAsync();
        var port = new Uri(first.Address).Port;
        var log = new ConcurrentQueue<(EventId Id, string Message)>();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(new CapturingProvider(log)).SetMinimumLevel(LogLevel.Information));
        var client = await TestWorker.ConnectAsync(first.Address, o =>
        {
            o.CallTimeout = TimeSpan.FromSeconds(3);
            o.LoggerFactory = loggerFactory;
        });
        var replaced = new TaskCompletionSource<SessionReplacedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.SessionReplaced += (_, e) => replaced.TrySetResult(e);
        try
        {
            var oldSession = client.SessionId;
            var oldWorker = client.WorkerId;
            var holder = await client.GetOrCreateHolderAsync("before-restart").Within();
            var holderOwned = await client.PutAsync("holder-owned", holder).Within();
            var sessionOwned = await client.PutAsync("session-owned").Within();
            await first.DisposeAsync();

            await using var second = await TestWorker.StartAsync(o => o.Port = port);
            // The first call after the restart may still meet the ended session (or the reconnecting channel):
            // it fails typed, and the client replaces the session by itself.
            var firstCall = await Record.ExceptionAsync(() => client.GetStoreStatsAsync().Within());
            Assert.True(firstCall is null or SessionExpiredException or WorkerUnavailableException, firstCall?.ToString());
            var e = await replaced.Task.Within();

            Assert.Equal(oldSession, e.PreviousSessionId);
            Assert.Equal(client.SessionId, e.SessionId);
            Assert.NotEqual(oldSession, client.SessionId);
            Assert.Equal(oldWorker, e.PreviousWorkerId);
            Assert.Equal(second.Worker.WorkerId, client.WorkerId);
            Assert.True(e.WorkerRestarted);
            Assert.Contains(log, l => l.Id.Id == 1006 && l.Message.Contains(oldSession.ToString(), StringComparison.Ordinal) && l.Message.Contains(client.SessionId.ToString(), StringComparison.Ordinal));

            // New calls work in the new session.
            var fresh = await client.PutAsync("after-restart").Within();
            Assert.Equal("after-restart", await client.GetAsync(fresh).Within());
            Assert.Equal(1, (await client.GetStoreStatsAsync().Within()).Objects);

            // What the old session had never resolves to anything else: its objects' owners died with the worker.
            var holderEx = await Assert.ThrowsAsync<OwnerDiedException>(() => client.GetAsync(holderOwned).Within());
            Assert.Equal(holder.Incarnation, holderEx.Incarnation);
            await Assert.ThrowsAsync<OwnerDiedException>(() => client.GetAsync(sessionOwned).Within());
            var holderCall = await Record.ExceptionAsync(() => holder.ListKeysAsync().Within());
            Assert.True(holderCall is OwnerDiedException or HolderNotFoundException, holderCall?.ToString());

            // Their borrows ended with the old session: disposing them sends nothing and changes nothing.
            await holderOwned.DisposeAsync().Within();
            await client.ReleaseAsync([sessionOwned]).Within();
            Assert.Equal("after-restart", await client.GetAsync(fresh).Within());
            Assert.Equal(1, (await client.GetStoreStatsAsync().Within()).Objects);
        }
        finally
        {
            await client.DisposeAsync().Within();
        }
    }

    [Fact]
    public async Task Client_SessionEndedByWorker_RefOfEndedSessionDoesNotReleaseNewBorrow()
    {
        await using var worker = await TestWorker.StartAsync();
        var observer = await worker.ConnectAsync();
        var holder = await observer.GetOrCreateHolderAsync("kept").Within();
        var put = await observer.PutAsync("kept-object", holder).Within();
        await holder.RegisterAsync("k", [put]).Within();
        await using var client = await TestWorker.ConnectAsync(worker.Address);
        var replaced = new TaskCompletionSource<SessionReplacedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        client.SessionReplaced += (_, e) => replaced.TrySetResult(e);
        var clientHolder = await client.GetHolderAsync("kept").Within();
        var oldRef = (await clientHolder.FetchAsync<string>("k").Within())[0];

        // The session ends on the worker behind the client's back (as when its lease lapses): closed with its token.
        using (var wire = new RawWire(worker.Address))
        {
            var (status, _) = await wire.CallAsync("raysharing.v1.Sessions", "Close", [], client.SessionToken).Within();
            Assert.Equal(Grpc.Core.StatusCode.OK, status);
        }

        await Assert.ThrowsAsync<SessionExpiredException>(() => client.GetStoreStatsAsync().Within());
        var e = await replaced.Task.Within();
        Assert.False(e.WorkerRestarted);

        var newRef = (await clientHolder.FetchAsync<string>("k").Within())[0];
        await holder.UnregisterAsync("k").Within();
        await oldRef.DisposeAsync().Within();

        // The new session's borrow still keeps the object: the old ref's disposal did not release it.
        Assert.Equal("kept-object", await client.GetAsync(newRef).Within());
    }

    private sealed class CapturingProvider(ConcurrentQueue<(EventId, string)> log) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public void Dispose()
        {
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            log.Enqueue((eventId, formatter(state, exception)));
    }
}
