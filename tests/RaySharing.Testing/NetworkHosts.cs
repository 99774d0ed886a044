using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;

namespace RaySharing.Testing;

/// <summary>
/// Real hosts for tests: each <see cref="NetworkHost"/> is a Linux network namespace with its own loopback and one
/// veth link whose other end is a port of a bridge in the root namespace. The fixture takes a private
/// <c>10.231.k.0/24</c> that no route or address of this machine (nor another live fixture) overlaps; the bridge is
/// <c>.254</c> and host <c>i</c> is <c>.(i+1)</c>, its default route via the bridge. The bridge's address is what
/// lets this process, in the root namespace, reach the hosts: without it, 10.x traffic would follow the default
/// route off the machine.
/// </summary>
/// <remarks>
/// Names are <c>rs&lt;pid&gt;x&lt;k&gt;h&lt;i&gt;</c> (a namespace and its root-side veth end; inside the namespace the
/// veth end is <c>eth0</c>) and <c>rs&lt;pid&gt;x&lt;k&gt;br</c> (the bridge): at most 15 characters, the kernel's limit
/// for interface names. The pid in them lets a later fixture remove what a crashed process left behind. Needs root
/// and iproute2 (<see cref="Unavailable"/> says why not). Gotcha: when <c>br_netfilter</c> is loaded and the
/// root namespace's iptables FORWARD policy drops (Docker does both), traffic between two hosts crosses the bridge
/// through that chain and is dropped; traffic between a host and this process is not affected.
/// </remarks>
public sealed class NetworkHosts : IDisposable
{
    /// <summary>The most hosts one fixture makes: the host index has two digits in the 15-character names.</summary>
    public const int MaxHosts = 99;

    /// <summary>The bound on each <c>ip</c> command.</summary>
    internal static readonly TimeSpan IpTimeout = TimeSpan.FromSeconds(10);

    private const string NamePrefix = "rs";
    private const int MaxInterfaceName = 15;

    // Everything this library names starts with rs<pid>x; the pid says whether its maker still lives.
    private static readonly Regex OwnName = new(@"^rs(?<pid>\d+)x", RegexOptions.CultureInvariant);
    private static readonly object CreationGate = new();
    private static readonly string LockPath = Path.Combine(Directory.Exists("/run/lock") ? "/run/lock" : Path.GetTempPath(), "raysharing-network-hosts.lock");
    private static readonly Lazy<string?> IpProgram = new(() => FindProgram("ip"));
    private static readonly Lazy<string?> UnavailableReason = new(Probe);

    // The words `ip route` may put before a route's prefix.
    private static readonly HashSet<string> RouteTypes = ["unicast", "local", "broadcast", "multicast", "throw", "unreachable", "prohibit", "blackhole", "nat", "anycast"];

    private readonly List<NetworkHost> _hosts = [];
    private readonly List<ChildProcess> _processes = [];
    private readonly List<string> _cleanupProblems = [];
    private bool _bridgeMade;
    private int _disposed;

    private NetworkHosts(int subnet)
    {
        SubnetIndex = subnet;
        BridgeName = Name("br");
        BridgeAddress = IPAddress.Parse($"10.231.{subnet.ToString(CultureInfo.InvariantCulture)}.254");
    }

    /// <summary>
    /// Null when network hosts can be made here (Linux, root, <c>ip</c> present, and a namespace, veth pair and bridge
    /// were made and removed as a probe); otherwise why not, in one line. Probed once per process.
    /// </summary>
    public static string? Unavailable => UnavailableReason.Value;

    /// <summary>
    /// Why a test that needs network hosts should be skipped, or null when it should run: null when they are
    /// available, and also null on CI (environment variable <c>CI</c> is <c>true</c>) when they are not, so that
    /// there the test runs, <see cref="Create"/> throws with <see cref="Unavailable"/>'s reason, and the test fails:
    /// CI runs as root and must never skip these silently.
    /// </summary>
    public static string? SkipReason =>
        Unavailable is { } reason && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase)
            ? $"Network hosts are unavailable: {reason} (with CI=true this fails instead)."
            : null;

    /// <summary>The hosts, in index order: host <c>i</c> has address <c>10.231.k.(i+1)</c>.</summary>
    public IReadOnlyList<NetworkHost> Hosts => _hosts;

    /// <summary>The <c>k</c> of this fixture's <c>10.231.k.0/24</c>.</summary>
    public int SubnetIndex { get; }

    /// <summary>The bridge in the root namespace that every host's link is a port of.</summary>
    public string BridgeName { get; }

    /// <summary>The root namespace's address on the hosts' subnet (<c>.254</c>): where the hosts see this process come from.</summary>
    public IPAddress BridgeAddress { get; }

    /// <summary>What <see cref="Dispose"/> could not remove, one line each; empty when it removed everything.</summary>
    public IReadOnlyList<string> CleanupProblems
    {
        get
        {
            lock (_cleanupProblems)
            {
                return [.. _cleanupProblems];
            }
        }
    }

    /// <summary>
    /// Makes <paramref name="count"/> hosts on a free subnet, first removing what fixtures of processes that no longer
    /// run left behind. Serialized across processes by a lock file, so two fixtures never pick the same subnet.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is not 1 to <see cref="MaxHosts"/>.</exception>
    /// <exception cref="NetworkHostsUnavailableException">Network hosts cannot be made here; the message says why.</exception>
    /// <exception cref="IpCommandException">An <c>ip</c> command failed; what was made so far is removed.</exception>
    public static NetworkHosts Create(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxHosts);
        if (Unavailable is { } reason)
        {
            throw new NetworkHostsUnavailableException(reason);
        }

        lock (CreationGate)
        {
            using var crossProcess = AcquireLockFile();
            RemoveLeftovers();
            var fixture = new NetworkHosts(PickFreeSubnet());
            try
            {
                fixture.Build(count);
                return fixture;
            }
            catch
            {
                fixture.Dispose();
                throw;
            }
        }
    }

    /// <summary>
    /// Kills every process started in the hosts (and any other process found in their namespaces), then deletes the
    /// namespaces, veth links and bridge. Never throws, also on a fixture whose creation failed half way or whose
    /// parts are already gone; what it could not remove is in <see cref="CleanupProblems"/>. Idempotent.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        ChildProcess[] processes;
        lock (_processes)
        {
            processes = [.. _processes];
            _processes.Clear();
        }

        foreach (var process in processes)
        {
            process.Dispose();
        }

        foreach (var host in _hosts.Where(h => h.NamespaceMade))
        {
            KillStragglers(host.Name);
        }

        // The root-side end first: deleting it takes the host's end with it, even if a process still holds the namespace.
        foreach (var host in _hosts.Where(h => h.LinkMade))
        {
            CleanUp($"the link of {host.Name}", ["link", "del", host.Name], () => !LinkExists(host.Name));
        }

        foreach (var host in _hosts.Where(h => h.NamespaceMade))
        {
            CleanUp($"the namespace {host.Name}", ["netns", "del", host.Name], () => !NamespaceNames().Contains(host.Name));
        }

        if (_bridgeMade)
        {
            CleanUp($"the bridge {BridgeName}", ["link", "del", BridgeName], () => !LinkExists(BridgeName));
        }
    }

    /// <summary>This fixture and its hosts, for a problem report.</summary>
    public override string ToString() =>
        $"10.231.{SubnetIndex.ToString(CultureInfo.InvariantCulture)}.0/24 via {BridgeName}: {string.Join(", ", _hosts)}";

    /// <summary>Runs <c>ip arguments</c>; throws with the command and its stderr when it fails or hangs.</summary>
    /// <exception cref="IpCommandException">It exited non-zero or did not finish within <see cref="IpTimeout"/>.</exception>
    internal static string Ip(params string[] arguments)
    {
        var ip = IpProgram.Value ?? throw new NetworkHostsUnavailableException("`ip` (iproute2) is not installed; apt-get install -y iproute2");
        var command = Commands.Quote("ip", arguments);
        var result = Commands.Run(ip, arguments, IpTimeout)
            ?? throw new IpCommandException(command, exitCode: null, string.Empty, $"`{command}` did not finish within {IpTimeout.TotalSeconds:0} s.");
        return result.Succeeded
            ? result.StandardOutput
            : throw new IpCommandException(command, result.ExitCode, result.StandardError.Trim(), $"`{command}` failed (exit {result.ExitCode.ToString(CultureInfo.InvariantCulture)}): {result.StandardError.Trim()}");
    }

    /// <summary>The path of <c>ip</c>, for starting programs through <c>ip netns exec</c>.</summary>
    internal static string IpPath => IpProgram.Value ?? throw new NetworkHostsUnavailableException("`ip` (iproute2) is not installed; apt-get install -y iproute2");

    /// <summary>Remembers a process started in one of the hosts, so <see cref="Dispose"/> kills it.</summary>
    internal ChildProcess Track(ChildProcess process)
    {
        lock (_processes)
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                process.Dispose();
                throw new ObjectDisposedException(nameof(NetworkHosts), $"The network hosts {this} are disposed; nothing can start in them.");
            }

            // Exited ones are dropped so a test that restarts a server many times does not grow the list.
            _processes.RemoveAll(p => p.HasExited);
            _processes.Add(process);
        }

        return process;
    }

    internal void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
    }

    private string Name(string suffix) =>
        $"{NamePrefix}{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}x{SubnetIndex.ToString(CultureInfo.InvariantCulture)}{suffix}";

    private void Build(int count)
    {
        Ip("link", "add", BridgeName, "type", "bridge");
        _bridgeMade = true;
        // A fixed address: a bridge otherwise takes its lowest port's, which changes as ports come and go.
        Ip("link", "set", BridgeName, "address", string.Create(CultureInfo.InvariantCulture, $"02:72:73:{(Environment.ProcessId >> 8) & 0xff:x2}:{Environment.ProcessId & 0xff:x2}:{SubnetIndex:x2}"));
        Ip("addr", "add", $"{BridgeAddress}/24", "dev", BridgeName);
        Ip("link", "set", BridgeName, "up");
        for (var i = 0; i < count; i++)
        {
            var name = Name("h" + i.ToString(CultureInfo.InvariantCulture));
            Debug.Assert(name.Length <= MaxInterfaceName, "pid <= 7 digits, k <= 3, i <= 2: 15 characters at most");
            var host = new NetworkHost(this, i, name, IPAddress.Parse($"10.231.{SubnetIndex.ToString(CultureInfo.InvariantCulture)}.{(i + 1).ToString(CultureInfo.InvariantCulture)}"));
            _hosts.Add(host);
            Ip("netns", "add", name);
            host.NamespaceMade = true;
            // The peer is made inside the namespace, so its name there (eth0) never meets the root namespace's eth0.
            Ip("link", "add", name, "type", "veth", "peer", "name", NetworkHost.InterfaceName, "netns", name);
            host.LinkMade = true;
            Ip("link", "set", name, "master", BridgeName);
            Ip("link", "set", name, "up");
            Ip("-n", name, "link", "set", "lo", "up");
            Ip("-n", name, "addr", "add", $"{host.Address}/24", "dev", NetworkHost.InterfaceName);
            Ip("-n", name, "link", "set", NetworkHost.InterfaceName, "up");
            Ip("-n", name, "route", "add", "default", "via", BridgeAddress.ToString());
        }
    }

    private void CleanUp(string what, string[] command, Func<bool> gone)
    {
        try
        {
            Ip(command);
        }
        catch (Exception ex) when (ex is IpCommandException or System.ComponentModel.Win32Exception)
        {
            // Already gone (removed by hand, or never made) is what Dispose wants; anything else is reported.
            bool isGone;
            try
            {
                isGone = gone();
            }
            catch (IpCommandException)
            {
                isGone = false;
            }

            if (!isGone)
            {
                lock (_cleanupProblems)
                {
                    _cleanupProblems.Add($"Could not remove {what}: {ex.Message}");
                }
            }
        }
    }

    private static void KillStragglers(string namespaceName)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(5))
        {
            int[] pids;
            try
            {
                pids = [.. Ip("netns", "pids", namespaceName).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(p => int.Parse(p, CultureInfo.InvariantCulture))];
            }
            catch (IpCommandException)
            {
                // The namespace is gone already: nothing can be in it.
                return;
            }

            if (pids.Length == 0)
            {
                return;
            }

            foreach (var pid in pids)
            {
                try
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill(entireProcessTree: true);
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                    // It exited meanwhile.
                }
            }

            Thread.Sleep(20);
        }
    }

    private static FileStream AcquireLockFile()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive flock on Linux: held by one fixture creation at a time, in any process.
                return new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                Thread.Sleep(20);
            }
            catch (IOException ex)
            {
                throw new IOException($"Another process has held {LockPath} for over 60 s; network hosts cannot be made until it lets go.", ex);
            }
        }
    }

    /// <summary>Deletes the namespaces and interfaces named by processes that no longer run.</summary>
    private static void RemoveLeftovers()
    {
        foreach (var name in NamespaceNames().Where(IsLeftover))
        {
            KillStragglers(name);
            TryIp("netns", "del", name);
        }

        // Only root-side veth ends and bridges remain here; deleting an end takes its peer with it.
        foreach (var name in LinkNames().Where(IsLeftover))
        {
            TryIp("link", "del", name);
        }
    }

    private static bool IsLeftover(string name)
    {
        var match = OwnName.Match(name);
        return match.Success
            && int.TryParse(match.Groups["pid"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            && pid != Environment.ProcessId
            && !Directory.Exists($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}");
    }

    private static void TryIp(params string[] arguments)
    {
        try
        {
            Ip(arguments);
        }
        catch (IpCommandException)
        {
            // A leftover that cannot be removed must not stop new fixtures: its subnet stays taken, so none clashes with it.
        }
    }

    private static HashSet<string> NamespaceNames() =>
        [.. Ip("netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(l => l.Split(' ')[0])];

    /// <summary>The names of the root namespace's interfaces, without their <c>@peer</c> suffix.</summary>
    internal static HashSet<string> LinkNames() =>
        [.. Ip("-o", "link", "show").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 3))
            .Where(parts => parts.Length == 3)
            .Select(parts => parts[1].Trim().Split('@')[0])];

    private static bool LinkExists(string name) => LinkNames().Contains(name);

    /// <summary>The first <c>k</c> such that <c>10.231.k.0/24</c> overlaps no route (but the default) and no address here.</summary>
    private static int PickFreeSubnet()
    {
        var taken = Ip("-4", "-o", "route", "show", "table", "all").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(RoutePrefix)
            .Concat(Ip("-4", "-o", "addr", "show").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(AddressPrefix))
            .OfType<(uint Network, int Length)>()
            .ToList();
        // Start from a pid-dependent k so that concurrent test processes rarely probe the same subnets first.
        var start = Environment.ProcessId % 256;
        for (var n = 0; n < 256; n++)
        {
            var k = (start + n) % 256;
            var candidate = (Network: (10u << 24) | (231u << 16) | ((uint)k << 8), Length: 24);
            if (!taken.Any(t => Overlaps(t, candidate)))
            {
                return k;
            }
        }

        throw new InvalidOperationException("Every 10.231.k.0/24 overlaps a route or address of this machine; remove some (ip route, ip addr) or stale fixtures (ip netns list, ip link).");
    }

    private static (uint, int)? RoutePrefix(string line)
    {
        var tokens = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var prefix = tokens.Length > 1 && RouteTypes.Contains(tokens[0]) ? tokens[1] : tokens[0];
        // The default route covers everything; the fixture's more specific route wins over it.
        return prefix == "default" ? null : ParsePrefix(prefix);
    }

    private static (uint, int)? AddressPrefix(string line)
    {
        // "4: eth0    inet 192.0.2.2/24 brd ..."
        var tokens = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var inet = Array.IndexOf(tokens, "inet");
        return inet >= 0 && inet + 1 < tokens.Length ? ParsePrefix(tokens[inet + 1]) : null;
    }

    private static (uint, int)? ParsePrefix(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var length = 32;
        if (slash >= 0 && !int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out length))
        {
            return null;
        }

        if (!IPAddress.TryParse(slash >= 0 ? text[..slash] : text, out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return null;
        }

        var bytes = address.GetAddressBytes();
        return ((uint)bytes[0] << 24 | (uint)bytes[1] << 16 | (uint)bytes[2] << 8 | bytes[3], length);
    }

    private static bool Overlaps((uint Network, int Length) a, (uint Network, int Length) b)
    {
        // Two prefixes overlap exactly when they agree on the bits of the shorter one.
        var shorter = Math.Min(a.Length, b.Length);
        var mask = shorter == 0 ? 0u : uint.MaxValue << (32 - shorter);
        return (a.Network & mask) == (b.Network & mask);
    }

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return $"network namespaces need Linux; this is {RuntimeInformation.OSDescription}";
        }

        // An unreadable uid is left to the probe below, which fails with the kernel's own words if it matters.
        if (EffectiveUserId() is { } uid and not 0)
        {
            return $"network namespaces need root; this process runs as uid {uid.ToString(CultureInfo.InvariantCulture)}";
        }

        if (IpProgram.Value is null)
        {
            return "`ip` (iproute2) is not installed; apt-get install -y iproute2";
        }

        // Everything a fixture does, once, under names no fixture uses (k is never "p").
        var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var (space, link, bridge) = ($"{NamePrefix}{pid}xprobe", $"{NamePrefix}{pid}xpv", $"{NamePrefix}{pid}xpb");
        try
        {
            Ip("netns", "add", space);
            Ip("link", "add", bridge, "type", "bridge");
            Ip("link", "add", link, "type", "veth", "peer", "name", NetworkHost.InterfaceName, "netns", space);
            Ip("link", "set", link, "master", bridge);
            Ip("netns", "exec", space, IpPath, "link", "set", "lo", "up");
            return null;
        }
        catch (Exception ex) when (ex is IpCommandException or System.ComponentModel.Win32Exception or IOException)
        {
            // A reason, not an exception: this runs at test discovery, where a throw would hide every test.
            return $"a network namespace, veth pair and bridge cannot be made here: {ex.Message}";
        }
        finally
        {
            TryIp("link", "del", link);
            TryIp("link", "del", bridge);
            TryIp("netns", "del", space);
        }
    }

    private static int? EffectiveUserId()
    {
        try
        {
            // "Uid:\t<real>\t<effective>\t<saved>\t<fs>"
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
            var fields = line?.Split('\t', StringSplitOptions.RemoveEmptyEntries);
            return fields is { Length: > 2 } && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid) ? uid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string? FindProgram(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);
}

/// <summary>Network hosts cannot be made on this machine; the message says why, in one line.</summary>
public sealed class NetworkHostsUnavailableException(string reason) : Exception($"Network hosts are unavailable: {reason}");

/// <summary>An <c>ip</c> command failed or hung; the message quotes the command and its stderr.</summary>
public sealed class IpCommandException : Exception
{
    internal IpCommandException(string command, int? exitCode, string standardError, string message)
        : base(message)
    {
        Command = command;
        ExitCode = exitCode;
        StandardError = standardError;
    }

    /// <summary>The <c>ip</c> command line that failed.</summary>
    public string Command { get; }

    /// <summary>Its exit code; null when it did not finish in time and was killed.</summary>
    public int? ExitCode { get; }

    /// <summary>What it wrote to stderr, trimmed.</summary>
    public string StandardError { get; }
}
