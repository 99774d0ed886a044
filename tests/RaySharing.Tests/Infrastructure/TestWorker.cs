using RaySharing.Worker;

namespace RaySharing.Tests.Infrastructure;

/// <summary>A real worker on a loopback port chosen by the OS, and clients connected to it.</summary>
internal sealed class TestWorker : IAsyncDisposable
{
    private readonly List<RaySharingClient> _clients = [];

    private TestWorker(RaySharingWorker worker) => Worker = worker;

    public RaySharingWorker Worker { get; }

    public string Address => Worker.Address;

    public static async Task<TestWorker> StartAsync(Action<WorkerOptions>? configure = null)
    {
        var options = new WorkerOptions { Port = 0, LeaseCheckInterval = TimeSpan.FromMilliseconds(50) };
        configure?.Invoke(options);
        return new TestWorker(await RaySharingWorker.StartAsync(options).Within());
    }

    public Task<RaySharingClient> ConnectAsync(Action<RaySharingClientOptions>? configure = null) => ConnectAsync(Address, configure, _clients);

    public static async Task<RaySharingClient> ConnectAsync(string address, Action<RaySharingClientOptions>? configure = null, List<RaySharingClient>? track = null)
    {
        var options = new RaySharingClientOptions
        {
            Address = new Uri(address),
            CallTimeout = TimeSpan.FromSeconds(10),
            // The test's own sessions must not lapse on a starved CI machine; the peer processes a test
            // kills take the worker's (often short) default lease instead.
            Lease = TimeSpan.FromSeconds(10),
            StreamIdleTimeout = TimeSpan.FromSeconds(10),
            ClientName = "test",
        };
        configure?.Invoke(options);
        var client = await RaySharingClient.ConnectAsync(options).Within();
        track?.Add(client);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync().Within();
        }

        await Worker.DisposeAsync().Within();
    }
}
