using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using RaySharing.DependencyInjection;
using RaySharing.Tests.Infrastructure;
using Xunit;

namespace RaySharing.Tests;

public sealed class DependencyInjectionTests
{
    [Fact]
    public async Task AddRaySharingClient_BoundFromConfiguration_ProviderConnectsOnceAndDisposesWithContainer()
    {
        await using var worker = await TestWorker.StartAsync();
        var observer = await worker.ConnectAsync();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RaySharing:Address"] = worker.Address,
            ["RaySharing:Namespace"] = "from-config",
            ["RaySharing:CallTimeout"] = "00:00:07",
            ["RaySharing:ChunkBytes"] = "65536",
            ["RaySharing:Lease"] = "00:00:10",
        }).Build();
        var services = new ServiceCollection();
        services.AddRaySharingClient(configuration.GetSection("RaySharing"), o => o.ClientName = "di-test");

        var container = services.BuildServiceProvider();
        try
        {
            var options = container.GetRequiredService<IOptions<RaySharingClientOptions>>().Value;
            Assert.Equal(new Uri(worker.Address), options.Address);
            Assert.Equal(TimeSpan.FromSeconds(7), options.CallTimeout);
            Assert.Equal(64 << 10, options.ChunkBytes);
            Assert.Equal("di-test", options.ClientName);

            var provider = container.GetRequiredService<RaySharingClientProvider>();
            var clients = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => provider.GetClientAsync())).Within();

            Assert.All(clients, c => Assert.Same(clients[0], c));
            Assert.Equal("from-config", clients[0].Namespace);
            var objectRef = await clients[0].PutAsync("through DI").Within();
            Assert.Equal("through DI", await clients[0].GetAsync(objectRef).Within());
            Assert.Equal(2, (await observer.GetWorkerStatsAsync().Within()).Sessions);
        }
        finally
        {
            await container.DisposeAsync().Within();
        }

        // The container's disposal ended the client's session.
        Assert.Equal(1, (await observer.GetWorkerStatsAsync().Within()).Sessions);
    }

    [Fact]
    public async Task AddRaySharingClient_BadOption_HostStartFailsNamingTheOption()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["RaySharing:ChunkBytes"] = "0" });
        builder.Services.AddRaySharingClient(builder.Configuration.GetSection("RaySharing"));
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync().Within());

        Assert.Contains("RaySharingClientOptions.ChunkBytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetClientAsync_NoWorker_ThrowsTypedAndTriesAgainLater()
    {
        await using var worker = await TestWorker.StartAsync();
        var port = new Uri(worker.Address).Port;
        await worker.DisposeAsync();
        var services = new ServiceCollection();
        services.AddRaySharingClient(o =>
        {
            o.Address = new Uri($"http://127.0.0.1:{port}");
            o.CallTimeout = TimeSpan.FromSeconds(3);
        });
        await using var container = services.BuildServiceProvider();
        var provider = container.GetRequiredService<RaySharingClientProvider>();

        await Assert.ThrowsAsync<WorkerUnavailableException>(() => provider.GetClientAsync().Within());

        await using var restarted = await TestWorker.StartAsync(o => o.Port = port);
        var client = await provider.GetClientAsync().Within();
        Assert.NotNull(await client.PutAsync(1).Within());
    }
}
