using System.Net;

namespace RaySharing.Testing;

/// <summary>
/// One host of a <see cref="NetworkHosts"/> fixture: a network namespace whose only link (<c>eth0</c>, with
/// <see cref="Address"/>) leads to the fixture's bridge. Programs started here see that address and loopback, and
/// nothing else of the machine's network; files and processes are shared with the machine as usual. A fresh
/// namespace has every port free, so servers in it can use fixed ports (6379 for redis-server).
/// </summary>
public sealed class NetworkHost
{
    /// <summary>The name of the host's end of its link, inside its namespace.</summary>
    public const string InterfaceName = "eth0";

    private static readonly TimeSpan DefaultRunTimeout = TimeSpan.FromSeconds(30);

    private readonly NetworkHosts _owner;

    internal NetworkHost(NetworkHosts owner, int index, string name, IPAddress address)
    {
        _owner = owner;
        Index = index;
        Name = name;
        Address = address;
    }

    /// <summary>The network namespace's name, which is also the name of the link's end in the root namespace.</summary>
    public string Name { get; }

    /// <summary>Its place in <see cref="NetworkHosts.Hosts"/>.</summary>
    public int Index { get; }

    /// <summary>Its address on the fixture's subnet: <c>10.231.k.(Index+1)</c>.</summary>
    public IPAddress Address { get; }

    /// <summary>True between <see cref="CutLink"/> and <see cref="RestoreLink"/>.</summary>
    public bool IsLinkCut { get; private set; }

    internal bool NamespaceMade { get; set; }

    internal bool LinkMade { get; set; }

    /// <summary>
    /// Starts a program inside this host (<c>ip netns exec</c>, which becomes the program: <see cref="ChildProcess.Id"/>
    /// is the program's pid). Fits <see cref="RedisProcess.StartAsync"/>'s <c>start</c> delegate. Killed when the
    /// fixture is disposed, if not before.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The fixture is disposed.</exception>
    public ChildProcess StartProgram(string name, string fileName, params string[] arguments)
    {
        _owner.ThrowIfDisposed();
        return _owner.Track(ChildProcess.StartProgram($"{name} in {Name}", NetworkHosts.IpPath, [.. Exec(fileName), .. arguments]));
    }

    /// <summary>Starts <c>dotnet assembly.dll arguments</c> inside this host; see <see cref="StartProgram"/>.</summary>
    /// <exception cref="ObjectDisposedException">The fixture is disposed.</exception>
    public ChildProcess StartAssembly(string name, string assemblyPath, params string[] arguments) =>
        StartProgram(name, "dotnet", [assemblyPath, .. arguments]);

    /// <summary>
    /// Runs a command inside this host to completion and returns its exit code and output; a non-zero exit is a
    /// result, not an exception.
    /// </summary>
    /// <param name="fileName">The program, a path or a name looked up in PATH.</param>
    /// <param name="arguments">Its arguments.</param>
    /// <param name="timeout">How long it may run before it is killed; default 30 s.</param>
    /// <param name="cancellationToken">Kills it and throws when cancelled.</param>
    /// <exception cref="TimeoutException">It did not finish within <paramref name="timeout"/> (it is killed); the message quotes it.</exception>
    /// <exception cref="ObjectDisposedException">The fixture is disposed.</exception>
    public async Task<CommandResult> RunAsync(string fileName, IReadOnlyList<string> arguments, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        _owner.ThrowIfDisposed();
        var bound = timeout ?? DefaultRunTimeout;
        string[] command = [.. Exec(fileName), .. arguments];
        return await Commands.RunAsync(NetworkHosts.IpPath, command, bound, cancellationToken).ConfigureAwait(false)
            ?? throw new TimeoutException($"`{Commands.Quote("ip", command)}` did not finish within {bound.TotalSeconds:0.#} s and was killed.");
    }

    /// <summary>
    /// Takes this host off the network, as a pulled cable: its link's end in the root namespace goes down. Packets to
    /// and from it are dropped silently (connection attempts time out or find no route, open connections stall),
    /// while the host's own addresses and routes stay as they were, so <see cref="RestoreLink"/> need only bring the
    /// link back up. Cutting the host's end instead would make its own sends fail at once with "network unreachable"
    /// and would flush its default route.
    /// </summary>
    /// <exception cref="IpCommandException">The <c>ip</c> command failed.</exception>
    public void CutLink()
    {
        _owner.ThrowIfDisposed();
        NetworkHosts.Ip("link", "set", Name, "down");
        IsLinkCut = true;
    }

    /// <summary>Puts this host back on the network after <see cref="CutLink"/>.</summary>
    /// <exception cref="IpCommandException">The <c>ip</c> command failed.</exception>
    public void RestoreLink()
    {
        _owner.ThrowIfDisposed();
        NetworkHosts.Ip("link", "set", Name, "up");
        IsLinkCut = false;
    }

    /// <summary>The namespace and its address.</summary>
    public override string ToString() => $"{Name} ({Address})";

    private string[] Exec(string fileName) => ["netns", "exec", Name, fileName];
}
