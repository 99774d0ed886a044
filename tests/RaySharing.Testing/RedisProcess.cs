using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RaySharing.Testing;

/// <summary>
/// A redis-server of the caller's own, persistence off (<c>--save "" --appendonly no</c>), as a
/// <see cref="ChildProcess"/> so it never outlives the process that started it. It can be killed with SIGKILL,
/// paused with SIGSTOP and started again on the same address and port, empty, as a Redis restarted without
/// persistence comes back. Installed with apt-get when missing.
/// </summary>
public sealed class RedisProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);
    private static readonly SemaphoreSlim InstallGate = new(1, 1);

    private readonly string _program;
    private readonly Func<string, string, string[], ChildProcess> _start;
    private ChildProcess _process;

    private RedisProcess(string program, Func<string, string, string[], ChildProcess> start, ChildProcess process, string host, int port)
    {
        _program = program;
        _start = start;
        _process = process;
        Host = host;
        Port = port;
    }

    /// <summary>The address it listens on.</summary>
    public string Host { get; }

    /// <summary>The TCP port it listens on.</summary>
    public int Port { get; }

    /// <summary><c>host:port</c>: what StackExchange.Redis (and the worker's <c>--redis</c>) takes.</summary>
    public string ConnectionString => $"{Host}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The process id of the server now running.</summary>
    public int Pid => _process.Id;

    /// <summary>The running server process.</summary>
    public ChildProcess Process => _process;

    /// <summary>
    /// Starts a redis-server on <paramref name="host"/> (a loopback port picked free when <paramref name="port"/> is
    /// 0) and waits until it answers PING. <paramref name="start"/> starts the program (name, path, arguments) when
    /// it must run elsewhere than here, such as in a network namespace; by default a plain child process.
    /// </summary>
    /// <exception cref="RedisUnavailableException">redis-server is missing and could not be installed, or did not answer in time.</exception>
    public static async Task<RedisProcess> StartAsync(string host = "127.0.0.1", int port = 0, Func<string, string, string[], ChildProcess>? start = null, TextWriter? progress = null, CancellationToken cancellationToken = default)
    {
        var program = await FindOrInstallAsync(progress ?? TextWriter.Null, cancellationToken).ConfigureAwait(false);
        start ??= ChildProcess.StartProgram;
        if (port == 0)
        {
            port = FreePort(host);
        }

        var process = await LaunchAsync(program, start, host, port, cancellationToken).ConfigureAwait(false);
        return new RedisProcess(program, start, process, host, port);
    }

    /// <summary>SIGKILL: gone at once, its data with it. Waits until it exited.</summary>
    public async Task KillAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>SIGSTOP: connections stay open and nothing answers, as a server that hangs.</summary>
    public void Pause() => Signal("STOP");

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume() => Signal("CONT");

    /// <summary>A new server on the same address and port, empty, after the old one is killed if it still runs.</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        if (!_process.HasExited)
        {
            await KillAsync().ConfigureAwait(false);
        }

        _process.Dispose();
        _process = await LaunchAsync(_program, _start, Host, Port, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends one command (RESP, arguments as bulk strings) and returns the reply's first line, for checks in tests.</summary>
    public async Task<string> CommandAsync(TimeSpan timeout, params string[] arguments)
    {
        using var cancel = new CancellationTokenSource(timeout);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(Host), Port), cancel.Token).ConfigureAwait(false);
        var request = new StringBuilder().Append('*').Append(arguments.Length).Append("\r\n");
        foreach (var argument in arguments)
        {
            request.Append('$').Append(Encoding.UTF8.GetByteCount(argument)).Append("\r\n").Append(argument).Append("\r\n");
        }

        await socket.SendAsync(Encoding.UTF8.GetBytes(request.ToString()), SocketFlags.None, cancel.Token).ConfigureAwait(false);
        var reply = new byte[4096];
        var length = 0;
        while (Array.IndexOf(reply, (byte)'\n', 0, length) < 0)
        {
            var read = await socket.ReceiveAsync(reply.AsMemory(length), SocketFlags.None, cancel.Token).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException($"redis-server at {ConnectionString} closed the connection before answering {arguments[0]}.");
            }

            length += read;
        }

        return Encoding.UTF8.GetString(reply, 0, Array.IndexOf(reply, (byte)'\n', 0, length)).TrimEnd('\r');
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited && IsPaused())
        {
            Resume();
        }

        _process.Dispose();
        await Task.CompletedTask.ConfigureAwait(false);
    }

    private static async Task<ChildProcess> LaunchAsync(string program, Func<string, string, string[], ChildProcess> start, string host, int port, CancellationToken cancellationToken)
    {
        var process = start("redis-server", program,
        [
            "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", host,
            "--save", string.Empty, "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
        ]);
        try
        {
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    var probe = new RedisProcess(program, start, process, host, port);
                    if (await probe.CommandAsync(TimeSpan.FromSeconds(2), "PING").ConfigureAwait(false) == "+PONG")
                    {
                        return process;
                    }
                }
                catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
                {
                    // Not listening yet; the deadline below decides how long that may last.
                }

                if (deadline.Elapsed >= StartTimeout || process.HasExited)
                {
                    throw new RedisUnavailableException($"redis-server did not answer PING on {host}:{port} within {StartTimeout.TotalSeconds:0} s ({(process.HasExited ? "it exited" : "it still runs")}): {process.StderrTail}{process.StandardOutput.Split('\n')[^1]}");
                }

                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            process.Dispose();
            throw;
        }
    }

    private void Signal(string signal)
    {
        using var kill = System.Diagnostics.Process.Start(new ProcessStartInfo("kill", ["-" + signal, _process.Id.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardError = true })!;
        kill.WaitForExit(10_000);
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {_process.Id} failed: {kill.StandardError.ReadToEnd()}");
        }
    }

    private bool IsPaused()
    {
        try
        {
            // The state is the field after the parenthesised command name in /proc/<pid>/stat; T is stopped.
            var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('T');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// The path of redis-server, installed with apt-get first when missing (the way <see cref="StartAsync"/> finds it),
    /// for a test that starts it another way.
    /// </summary>
    /// <exception cref="RedisUnavailableException">redis-server is missing and could not be installed.</exception>
    public static Task<string> ProgramPathAsync(TextWriter? progress = null, CancellationToken cancellationToken = default) =>
        FindOrInstallAsync(progress ?? TextWriter.Null, cancellationToken);

    private static async Task<string> FindOrInstallAsync(TextWriter progress, CancellationToken cancellationToken)
    {
        if (Find() is { } found)
        {
            return found;
        }

        await InstallGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Find() is { } installed)
            {
                return installed;
            }

            progress.WriteLine("redis-server is missing: apt-get install -y redis-server");
            // Installed as a package, not started as a service: only the caller's own instances run.
            if (await AptGetAsync(cancellationToken, "install", "-y", "redis-server").ConfigureAwait(false) != 0)
            {
                await AptGetAsync(cancellationToken, "update").ConfigureAwait(false);
                await AptGetAsync(cancellationToken, "install", "-y", "redis-server").ConfigureAwait(false);
            }

            return Find() ?? throw new RedisUnavailableException("redis-server is missing and `apt-get install -y redis-server` did not install it; install it (as root) and run again.");
        }
        finally
        {
            InstallGate.Release();
        }
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
            using var apt = System.Diagnostics.Process.Start(start)!;
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

    private static int FreePort(string host)
    {
        using var listener = new TcpListener(IPAddress.Parse(host), 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>redis-server cannot run: missing and not installable, or it did not start. The message is one line.</summary>
public sealed class RedisUnavailableException(string message) : Exception(message);
