using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Time.Testing;
using RaySharing.Worker;

namespace RaySharing.Tests.Infrastructure;

/// <summary>
/// A real worker on a loopback port chosen by the OS, and clients connected to it. Its leases run on
/// <see cref="Clock"/>, a fake clock that only moves when a test advances it, so lease tests wait for
/// signals instead of sleeping.
/// </summary>
internal sealed class TestWorker : IAsyncDisposable
{
    private const string KeepAlivePath = "/raysharing.v1.Sessions/KeepAlive";

    private readonly List<RaySharingClient> _clients = [];
    private readonly KeepAliveCounter _keepAlives;
    private int _disposed;

    private TestWorker(RaySharingWorker worker, FakeTimeProvider clock, KeepAliveCounter keepAlives)
    {
        Worker = worker;
        Clock = clock;
        _keepAlives = keepAlives;
    }

    public RaySharingWorker Worker { get; }

    /// <summary>The worker's clock: session leases and the lease checks. Frozen until advanced.</summary>
    public FakeTimeProvider Clock { get; }

    public string Address => Worker.Address;

    /// <summary>How many lease renewals (KeepAlive calls) the worker has answered so far.</summary>
    public int KeepAlives => _keepAlives.Count;

    public static async Task<TestWorker> StartAsync(Action<WorkerOptions>? configure = null)
    {
        var options = new WorkerOptions { Port = 0, LeaseCheckInterval = TimeSpan.FromMilliseconds(50) };
        configure?.Invoke(options);
        var clock = new FakeTimeProvider();
        var keepAlives = new KeepAliveCounter();
        var worker = await RaySharingWorker.StartAsync(options, clock, configureEndpoints: app => app.Use(keepAlives.Middleware)).Within();
        return new TestWorker(worker, clock, keepAlives);
    }

    /// <summary>
    /// Advances the worker's clock by <paramref name="elapsed"/>; the lease check that this makes due runs
    /// on the thread pool, so wait for its effect rather than assuming it already happened.
    /// </summary>
    public void Advance(TimeSpan elapsed) => Clock.Advance(elapsed);

    /// <summary>
    /// Advances the worker's clock by <paramref name="step"/> before each poll of <paramref name="condition"/>
    /// until it holds: for sessions that must lapse, whatever renewal was still in flight when their
    /// process died. The test's own sessions survive, as each poll of theirs renews them.
    /// </summary>
    public Task AdvanceUntilAsync(TimeSpan step, Func<Task<bool>> condition, string what,
        [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        Bounded.Eventually(() =>
        {
            Advance(step);
            return condition();
        }, TimeSpan.FromSeconds(10), what, file, line);

    /// <summary>
    /// Lets <paramref name="times"/> renewals arrive, advancing the worker's clock by <paramref name="step"/>
    /// after each: a session that stops renewing fails this with the renewal it waited for.
    /// </summary>
    public async Task AdvanceAfterRenewalsAsync(TimeSpan step, int times,
        [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        for (var i = 0; i < times; i++)
        {
            await _keepAlives.WaitForMoreThanAsync(KeepAlives, file, line);
            Advance(step);
        }
    }

    public Task<RaySharingClient> ConnectAsync(Action<RaySharingClientOptions>? configure = null) => ConnectAsync(Address, configure, _clients);

    public static async Task<RaySharingClient> ConnectAsync(string address, Action<RaySharingClientOptions>? configure = null, List<RaySharingClient>? track = null)
    {
        var options = new RaySharingClientOptions
        {
            Address = new Uri(address),
            CallTimeout = TimeSpan.FromSeconds(10),
            // The test's own sessions must not lapse when a test advances the worker's clock past the
            // (often short) default lease that the peer processes it kills take.
            Lease = TimeSpan.FromSeconds(10),
            StreamIdleTimeout = TimeSpan.FromSeconds(10),
            ClientName = "test",
        };
        configure?.Invoke(options);
        var client = await RaySharingClient.ConnectAsync(options).Within();
        track?.Add(client);
        return client;
    }

    /// <summary>Disposes the clients, then stops the worker; safe to call again.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            foreach (var client in _clients)
            {
                await client.DisposeAsync().Within();
            }
        }
        finally
        {
            await Worker.DisposeAsync().Within();
        }
    }

    /// <summary>Counts answered KeepAlive calls, waking waiters on each.</summary>
    private sealed class KeepAliveCounter
    {
        private readonly Lock _gate = new();
        private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public async Task Middleware(HttpContext context, RequestDelegate next)
        {
            await next(context);
            if (context.Request.Path == KeepAlivePath && Succeeded(context))
            {
                TaskCompletionSource arrived;
                lock (_gate)
                {
                    _count++;
                    arrived = _next;
                    _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                arrived.TrySetResult();
            }
        }

        // A gRPC call's status is a trailer; a failed renewal (SESSION_EXPIRED) is not a renewal.
        private static bool Succeeded(HttpContext context) =>
            context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers["grpc-status"].ToString() == "0";

        public async Task WaitForMoreThanAsync(int seen, string file, int line)
        {
            while (true)
            {
                Task arrived;
                lock (_gate)
                {
                    if (_count > seen)
                    {
                        return;
                    }

                    arrived = _next.Task;
                }

                await arrived.Within(TimeSpan.FromSeconds(10), default, $"a lease renewal after the first {seen}", file, line);
            }
        }
    }
}
