using Microsoft.AspNetCore.Builder;
using RaySharing.Benchmarks.DataPlane;
using RaySharing.Worker;

namespace RaySharing.Benchmarks;

/// <summary>
/// The benchmark's server process (<c>serve</c> mode): a worker with the echo baseline and the stats
/// service on its Kestrel, as users deploy a worker, apart from the client process that measures it; and the
/// data-plane baselines (a gRPC streaming service on the same Kestrel, a raw TCP listener), idle unless called.
/// </summary>
internal static class Serve
{
    public const string Mode = "serve";

    public const string ListeningPrefix = "listening ";

    /// <summary>Where the server's worker makes its shared-memory arena, when the parent sets it.</summary>
    public const string SharedMemoryDirectoryVariable = "RAYSHARING_BENCH_SHARED_MEMORY_DIR";

    /// <summary>The cluster run's settings for a server on a host of its own: its address, the Redis directory, the cluster.</summary>
    public const string ListenVariable = "RAYSHARING_BENCH_LISTEN";

    public const string RedisVariable = "RAYSHARING_BENCH_REDIS";

    public const string ClusterVariable = "RAYSHARING_BENCH_CLUSTER";

    /// <summary>Runs until stdin closes: the parent closes it when it is done, and the OS when the parent dies.</summary>
    public static async Task<int> RunAsync()
    {
        var listen = Environment.GetEnvironmentVariable(ListenVariable);
        await using var socket = new RawSocketServer(listen is null ? null : System.Net.IPAddress.Parse(listen));
        var options = new WorkerOptions
        {
            Port = 0,
            // Room for every put of a run even if releases lag, and for the data plane's 1 GiB objects; the store never refuses one.
            StoreCapacityBytes = 4L << 30,
            // The data-plane run's --shared-memory-dir, passed down by the parent (a huge-page tmpfs, say).
            SharedMemoryDirectory = Environment.GetEnvironmentVariable(SharedMemoryDirectoryVariable) ?? new WorkerOptions().SharedMemoryDirectory,
        };
        if (listen is not null)
        {
            // A host of its own (a network namespace): every byte takes the network, as between machines.
            options.ListenAddress = listen;
            options.StoreCapacityBytes = 1L << 30;
            options.SharedMemory = false;
            options.ChannelSocketDirectory = string.Empty;
            options.Redis = Environment.GetEnvironmentVariable(RedisVariable);
            options.ClusterName = Environment.GetEnvironmentVariable(ClusterVariable) ?? options.ClusterName;
        }

        await using var worker = await RaySharingWorker.StartAsync(
            options,
            configureEndpoints: app =>
            {
                app.MapGrpcService<EchoService>();
                app.MapGrpcService<ServerStatsService>();
                app.MapGrpcService<BulkStreamService>();
            }).ConfigureAwait(false);
        // Before the listening line, which the client waits for.
        Console.WriteLine($"{RawSocketServer.PortPrefix}{socket.Port}");
        Console.WriteLine($"{ListeningPrefix}{worker.Address}");
        Console.Out.Flush();
        await Console.In.ReadToEndAsync().ConfigureAwait(false);
        return 0;
    }
}
