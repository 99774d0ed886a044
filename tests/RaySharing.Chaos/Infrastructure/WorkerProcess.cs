using RaySharing.Testing;
using System.Globalization;

namespace RaySharing.Chaos.Infrastructure;

/// <summary>
/// The worker as a separate OS process (RaySharing.Worker.Host), so the harness can SIGKILL it like
/// any crash, and start a fresh one.
/// </summary>
internal sealed class WorkerProcess : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly ChildProcess _process;

    private WorkerProcess(ChildProcess process, string address)
    {
        _process = process;
        Address = address;
    }

    /// <summary>The address the worker listens on, as printed by the host.</summary>
    public string Address { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>True when the harness killed it; an exited worker that was not killed died by itself.</summary>
    public bool WasKilled => _process.WasKilled;

    /// <summary>Its exit and the tail of its output, for a report.</summary>
    public string Describe() => _process.Describe();

    /// <summary>Starts a worker on a free loopback port and waits until it listens.</summary>
    /// <param name="hostAssembly">The worker host's dll.</param>
    /// <param name="lease">The default session lease: a killed client's session ends this long after its last renewal.</param>
    /// <param name="capacityMegabytes">The store's capacity.</param>
    /// <param name="extraArguments">More host flags (a cluster's <c>--redis</c>, <c>--cluster</c>, ...).</param>
    /// <param name="name">The process's name in the harness's messages.</param>
    public static async Task<WorkerProcess> StartAsync(string hostAssembly, TimeSpan lease, int capacityMegabytes, CancellationToken cancellationToken,
        IReadOnlyList<string>? extraArguments = null, string name = "worker")
    {
        var process = ChildProcess.StartAssembly(name, hostAssembly,
        [
            "--port", "0",
            "--lease-ms", ((int)lease.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            "--capacity-mb", capacityMegabytes.ToString(CultureInfo.InvariantCulture),
            .. extraArguments ?? [],
        ]);
        try
        {
            var line = await process.WaitForLineAsync("listening ", StartTimeout, cancellationToken).ConfigureAwait(false);
            return new WorkerProcess(process, line["listening ".Length..].Trim());
        }
        catch
        {
            process.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The worker host next to this program's build output: built alongside it by the project reference,
    /// in the same configuration and framework.
    /// </summary>
    public static string LocateHost(string? overridePath)
    {
        if (overridePath is not null)
        {
            return File.Exists(overridePath) ? overridePath : throw new FileNotFoundException($"--worker-dll {overridePath} does not exist.");
        }

        // AppContext.BaseDirectory is <repo>/tests/RaySharing.Chaos/bin/<configuration>/<framework>/.
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = framework.Parent!;
        var repo = configuration.Parent!.Parent!.Parent!.Parent!;
        var path = Path.Combine(repo.FullName, "src", "RaySharing.Worker.Host", "bin", configuration.Name, framework.Name, "RaySharing.Worker.Host.dll");
        return File.Exists(path)
            ? path
            : throw new FileNotFoundException($"The worker host is not built at {path}; build tests/RaySharing.Chaos (it builds the host too) or pass --worker-dll.");
    }

    /// <summary>SIGKILL: sessions, holders and objects die with it, with no chance to say so.</summary>
    public void Kill() => _process.Kill();

    public void Dispose() => _process.Dispose();
}
