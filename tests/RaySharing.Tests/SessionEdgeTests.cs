using System.Net;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using RaySharing.Tests.Infrastructure;
using RaySharing.Worker;
using Xunit;

namespace RaySharing.Tests;

/// <summary>Sessions, options and hosting at their edges.</summary>
public sealed class SessionEdgeTests
{
    [Fact]
    public async Task Release_RefFromAnotherClient_ThrowsArgumentExceptionAndReleasesNothing()
    {
        await using var worker = await TestWorker.StartAsync();
        var a = await worker.ConnectAsync();
        var b = await worker.ConnectAsync();
        var objectRef = await a.PutAsync("mine").Within();

        await Assert.ThrowsAsync<ArgumentException>(() => b.ReleaseAsync([objectRef]).Within());

        Assert.False(objectRef.IsReleased);
        Assert.Equal("mine", await a.GetAsync(objectRef).Within());
    }

    [Fact]
    public async Task SessionId_FromAnEnvelope_CannotCloseTheSession()
    {
        // Envelopes of session-owned objects publish the session id; only the secret token is a credential.
        await using var worker = await TestWorker.StartAsync();
        var owner = await worker.ConnectAsync();
        var objectRef = await owner.PutAsync("precious").Within();
        using var wire = new RawWire(worker.Address);

        // Close is idempotent, so an unknown token is answered OK; what matters is that nothing closes.
        await wire.CallAsync("raysharing.v1.Sessions", "Close", [], objectRef.Owner.Incarnation);
        var (status, reason) = await wire.CallAsync("raysharing.v1.Objects", "Stats", [], objectRef.Owner.Incarnation);

        Assert.Equal(StatusCode.FailedPrecondition, status);
        Assert.Equal("SESSION_EXPIRED", reason);
        Assert.Equal(owner.SessionId, objectRef.Owner.SessionId);
        Assert.Equal("precious", await owner.GetAsync(objectRef).Within());
    }

    [Fact]
    public async Task Lease_GrantedShorterThanTheRenewIntervalAskedFor_SessionStaysAlive()
    {
        await using var worker = await TestWorker.StartAsync(o => { o.MinLease = TimeSpan.FromMilliseconds(200); o.DefaultLease = TimeSpan.FromMilliseconds(1500); o.MaxLease = TimeSpan.FromMilliseconds(1500); });
        var client = await worker.ConnectAsync(o => { o.Lease = TimeSpan.FromMinutes(10); o.LeaseRenewInterval = TimeSpan.FromMinutes(5); });
        var objectRef = await client.PutAsync("kept").Within();
        Assert.Equal(TimeSpan.FromMilliseconds(1500), client.Lease);

        // No calls meanwhile, for 2.8 leases of the worker's clock: only renewals at a third of the granted
        // lease (not the five minutes asked for) arrive in time to carry the session through.
        await worker.AdvanceAfterRenewalsAsync(TimeSpan.FromMilliseconds(1400), times: 3);

        Assert.Equal("kept", await client.GetAsync(objectRef).Within());
    }

    [Fact]
    public async Task UnaryLimit_WorkerSmallerThanClient_ClientStreamsWhatTheWorkerWouldRefuse()
    {
        await using var worker = await TestWorker.StartAsync(o => o.MaxUnaryObjectBytes = 64 << 10);
        var client = await worker.ConnectAsync();
        var data = new byte[500_000];
        new Random(3).NextBytes(data);

        var objectRef = await client.PutAsync(data).Within();

        Assert.Equal(data, await client.GetAsync(objectRef).Within());
    }

    [Theory]
    [InlineData("CallTimeout")]
    [InlineData("StreamIdleTimeout")]
    public async Task Options_UnboundedTimeouts_ThrowArgumentExceptionNamingTheOption(string option)
    {
        var options = new RaySharingClientOptions();
        typeof(RaySharingClientOptions).GetProperty(option)!.SetValue(options, TimeSpan.MaxValue);

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => RaySharingClient.ConnectAsync(options).Within());

        Assert.Equal(option, ex.ParamName);
    }

    [Fact]
    public async Task HostedInAnAspNetCoreApp_EnvelopesCarryTheBoundAddress()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddRaySharingWorker(new WorkerOptions());
        var app = builder.Build();
        await using var disposeApp = app.DisposedWithin();
        app.MapRaySharingWorker();
        await app.StartAsync().Within();
        var address = app.Urls.First();

        var client = await TestWorker.ConnectAsync(address);
        await using var disposeClient = client.DisposedWithin();
        var objectRef = await client.PutAsync(1).Within();

        Assert.Equal(address, client.WorkerAddress);
        Assert.Equal(address, objectRef.Envelope.Location.Address);
    }

    [Fact]
    public async Task HostedInAnAspNetCoreApp_TimeProviderRegistered_DrivesTheLeases()
    {
        var clock = new FakeTimeProvider();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Services.AddSingleton<TimeProvider>(clock);
        // Leases of an hour: only the host's clock, not the few real seconds of this test, can make one lapse.
        builder.Services.AddRaySharingWorker(new WorkerOptions { DefaultLease = TimeSpan.FromHours(1), MaxLease = TimeSpan.FromHours(2) });
        var app = builder.Build();
        await using var disposeApp = app.DisposedWithin();
        app.MapRaySharingWorker();
        await app.StartAsync().Within();
        var address = app.Urls.First();
        var client = await TestWorker.ConnectAsync(address, o => o.Lease = TimeSpan.FromHours(2));
        await using var disposeClient = client.DisposedWithin();
        using var wire = new RawWire(address);
        Assert.Equal(StatusCode.OK, (await wire.CallAsync("raysharing.v1.Sessions", "Open", [], session: null)).Status);
        Assert.Equal(2, (await client.GetWorkerStatsAsync().Within()).Sessions);

        clock.Advance(TimeSpan.FromMinutes(61));

        await Bounded.Eventually(async () => (await client.GetWorkerStatsAsync()).Sessions == 1, TimeSpan.FromSeconds(10), "the silent session's hour-long lease lapses");
        Assert.Equal(1, (await client.GetWorkerStatsAsync().Within()).Sessions);
    }
}
