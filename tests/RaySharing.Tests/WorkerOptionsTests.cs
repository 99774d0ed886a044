using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using Xunit;

namespace RaySharing.Tests;

/// <summary>Worker options: one set of range rules, cross-field rules that agree with the documented ranges, binding and snapshots.</summary>
public sealed class WorkerOptionsTests
{
    [Fact]
    public void Validate_DocumentedMinimumMaxMessageBytes_PassesWithEveryOtherOptionAtItsDefault()
    {
        new WorkerOptions { MaxMessageBytes = 2 << 20 }.Validate();
        new WorkerOptions { StreamChunkBytes = 4 << 10 }.Validate();
        new WorkerOptions { StreamChunkBytes = 4 << 20 }.Validate();
        new WorkerOptions { MaxUnaryObjectBytes = (64 << 20) - 4096 }.Validate();
    }

    [Theory]
    [InlineData(nameof(WorkerOptions.MaxMessageBytes), (2 << 20) - 1, 1 << 20, 256 << 10)]
    [InlineData(nameof(WorkerOptions.MaxUnaryObjectBytes), 2 << 20, (2 << 20) - 4095, 256 << 10)]
    [InlineData(nameof(WorkerOptions.StreamChunkBytes), 2 << 20, 1 << 20, 4 << 20)]
    public void Validate_SizesThatDoNotFit_ThrowNamingTheOption(string option, int maxMessage, int maxUnary, int chunk)
    {
        var ex = Assert.Throws<ArgumentException>(() => new WorkerOptions { MaxMessageBytes = maxMessage, MaxUnaryObjectBytes = maxUnary, StreamChunkBytes = chunk }.Validate());

        Assert.Equal(option, ex.ParamName);
        Assert.StartsWith(option, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_LeasesOutOfOrder_NameTheOptionThatBreaksTheOrder()
    {
        Assert.Equal(nameof(WorkerOptions.MinLease), Assert.Throws<ArgumentException>(() => new WorkerOptions { MinLease = TimeSpan.FromMinutes(6) }.Validate()).ParamName);
        Assert.Equal(nameof(WorkerOptions.DefaultLease), Assert.Throws<ArgumentException>(() => new WorkerOptions { DefaultLease = TimeSpan.FromMilliseconds(100) }.Validate()).ParamName);
        Assert.Equal(nameof(WorkerOptions.LeaseCheckInterval), Assert.Throws<ArgumentException>(() => new WorkerOptions { LeaseCheckInterval = TimeSpan.FromSeconds(1) }.Validate()).ParamName);
        Assert.Equal(nameof(WorkerOptions.StreamIdleTimeout), Assert.Throws<ArgumentException>(() => new WorkerOptions { StreamIdleTimeout = TimeSpan.Zero }.Validate()).ParamName);
    }

    [Fact]
    public async Task AddRaySharingWorker_BoundFromConfiguration_WorkerUsesTheValues()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RaySharing:Worker:StoreCapacityBytes"] = "3000000",
            ["RaySharing:Worker:MaxUnaryObjectBytes"] = "100000",
            ["RaySharing:Worker:DefaultLease"] = "00:00:07",
        }).Build();
        await using var app = BuildApp(services => services.AddRaySharingWorker(configuration.GetSection("RaySharing:Worker")));
        await app.StartAsync().Within();

        var client = await TestWorker.ConnectAsync(app.Urls.First());
        Assert.Equal(3_000_000, (await client.GetStoreStatsAsync().Within()).CapacityBytes);
        Assert.Equal(TimeSpan.FromSeconds(7), app.Services.GetRequiredService<IOptions<WorkerOptions>>().Value.DefaultLease);
        await client.DisposeAsync().Within();
        await app.StopAsync().Within();
    }

    [Fact]
    public async Task AddRaySharingWorker_BadValueInConfiguration_StartFailsNamingTheOption()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Worker:MaxMessageBytes"] = "1048576",
        }).Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => BuildAndStartAsync(services => services.AddRaySharingWorker(configuration.GetSection("Worker"))));

        Assert.Equal(typeof(WorkerOptions), ex.OptionsType);
        Assert.Contains(ex.Failures, f => f.StartsWith(nameof(WorkerOptions.MaxMessageBytes), StringComparison.Ordinal));
    }

    [Fact]
    public async Task AddRaySharingWorker_Action_ConfiguresAndIsValidatedAtStart()
    {
        await using (var good = BuildApp(services => services.AddRaySharingWorker(o => o.StoreCapacityBytes = 5_000_000)))
        {
            await good.StartAsync().Within();
            var client = await TestWorker.ConnectAsync(good.Urls.First());
            Assert.Equal(5_000_000, (await client.GetStoreStatsAsync().Within()).CapacityBytes);
            await client.DisposeAsync().Within();
            await good.StopAsync().Within();
        }

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => BuildAndStartAsync(services => services.AddRaySharingWorker(o => o.MinLease = TimeSpan.Zero)));
        Assert.Contains(ex.Failures, f => f.StartsWith(nameof(WorkerOptions.MinLease), StringComparison.Ordinal));
    }

    [Fact]
    public async Task StartAsync_CallerChangesOptionsAfterStart_WorkerKeepsItsCopy()
    {
        var options = new WorkerOptions { Port = 0, StoreCapacityBytes = 4_000_000 };
        await using var worker = await RaySharingWorker.StartAsync(options).Within();

        options.StoreCapacityBytes = 1;
        options.MaxUnaryObjectBytes = -1;

        var client = await TestWorker.ConnectAsync(worker.Address);
        Assert.Equal(4_000_000, (await client.GetStoreStatsAsync().Within()).CapacityBytes);
        Assert.NotNull(await client.PutAsync(new byte[100_000]).Within());
        await client.DisposeAsync().Within();
    }

    // Mapping the gRPC services reads their options, so a bad value fails there, before the start.
    private static async Task BuildAndStartAsync(Action<IServiceCollection> addWorker)
    {
        await using var app = BuildApp(addWorker);
        await app.StartAsync().Within();
        await app.StopAsync().Within();
    }

    private static WebApplication BuildApp(Action<IServiceCollection> addWorker)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        addWorker(builder.Services);
        var app = builder.Build();
        app.MapRaySharingWorker();
        return app;
    }
}
