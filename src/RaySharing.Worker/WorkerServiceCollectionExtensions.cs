using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RaySharing.Worker.Cluster;
using RaySharing.Worker.Hosting;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Services;
using RaySharing.Worker.Storage;
using RaySharing.Worker.Transport.Channel;

namespace RaySharing.Worker;

/// <summary>
/// Hosts a RaySharing worker inside an ASP.NET Core application. The options come through
/// Microsoft.Extensions.Options (<c>IOptions&lt;WorkerOptions&gt;</c>), are validated by
/// <c>MapRaySharingWorker</c> (which reads them) or else when the host starts (ValidateOnStart), failing with
/// <see cref="OptionsValidationException"/> whose messages name each bad option, and are copied then: the
/// worker never sees a later change.
/// </summary>
public static class WorkerServiceCollectionExtensions
{
    /// <summary>
    /// Adds the worker's services with the options configured elsewhere (for example
    /// <c>services.Configure&lt;WorkerOptions&gt;(section)</c>), or the defaults. Kestrel must serve HTTP/2 on the
    /// address the options name; the embedded <see cref="RaySharingWorker"/> sets that up for you.
    /// </summary>
    public static IServiceCollection AddRaySharingWorker(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return AddCore(services);
    }

    /// <summary>
    /// Adds the worker's services, configured by <paramref name="configure"/> on top of the defaults and of any
    /// other configuration of <see cref="WorkerOptions"/>.
    /// </summary>
    public static IServiceCollection AddRaySharingWorker(this IServiceCollection services, Action<WorkerOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<WorkerOptions>().Configure(configure);
        return AddCore(services);
    }

    /// <summary>
    /// Adds the worker's services with options bound from <paramref name="configuration"/>, whose keys are the
    /// <see cref="WorkerOptions"/> property names (<c>Port</c>, <c>StoreCapacityBytes</c>, <c>DefaultLease</c> as
    /// <c>00:00:10</c>, ...), for example <c>builder.Configuration.GetSection("RaySharing:Worker")</c>.
    /// </summary>
    public static IServiceCollection AddRaySharingWorker(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<WorkerOptions>().Bind(configuration);
        return AddCore(services);
    }

    /// <summary>
    /// Adds the worker's services with a copy of <paramref name="options"/>, taken now and validated now.
    /// </summary>
    /// <exception cref="ArgumentException">An option is out of range; the message and the parameter name name it.</exception>
    public static IServiceCollection AddRaySharingWorker(this IServiceCollection services, WorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var snapshot = options.Clone();
        services.AddSingleton<IOptions<WorkerOptions>>(Options.Create(snapshot));
        return AddCore(services);
    }

    private static IServiceCollection AddCore(IServiceCollection services)
    {
        services.AddOptions<WorkerOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<WorkerOptions>, WorkerOptionsValidator>());
        // The worker's parts read one copy taken at start; IOptions<WorkerOptions>.Value stays the caller's to look at.
        services.TryAddSingleton(sp => sp.GetRequiredService<IOptions<WorkerOptions>>().Value.Clone());
        // The clock of leases and their checks: the host's TimeProvider where it registers one.
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<WorkerIdentity>();
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<WorkerOptions>();
            return new ObjectStore(options.StoreCapacityBytes, options.SharedMemory, sp.GetRequiredService<ILogger<ObjectStore>>(), options.SharedMemoryDirectory,
                options.SpillCapacityBytes > 0 ? new SpillSettings(options.SpillDirectory ?? Path.GetTempPath(), options.SpillCapacityBytes) : null);
        });
        services.TryAddSingleton<OwnershipGraph>();
        services.TryAddSingleton<ObjectOperations>();
        services.TryAddSingleton<RegistryVersions>();
        services.TryAddSingleton<HolderCalls>();
        services.TryAddSingleton<ObjectChannelHandler>();
        services.TryAddSingleton<ChannelHost>();
        // Before the server: a channel that cannot bind fails the start, and sessions find it running.
        services.AddHostedService(sp => sp.GetRequiredService<ChannelHost>());
        services.AddHostedService<LeaseMonitor>();
        services.AddHostedService<MemoryReturner>();
        services.AddHostedService<AddressPublisher>();
        // After AddressPublisher: registers this worker in its cluster's directory under the address it published.
        services.TryAddSingleton<ClusterMembership>();
        services.TryAddSingleton<ClusterHolders>();
        services.TryAddSingleton<PeerWorkers>();
        services.TryAddSingleton<RemoteBorrows>();
        services.TryAddSingleton<RemoteObjects>();
        services.TryAddSingleton<RemotePuts>();
        services.AddHostedService(sp => sp.GetRequiredService<ClusterMembership>());
        services.AddHostedService(sp => sp.GetRequiredService<RemotePuts>());
        // Per service, so the host application's own gRPC services keep their settings.
        services.AddGrpc();
        Configure<SessionsService>(services);
        Configure<HoldersService>(services);
        Configure<ObjectsService>(services);
        Configure<PeersService>(services);
        return services;
    }

    private static void Configure<TService>(IServiceCollection services)
        where TService : class =>
        services.AddOptions<GrpcServiceOptions<TService>>().Configure<WorkerOptions>((grpc, worker) =>
        {
            grpc.MaxReceiveMessageSize = worker.MaxMessageBytes;
            grpc.MaxSendMessageSize = worker.MaxMessageBytes;
        });

    /// <summary>Maps the worker's gRPC services (sessions, holders, objects, and the calls between workers of a cluster).</summary>
    public static IEndpointRouteBuilder MapRaySharingWorker(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGrpcService<SessionsService>().WithErrorReasons();
        endpoints.MapGrpcService<HoldersService>().WithErrorReasons();
        endpoints.MapGrpcService<ObjectsService>().WithErrorReasons();
        endpoints.MapGrpcService<PeersService>().WithErrorReasons();
        return endpoints;
    }
}
