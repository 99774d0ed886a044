using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Hosting;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker;

/// <summary>
/// A worker running in this process: Kestrel serving the RaySharing gRPC API over HTTP/2 (cleartext).
/// Start one with <see cref="StartAsync(WorkerOptions?, Action{ILoggingBuilder}?, Action{WebApplicationBuilder}?, Action{WebApplication}?, CancellationToken)"/>; dispose it to stop it, which ends every session and frees
/// every object it stores.
/// </summary>
public sealed class RaySharingWorker : IAsyncDisposable
{
    /// <summary>The HTTP/2 stream window the worker grants, in bytes: large enough to keep bulk transfers moving.</summary>
    internal const int StreamWindowBytes = 16 << 20;

    private readonly WebApplication _app;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _stopping;

    private RaySharingWorker(WebApplication app, string address, ObjectId workerId)
    {
        _app = app;
        Address = address;
        WorkerId = new WorkerId(workerId);
        // The worker may stop by itself (it left its cluster); then it stops serving at once, not when disposed.
        app.Lifetime.ApplicationStopping.Register(() => _ = StopAsync());
    }

    /// <summary>
    /// Completes when the worker has stopped: disposed, or stopped by itself because it could not renew its
    /// registration in its cluster's directory within <see cref="WorkerOptions.ClusterLease"/> (the cluster then counts
    /// it dead, and its holders died with it). Dispose it all the same.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>The address clients connect to, for example <c>http://127.0.0.1:7480</c>.</summary>
    public string Address { get; }

    /// <summary>This worker instance's id; a restarted worker has a new one.</summary>
    public WorkerId WorkerId { get; }

    /// <summary>
    /// Starts a worker. With <see cref="WorkerOptions.Port"/> 0 a free port is picked; read it from <see cref="Address"/>.
    /// </summary>
    /// <param name="options">Settings, copied when the worker starts; null for the defaults.</param>
    /// <param name="configureLogging">Optional logging set-up; by default the worker logs nothing.</param>
    /// <param name="configureServices">Optional hook to add services of your own to the same server.</param>
    /// <param name="configureEndpoints">Optional hook to map endpoints of your own on the same server.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    /// <exception cref="IOException">The port is in use (its inner exception is an <c>AddressInUseException</c>).</exception>
    /// <exception cref="System.Net.Sockets.SocketException">The address cannot be bound: not an address of this machine, or not permitted.</exception>
    public static Task<RaySharingWorker> StartAsync(
        WorkerOptions? options = null,
        Action<ILoggingBuilder>? configureLogging = null,
        Action<WebApplicationBuilder>? configureServices = null,
        Action<WebApplication>? configureEndpoints = null,
        CancellationToken cancellationToken = default) =>
        StartAsync(options, TimeProvider.System, configureLogging, configureServices, configureEndpoints, cancellationToken);

    /// <summary>Starts a worker whose leases and lease checks run on <paramref name="timeProvider"/>: tests pass a fake clock.</summary>
    internal static async Task<RaySharingWorker> StartAsync(
        WorkerOptions? options,
        TimeProvider timeProvider,
        Action<ILoggingBuilder>? configureLogging = null,
        Action<WebApplicationBuilder>? configureServices = null,
        Action<WebApplication>? configureEndpoints = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(timeProvider);
        // A copy: the caller's object may change after this returns, the worker's settings may not.
        options = options?.Clone() ?? new WorkerOptions();
        options.Validate();

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(RaySharingWorker).Assembly.GetName().Name });
        builder.Logging.ClearProviders();
        configureLogging?.Invoke(builder.Logging);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Parse(options.ListenAddress), options.Port, listen => listen.Protocols = HttpProtocols.Http2);
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.Http2.InitialStreamWindowSize = StreamWindowBytes;
            kestrel.Limits.Http2.InitialConnectionWindowSize = StreamWindowBytes * 2;
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
            // Idle keep-alive pings let a client notice a worker that vanished without closing its sockets.
            kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(10);
            kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(10);
        });
        builder.Services.AddSingleton(timeProvider);
        builder.Services.AddRaySharingWorker(options);
        builder.Services.AddSingleton<IHostLifetime, EmbeddedLifetime>();
        configureServices?.Invoke(builder);
        var app = builder.Build();
        app.MapRaySharingWorker();
        configureEndpoints?.Invoke(app);

        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // A failed start (port in use, bad option) leaves nothing running behind.
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        // AddressPublisher has set the address (advertised, or bound) by the time StartAsync returns.
        var identity = app.Services.GetRequiredService<WorkerIdentity>();
        var address = identity.Address;
        WorkerLog.Listening(app.Services.GetRequiredService<ILogger<RaySharingWorker>>(), identity.WorkerId, address);
        return new RaySharingWorker(app, address, identity.WorkerId);
    }

    /// <summary>Stops the worker: every session ends and every object is dropped.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync().ConfigureAwait(false);
        }
        finally
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            await _completion.Task.ConfigureAwait(false);
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }
        finally
        {
            _completion.TrySetResult();
        }
    }
}
