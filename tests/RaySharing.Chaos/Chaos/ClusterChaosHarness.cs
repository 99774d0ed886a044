using System.Diagnostics;
using System.Globalization;
using RaySharing.Chaos.Infrastructure;
using RaySharing.Testing;

namespace RaySharing.Chaos.Chaos;

/// <summary>
/// The chaos harness's cluster mode: redis-server and three workers of one cluster, each its own process. The detached
/// holder CHAOS lives on the first (the holder's worker); executors put for it through the second, which stores
/// their bytes (the storing worker); a driver reads them through the third (the reading worker). Each round SIGKILLs
/// one process (<see cref="KillKinds.Cluster"/>) and checks what the cluster promises (<see cref="ClusterChaosRound"/>).
/// </summary>
internal sealed class ClusterChaosHarness : IChaosHarness
{
    public const string HolderName = ChaosHarness.HolderName;

    /// <summary>The workers' default session lease, taken by every child: a killed child's session ends this fast.</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The workers' cluster lease: a killed worker is dead to the others this long after its last renewal. Several times
    /// what a Redis restart takes on a loaded machine, so that a restart stays the short outage it is meant to be.
    /// </summary>
    public static readonly TimeSpan ClusterLease = TimeSpan.FromSeconds(5);

    /// <summary>A round normally takes several seconds; one still running after this is a hang of its own.</summary>
    private static readonly TimeSpan RoundBudget = TimeSpan.FromSeconds(180);

    private const int CapacityMegabytes = 512;

    private readonly string _hostAssembly;
    private readonly string _cluster = "chaos" + Guid.NewGuid().ToString("N")[..8];
    private readonly Member[] _members = [new("holder's worker"), new("storing worker"), new("reading worker")];
    private RedisProcess? _redis;
    private ObjectHolder? _holder;

    private ClusterChaosHarness(string hostAssembly)
    {
        _hostAssembly = hostAssembly;
    }

    public ChaosTally Tally { get; } = new(KillKinds.Cluster);

    /// <summary>Hosts CHAOS.</summary>
    public Member HoldersWorker => _members[0];

    /// <summary>Executors connect here: it stores their objects, owned by CHAOS on the holder's worker.</summary>
    public Member StoringWorker => _members[1];

    /// <summary>The driver connects here, and the harness reads through it, as a third host would.</summary>
    public Member ReadingWorker => _members[2];

    /// <summary>CHAOS, through the holder's worker's client.</summary>
    public ObjectHolder Holder => _holder ?? throw new InvalidOperationException("The harness is not connected.");

    public static Task<int> RunAsync(CommandLine commandLine) =>
        ChaosRun.RunAsync(commandLine, "cluster chaos", KillKinds.Cluster,
            $"session lease {Lease.TotalMilliseconds:0} ms, cluster lease {ClusterLease.TotalMilliseconds:0} ms", Lease, StartAsync,
            ("cluster", "redis-server and three workers, each its own process: the holder's, the storing (executors), the reading (driver)"));

    /// <summary>The harness with its redis-server running; the workers start with the first round.</summary>
    private static async Task<IChaosHarness> StartAsync(string hostAssembly)
    {
        var harness = new ClusterChaosHarness(hostAssembly);
        harness._redis = await RedisProcess.StartAsync().WaitAsync(TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        Console.WriteLine($"cluster chaos: redis-server at {harness._redis.ConnectionString}, cluster {harness._cluster}");
        return harness;
    }

    /// <summary>
    /// Starts the workers that are not running (a killed one comes back as a new worker id) and connects to each; gets
    /// or creates CHAOS, which must be the same incarnation as before unless its worker was restarted.
    /// </summary>
    public async Task EnsureWorkersAsync(CancellationToken cancellationToken)
    {
        foreach (var member in _members)
        {
            if (member.Process is { HasExited: false } && member.Client is not null)
            {
                continue;
            }

            member.CheckNotExitedByItself(Tally);

            await member.ResetAsync(Tally).ConfigureAwait(false);
            member.Process = await WorkerProcess.StartAsync(_hostAssembly, Lease, CapacityMegabytes, cancellationToken,
                ["--redis", _redis!.ConnectionString, "--cluster", _cluster, "--cluster-lease-ms", ((int)ClusterLease.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)],
                member.Name).ConfigureAwait(false);
            Tally.WorkersStarted++;
            member.Client = await BoundedCall.RunAsync($"connect to the {member.Name}", ChaosHarness.CallBound,
                token => RaySharingClient.ConnectAsync(ChaosHarness.HarnessClientOptions(member.Process.Address), token), cancellationToken).ConfigureAwait(false);
            if (member == HoldersWorker)
            {
                _holder = null;
            }
        }

        var holder = await BoundedCall.RunAsync("get or create CHAOS", ChaosHarness.CallBound,
            token => HoldersWorker.Client!.GetOrCreateHolderAsync(HolderName, HolderLifetime.Detached, cancellationToken: token), cancellationToken).ConfigureAwait(false);
        if (_holder is not null && holder.Incarnation != _holder.Incarnation)
        {
            Tally.Violation($"CHAOS was incarnation {_holder.Incarnation} and is now {holder.Incarnation} on the same live worker: a detached holder died");
        }

        _holder = holder;
    }

    /// <summary>SIGKILLs redis-server and starts it again, empty, on the same port.</summary>
    public async Task RestartRedisAsync(CancellationToken cancellationToken) =>
        await _redis!.RestartAsync(cancellationToken).ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        foreach (var member in _members)
        {
            await member.ResetAsync(Tally).ConfigureAwait(false);
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async Task RunRoundAsync(int number, KillKind kind, Random random)
    {
        var round = new ClusterChaosRound(this, number, kind, random);
        await ChaosHarness.RunRoundAsync(Tally, number, kind, RoundBudget, round.RunAsync, round.KillChildren, () => round.Note,
            async () =>
            {
                foreach (var member in _members)
                {
                    // Before the reset kills it: a worker that had stopped by itself is what broke the round.
                    member.CheckNotExitedByItself(Tally);
                    await member.ResetAsync(Tally).ConfigureAwait(false);
                }
            }).ConfigureAwait(false);
    }

    /// <summary>One worker of the cluster: its process and the harness's client of it.</summary>
    internal sealed class Member(string name)
    {
        public string Name { get; } = name;

        public WorkerProcess? Process { get; set; }

        public RaySharingClient? Client { get; set; }

        public string Address => Process?.Address ?? throw new InvalidOperationException($"The {Name} is not running.");

        /// <summary>Counts a violation, with its exit and output, if the worker stopped although nothing killed it.</summary>
        public void CheckNotExitedByItself(ChaosTally tally)
        {
            if (Process is { HasExited: true, WasKilled: false } died)
            {
                tally.Violation($"the {Name} exited although nothing killed it: {died.Describe()}");
                // Counted once: the process is replaced by the next round.
                Process = null;
                died.Dispose();
            }
        }

        /// <summary>SIGKILL: its sessions, holders and objects die with it. The client stays until <see cref="ResetAsync"/>.</summary>
        public void Kill() => Process?.Kill();

        /// <summary>Drops the client and the process, so that the next round starts a fresh one.</summary>
        public async Task ResetAsync(ChaosTally tally)
        {
            if (Client is not null)
            {
                try
                {
                    await BoundedCall.RunAsync("dispose", ChaosHarness.CallBound, _ => Client.DisposeAsync().AsTask(), CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    tally.Record(Outcome.Of(ex).OfDisposal(), Expect.Any, Source.OtherCall, $"the harness disposing its client of the {Name}");
                }
            }

            Client = null;
            Process?.Kill();
            Process?.Dispose();
            Process = null;
        }
    }
}
