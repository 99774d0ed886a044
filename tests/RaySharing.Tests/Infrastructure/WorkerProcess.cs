using RaySharing.Testing;

namespace RaySharing.Tests.Infrastructure;

/// <summary>The worker host run as its own process, as users deploy it, on loopback port 0; with the .NET clients a test connects.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly List<RaySharingClient> _clients = [];

    private WorkerProcess(ChildProcess process, string address)
    {
        Process = process;
        Address = address;
    }

    public ChildProcess Process { get; }

    /// <summary>The worker's gRPC address, from its "listening" line.</summary>
    public string Address { get; }

    /// <summary>Starts <c>raysharing-worker --port 0</c> with <paramref name="arguments"/> and waits until it listens.</summary>
    public static async Task<WorkerProcess> StartAsync(params string[] arguments)
    {
        var process = BuildOutputs.Start("src/RaySharing.Worker.Host", "RaySharing.Worker.Host", ["--port", "0", .. arguments]);
        try
        {
            var address = (await process.WaitForLineAsync("listening ", StartTimeout))["listening ".Length..];
            return new WorkerProcess(process, address);
        }
        catch
        {
            process.Dispose();
            throw;
        }
    }

    /// <summary>A .NET client of this worker, disposed with it.</summary>
    public Task<RaySharingClient> ConnectAsync(Action<RaySharingClientOptions>? configure = null) => TestWorker.ConnectAsync(Address, configure, _clients);

    public async ValueTask DisposeAsync()
    {
        try
        {
            foreach (var client in _clients)
            {
                await client.DisposeAsync().Within();
            }
        }
        finally
        {
            Process.Dispose();
        }
    }
}
