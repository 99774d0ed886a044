using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Roles;

/// <summary>What every child role shares: client settings, bounds, and dying with the harness.</summary>
internal static class ChildRole
{
    /// <summary>What the client logs (<see cref="StderrLoggerFactory"/>) when the worker ended its session.</summary>
    public const string SessionLostLog = "has ended on the worker";

    /// <summary>
    /// The harness's bound on one call of a child. The client's own deadlines (<see cref="ClientOptions"/>)
    /// are shorter, so a slow worker is reported by the library, typed, before this bound calls it a hang.
    /// </summary>
    public static readonly TimeSpan CallBound = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Client settings of the children. The lease is the worker's (1 s in chaos runs), so a killed child's
    /// session ends fast. Deadlines are half the defaults: well within the run, yet long enough for a
    /// child's first call, which JIT-compiles the whole client, on a 2-core machine shared with others.
    /// </summary>
    public static RaySharingClientOptions ClientOptions(Uri address, string clientName, ChildPath path) => new()
    {
        Address = address,
        ClientName = clientName,
        UseSharedMemory = path == ChildPath.SharedMemory,
        UseChannel = path != ChildPath.Network,
        CallTimeout = TimeSpan.FromSeconds(15),
        StreamIdleTimeout = TimeSpan.FromSeconds(15),
        ConnectTimeout = TimeSpan.FromSeconds(5),
        // Late lease renewals and a lost session go to stderr, which the harness reads when a child fails.
        LoggerFactory = StderrLoggerFactory.Instance,
    };

    /// <summary>
    /// How a child moves bytes, from its <c>--path</c>: <c>shm</c> (the default client: the worker's shared memory
    /// on this host, small calls over the channel's Unix socket); <c>network</c>, gRPC only; <c>channel</c>, the
    /// channel over TCP (frames and bulk bodies), no shared memory. The harness mixes all three in every round.
    /// </summary>
    public static ChildPath Path(CommandLine commandLine) => commandLine.Optional("--path") switch
    {
        null or "shm" => ChildPath.SharedMemory,
        "network" => ChildPath.Network,
        "channel" => ChildPath.Channel,
        var other => throw new ArgumentException($"--path must be shm, network or channel; got '{other}'."),
    };

    /// <summary>
    /// Disposes a client within the bound. A disposal must never throw (the library says so); if it does,
    /// the child says so on its own line and carries on, so the harness counts it apart from the calls.
    /// </summary>
    public static async Task DisposeClientAsync(RaySharingClient client)
    {
        try
        {
            await BoundedCall.RunAsync("dispose", CallBound, _ => client.DisposeAsync().AsTask(), CancellationToken.None);
        }
        catch (Exception ex)
        {
            ChildLines.Say($"{ChildLines.DisposeFailed} {Outcome.Of(ex).Token} {ex.Message.ReplaceLineEndings(" ")}");
        }
    }

    /// <summary>
    /// Exits this process when its stdin closes. The harness holds the other end, so a child never
    /// outlives the harness, even one killed with SIGKILL that had no chance to kill its children.
    /// </summary>
    public static void ExitWithParent()
    {
        var watcher = new Thread(() =>
        {
            try
            {
                while (Console.In.ReadLine() is not null)
                {
                }
            }
            catch (IOException)
            {
            }

            Environment.Exit(3);
        })
        {
            IsBackground = true,
            Name = "parent watch",
        };
        watcher.Start();
    }
}

/// <summary>How a child's client moves bytes (its <c>--path</c>).</summary>
internal enum ChildPath
{
    /// <summary><c>shm</c>: the default client, the worker's shared memory and the channel over its Unix socket.</summary>
    SharedMemory,

    /// <summary><c>network</c>: no shared memory, no channel: gRPC only.</summary>
    Network,

    /// <summary><c>channel</c>: no shared memory; the channel over TCP, small frames and bulk bodies.</summary>
    Channel,
}
