using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RaySharing.Testing;
using StackExchange.Redis;

namespace RaySharing.Benchmarks.DataPlane;

/// <summary>
/// A redis-server of the harness's own on a free loopback port, persistence off, killed with the harness
/// however the run ends (it is a <see cref="ChildProcess"/>). Installed with apt-get when missing.
/// </summary>
internal sealed class RedisServer : IAsyncDisposable
{
    /// <summary>Redis refuses strings longer than this (proto-max-bulk-len, 512 MB by default).</summary>
    public const long MaxStringBytes = 512L * 1024 * 1024;

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    private readonly ChildProcess _process;

    private RedisServer(ChildProcess process, int port, ConnectionMultiplexer connection, string version)
    {
        _process = process;
        Port = port;
        Connection = connection;
        Version = version;
        Probe = ProcessProbe.Other("redis-server", process.Id);
    }

    /// <summary>The loopback port it listens on.</summary>
    public int Port { get; }

    public ConnectionMultiplexer Connection { get; }

    public IDatabase Database => Connection.GetDatabase();

    /// <summary>The server's version, as it reports it.</summary>
    public string Version { get; }

    public ProcessProbe Probe { get; }

    public static async Task<RedisServer> StartAsync(TextWriter progress, CancellationToken cancellationToken)
    {
        var program = await FindOrInstallAsync(progress, cancellationToken).ConfigureAwait(false);
        var port = FreePort();
        var process = ChildProcess.StartProgram("redis-server", program,
            "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--save", string.Empty, "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no");
        try
        {
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    await probe.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (SocketException) when (deadline.Elapsed < StartTimeout && !process.HasExited)
                {
                    await Task.Delay(50, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException)
                {
                    throw new RedisUnavailableException($"redis-server did not listen on port {port} within {StartTimeout.TotalSeconds:0} s ({(process.HasExited ? "it exited" : "it still runs")}): {process.StderrTail}{process.StandardOutput.Split('\n')[^1]}");
                }
            }

            var options = new ConfigurationOptions
            {
                EndPoints = { { IPAddress.Loopback, port } },
                // 64 MiB values take a while on a loaded 2-core machine; a timeout here would be a benchmark failure, not a figure.
                AsyncTimeout = 60_000,
                SyncTimeout = 60_000,
                AbortOnConnectFail = true,
            };
            var connection = await ConnectionMultiplexer.ConnectAsync(options).WaitAsync(StartTimeout, cancellationToken).ConfigureAwait(false);
            var version = connection.GetServer(IPAddress.Loopback, port).Version.ToString();
            return new RedisServer(process, port, connection, version);
        }
        catch
        {
            process.Dispose();
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
            _process.Dispose();
        }
    }

    private static async Task<string> FindOrInstallAsync(TextWriter progress, CancellationToken cancellationToken)
    {
        if (Find() is { } found)
        {
            return found;
        }

        progress.WriteLine("redis-server is missing: apt-get install -y redis-server");
        // Installed as a package, not started as a service: only the harness's own instance runs.
        if (await AptGetAsync(cancellationToken, "install", "-y", "redis-server").ConfigureAwait(false) != 0)
        {
            await AptGetAsync(cancellationToken, "update").ConfigureAwait(false);
            await AptGetAsync(cancellationToken, "install", "-y", "redis-server").ConfigureAwait(false);
        }

        return Find() ?? throw new RedisUnavailableException("redis-server is missing and `apt-get install -y redis-server` did not install it; install it (as root) and run again.");
    }

    private static string? Find() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':')
            .Append("/usr/bin").Append("/usr/sbin")
            .Select(directory => Path.Combine(directory, "redis-server"))
            .FirstOrDefault(File.Exists);

    private static async Task<int> AptGetAsync(CancellationToken cancellationToken, params string[] arguments)
    {
        var start = new ProcessStartInfo("apt-get") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using var apt = Process.Start(start)!;
            var output = apt.StandardOutput.ReadToEndAsync(cancellationToken);
            var errors = apt.StandardError.ReadToEndAsync(cancellationToken);
            await apt.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            await Task.WhenAll(output, errors).ConfigureAwait(false);
            return apt.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No apt-get on this machine.
            return -1;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The Redis baseline cannot run: redis-server is missing and could not be installed, or did not start. The message is one line.</summary>
internal sealed class RedisUnavailableException(string message) : Exception(message);
