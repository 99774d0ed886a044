using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using RaySharing.Worker.Hosting;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Services;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker;

/// <summary>Hosts a RaySharing worker inside an ASP.NET Core application.</summary>
public static class WorkerServiceCollectionExtensions
{
    /// <summary>
    /// Adds the worker's services: object store, ownership graph, lease monitor and gRPC. Kestrel must
    /// serve HTTP/2; the embedded <see cref="RaySharingWorker"/> sets that up for you.
    /// </summary>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    public static IServiceCollection AddRaySharingWorker(this IServiceCollection services, WorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        services.AddSingleton(options);
        services.AddSingleton<WorkerIdentity>();
        services.AddSingleton(new ObjectStore(options.StoreCapacityBytes));
        services.AddSingleton<OwnershipGraph>();
        services.AddSingleton<RegistryVersions>();
        services.AddHostedService<LeaseMonitor>();
        services.AddHostedService<AddressPublisher>();
        // Per service, so the host application's own gRPC services keep their settings.
        void Configure(Grpc.AspNetCore.Server.GrpcServiceOptions grpc)
        {
            grpc.MaxReceiveMessageSize = options.MaxMessageBytes;
            grpc.MaxSendMessageSize = options.MaxMessageBytes;
        }

        services.AddGrpc()
            .AddServiceOptions<SessionsService>(o => Configure(o))
            .AddServiceOptions<HoldersService>(o => Configure(o))
            .AddServiceOptions<ObjectsService>(o => Configure(o));
        return services;
    }

    /// <summary>Maps the worker's gRPC services (sessions, holders, objects).</summary>
    public static IEndpointRouteBuilder MapRaySharingWorker(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGrpcService<SessionsService>().WithErrorReasons();
        endpoints.MapGrpcService<HoldersService>().WithErrorReasons();
        endpoints.MapGrpcService<ObjectsService>().WithErrorReasons();
        return endpoints;
    }
}
