using Microsoft.AspNetCore.Builder;
using RaySharing.Worker;

namespace RaySharing.Benchmarks;

/// <summary>
/// The benchmark's server process (<c>serve</c> mode): a worker with the echo baseline and the stats
/// service on its Kestrel, as users deploy a worker, apart from the client process that measures it.
/// </summary>
internal static class Serve
{
    public const string Mode = "serve";

    public const string ListeningPrefix = "listening ";

    /// <summary>Runs until stdin closes: the parent closes it when it is done, and the OS when the parent dies.</summary>
    public static async Task<int> RunAsync()
    {
        await using var worker = await RaySharingWorker.StartAsync(
            // Room for every put of a run even if releases lag; the store never refuses one.
            new WorkerOptions { Port = 0, StoreCapacityBytes = 4L << 30 },
            configureEndpoints: app =>
            {
                app.MapGrpcService<EchoService>();
                app.MapGrpcService<ServerStatsService>();
            }).ConfigureAwait(false);
        Console.WriteLine($"{ListeningPrefix}{worker.Address}");
        Console.Out.Flush();
        await Console.In.ReadToEndAsync().ConfigureAwait(false);
        return 0;
    }
}
