using System.Net;
using RaySharing.Testing;
using StackExchange.Redis;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// A redis-server of the harness's own on a free loopback port, persistence off, killed with the harness
/// however the run ends: the process is a <see cref="RedisProcess"/> (found, or installed with apt-get, and
/// started there); this adds the harness's connection, the server's version and its CPU probe.
/// </summary>
internal sealed class RedisServer : IAsyncDisposable
{
    /// <summary>Redis refuses strings longer than this (proto-max-bulk-len, 512 MB by default).</summary>
    public const long MaxStringBytes = 512L * 1024 * 1024;

    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(20);

    private readonly RedisProcess _process;

    private RedisServer(RedisProcess process, ConnectionMultiplexer connection, string version)
    {
        _process = process;
        Connection = connection;
        Version = version;
        Probe = ProcessProbe.Other("redis-server", process.Pid);
    }

    /// <summary>The loopback port it listens on.</summary>
    public int Port => _process.Port;

    public ConnectionMultiplexer Connection { get; }

    public IDatabase Database => Connection.GetDatabase();

    /// <summary>The server's version, as it reports it.</summary>
    public string Version { get; }

    public ProcessProbe Probe { get; }

    /// <exception cref="RedisUnavailableException">redis-server is missing and could not be installed, or did not answer in time.</exception>
    public static async Task<RedisServer> StartAsync(TextWriter progress, CancellationToken cancellationToken)
    {
        var process = await RedisProcess.StartAsync(progress: progress, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            var options = new ConfigurationOptions
            {
                EndPoints = { { IPAddress.Loopback, process.Port } },
                // 64 MiB values take a while on a loaded 2-core machine; a timeout here would be a benchmark failure, not a figure.
                AsyncTimeout = 60_000,
                SyncTimeout = 60_000,
                AbortOnConnectFail = true,
            };
            var connection = await ConnectionMultiplexer.ConnectAsync(options).WaitAsync(ConnectTimeout, cancellationToken).ConfigureAwait(false);
            var version = connection.GetServer(IPAddress.Loopback, process.Port).Version.ToString();
            return new RedisServer(process, connection, version);
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            await _process.DisposeAsync().ConfigureAwait(false);
        }
    }
}
