using System.Globalization;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Hosting;

/// <summary>
/// Learns the address the server bound (the port may have been 0) once it has started, for workers hosted
/// with <c>AddRaySharingWorker</c> in any ASP.NET Core app.
/// <see cref="WorkerOptions.AdvertisedAddress"/>, when set, wins.
/// </summary>
internal sealed class AddressPublisher(IServer server, WorkerIdentity identity) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Once every service started, the server included; before the services that need the address (the cluster's registration).</summary>
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        Publish();
        return Task.CompletedTask;
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Publish()
    {
        if (identity.Address.Length != 0 || server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() is not { } bound)
        {
            return;
        }

        // A wildcard binding is reached on loopback from this machine; set AdvertisedAddress for other hosts.
        var uri = new UriBuilder(bound);
        if (uri.Host is "0.0.0.0" or "[::]" or "::" or "+" or "*")
        {
            uri.Host = "127.0.0.1";
        }

        // Written out whole: Uri drops a scheme's default port (http://host:80 prints as http://host), and
        // parents read the port from this address.
        identity.Address = $"{uri.Scheme}://{uri.Host}:{uri.Port.ToString(CultureInfo.InvariantCulture)}";
    }
}
