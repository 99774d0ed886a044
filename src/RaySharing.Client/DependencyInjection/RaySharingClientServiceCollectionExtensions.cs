using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using RaySharing;
using RaySharing.DependencyInjection;

// The namespace of IServiceCollection, as Microsoft.Extensions.* and Grpc.Net.ClientFactory do: the extension
// is found where services are registered, without a using of ours.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a <see cref="RaySharingClient"/> in a service collection.</summary>
public static class RaySharingClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="RaySharingClientOptions"/> (validated when the host starts; a bad option fails the
    /// start with a message naming it) and a singleton <see cref="RaySharingClientProvider"/>: resolve it and
    /// <c>await provider.GetClientAsync()</c> for the one client of the container. It connects on first use
    /// and is disposed, ending its session, with the container.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets options in code; applied after any configuration binding.</param>
    /// <returns>The options builder, for more configuration (for example <c>.Bind(section)</c>).</returns>
    public static OptionsBuilder<RaySharingClientOptions> AddRaySharingClient(this IServiceCollection services, Action<RaySharingClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddOptions<RaySharingClientOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RaySharingClientOptions>, RaySharingClientOptionsValidator>());
        services.TryAddSingleton<RaySharingClientProvider>();
        return builder;
    }

    /// <summary>
    /// Like <see cref="AddRaySharingClient(IServiceCollection, Action{RaySharingClientOptions})"/>, binding the
    /// options from <paramref name="configuration"/> (for example the <c>RaySharing</c> section): keys are the
    /// property names (<c>Address</c>, <c>Namespace</c>, <c>CallTimeout</c> as <c>00:00:30</c>, <c>ChunkBytes</c>, ...).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section to bind.</param>
    /// <param name="configure">Sets options in code; applied after the binding.</param>
    public static OptionsBuilder<RaySharingClientOptions> AddRaySharingClient(this IServiceCollection services, IConfiguration configuration, Action<RaySharingClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<RaySharingClientOptions>().Bind(configuration);
        return services.AddRaySharingClient(configure);
    }
}
