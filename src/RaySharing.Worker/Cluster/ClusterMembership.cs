using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Transport.Channel;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// This worker's place in its cluster (<see cref="WorkerOptions.Redis"/>): registers it once the server has bound
/// its address, renews the registration every third of <see cref="WorkerOptions.ClusterLease"/>, publishes its
/// holders again when the directory lost its data, and drops each dead holder's entry. A worker that could not
/// renew for a whole lease is dead to the others, who treat its holders as dead: it kills them too and stops,
/// rather than serve holders that another worker may already have re-created under the same names (a new start
/// is a new worker id, so envelopes of this run then fail typed everywhere). Without a directory it does nothing.
/// </summary>
internal sealed class ClusterMembership(
    WorkerOptions options,
    WorkerIdentity identity,
    OwnershipGraph graph,
    ChannelHost channel,
    IHostApplicationLifetime lifetime,
    ILogger<ClusterMembership> logger) : IHostedLifecycleService, IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly DateTimeOffset _startedAt = DateTimeOffset.UtcNow;
    private RedisDirectory? _directory;
    private Task? _renewals;
    private string? _epoch;
    private long _lastRenewal;
    private readonly System.Collections.Concurrent.ConcurrentQueue<(HolderKey Key, HolderPlacement Placement)> _deadEntries = new();
    private volatile bool _left;
    private int _removing;
    private long _resetAt;
    private int _disposed;

    /// <summary>Whether this worker is part of a cluster.</summary>
    public bool Enabled => options.IsClustered;

    /// <summary>
    /// True within one lease of this worker finding the directory emptied (a Redis restart without persistence):
    /// meanwhile a missing worker record may only mean that worker has not registered again yet, so no worker is
    /// declared dead for it.
    /// </summary>
    public bool RecentlyReset => Volatile.Read(ref _resetAt) is var at and not 0 && Stopwatch.GetElapsedTime(at) < options.ClusterLease;

    /// <summary>True once the worker could not renew its registration for a whole lease.</summary>
    public bool Left => _left;

    /// <summary>The directory, for calls that need it.</summary>
    /// <exception cref="WorkerException">UNAVAILABLE: the worker left its cluster, or is not registered yet.</exception>
    public RedisDirectory Directory =>
        _left ? throw WorkerErrors.LeftCluster()
        : _directory ?? throw WorkerErrors.Starting();

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>After the server started (its address is known): connect and register, or fail the start.</summary>
    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return;
        }

        var connectTimeout = TimeSpan.FromTicks(Math.Min(options.ClusterLease.Ticks, TimeSpan.FromSeconds(10).Ticks));
        _directory = await RedisDirectory.ConnectAsync(options.Redis!, options.ClusterName, connectTimeout, cancellationToken).ConfigureAwait(false);
        var sent = Stopwatch.GetTimestamp();
        try
        {
            _epoch = await _directory.RegisterAsync(Record(), options.ClusterLease, NewEpoch()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            throw new ClusterDirectoryException($"The worker could not register in the cluster directory at {RedisDirectory.Describe(options.Redis!)}: {ex.Message.Split(". ", 2)[0].TrimEnd('.')}.", ex);
        }

        Volatile.Write(ref _lastRenewal, sent);
        graph.HolderDied += OnHolderDied;
        WorkerLog.JoinedCluster(logger, identity.WorkerId, options.ClusterName, _epoch);
        _renewals = Task.Run(RenewAsync, CancellationToken.None);
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>A clean stop leaves the cluster at once: others see this worker's holders dead now, not a lease later.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_directory is null)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_renewals is not null)
        {
            await _renewals.ConfigureAwait(false);
        }

        if (!_left)
        {
            try
            {
                await _directory.UnregisterAsync(identity.WorkerId).WaitAsync(TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or OperationCanceledException)
            {
                // Unreachable now: the record lapses by itself within a lease.
            }
        }
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Idempotent: the container disposes this service both as itself and as a hosted service.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopping.Cancel();
        graph.HolderDied -= OnHolderDied;
        if (_directory is not null)
        {
            await _directory.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
    }

    /// <summary>
    /// Run after each successful renewal, once any directory reset is noticed, unless one was noticed within a lease
    /// (records are missing then only because their workers have not renewed yet): decisions that take a missing
    /// record or entry for a death belong here. Its directory errors count as the renewal's.
    /// </summary>
    public Func<Task>? AfterRenewal { get; set; }

    private WorkerRecord Record() => new(identity.WorkerId, identity.Address, channel.TcpPort, _startedAt);

    private static string NewEpoch() => ObjectId.NewId().ToString();

    private async Task RenewAsync()
    {
        var lease = options.ClusterLease;
        var interval = lease / 3;
        // After a failure, try again sooner: several attempts fit in what is left of the lease.
        var retry = lease / 10;
        var failing = false;
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(failing ? retry : interval, _stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var sent = Stopwatch.GetTimestamp();
            if (Stopwatch.GetElapsedTime(Volatile.Read(ref _lastRenewal), sent) >= lease)
            {
                Leave();
                return;
            }

            try
            {
                var epoch = await _directory!.RegisterAsync(Record(), lease, NewEpoch()).ConfigureAwait(false);
                // The record lives a lease from when Redis ran the command, which is after this was sent.
                Volatile.Write(ref _lastRenewal, sent);
                if (failing)
                {
                    WorkerLog.DirectoryBack(logger);
                    failing = false;
                }

                if (epoch != _epoch)
                {
                    Volatile.Write(ref _resetAt, Stopwatch.GetTimestamp());
                    await RepublishAsync(_epoch!, epoch).ConfigureAwait(false);
                    _epoch = epoch;
                }

                if (!_deadEntries.IsEmpty)
                {
                    await RemoveDeadEntriesAsync().ConfigureAwait(false);
                }

                await EndSessionsOfDeadPeersAsync().ConfigureAwait(false);
                if (AfterRenewal is { } sweep && !RecentlyReset)
                {
                    await sweep().ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or ClusterDirectoryException)
            {
                if (!failing)
                {
                    // One line: an outage of Redis is an expected event, its stack trace is noise.
                    WorkerLog.DirectoryUnreachable(logger, $"{ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}",
                        (long)(lease - Stopwatch.GetElapsedTime(Volatile.Read(ref _lastRenewal))).TotalMilliseconds);
                    failing = true;
                }
            }
        }
    }

    /// <summary>
    /// Redis lost the directory (restarted without persistence): this worker's holders are written back. A name
    /// another worker claimed meanwhile stays theirs, and the holder of it here is killed: two live holders of one
    /// name would split its registry, while a killed one fails its callers with OWNER_DIED naming its incarnation.
    /// </summary>
    private async Task RepublishAsync(string oldEpoch, string newEpoch)
    {
        var holders = graph.LocalHolders();
        WorkerLog.DirectoryReset(logger, oldEpoch, newEpoch, holders.Count);
        foreach (var holder in holders)
        {
            var ours = new HolderPlacement(identity.WorkerId, holder.Incarnation, holder.Lifetime, WorkerAlive: true);
            var (placement, _) = await _directory!.ClaimHolderAsync(holder.Key, ours).ConfigureAwait(false);
            if (placement != ours)
            {
                WorkerLog.HolderNameTaken(logger, holder.Key.Namespace, holder.Key.Name, holder.Incarnation, $"incarnation {placement.Incarnation} on worker {placement.WorkerId}");
                graph.KillLocalHolder(holder.Key, holder.Incarnation, $"while the cluster's directory was empty, worker {placement.WorkerId} created incarnation {placement.Incarnation} of its name");
            }
        }
    }

    /// <summary>
    /// Sessions other workers hold here end when those workers die: what they borrowed for their sessions is given
    /// back within a renewal of the death (a third of the lease), not when the peer session's own lease runs out.
    /// </summary>
    private async Task EndSessionsOfDeadPeersAsync()
    {
        var peers = graph.PeerSessions();
        if (peers.Count == 0 || RecentlyReset)
        {
            return;
        }

        var alive = await _directory!.AliveAsync(peers.Select(p => p.WorkerId).Distinct().ToList()).ConfigureAwait(false);
        foreach (var (session, workerId) in peers.Where(p => !alive.Contains(p.WorkerId)))
        {
            graph.EndSessionOf(session, $"its worker {workerId} left the cluster");
        }
    }

    private void Leave()
    {
        _left = true;
        var killed = graph.KillAllHolders($"its worker {identity.WorkerId} could not renew its cluster registration within {options.ClusterLease}");
        WorkerLog.LeftCluster(logger, identity.WorkerId, options.ClusterLease, killed);
        // Not on this task: stopping the host waits for this task to end.
        _ = Task.Run(lifetime.StopApplication);
    }

    private void OnHolderDied(HolderState holder)
    {
        if (_left || _directory is null)
        {
            // Left the cluster: the record lapsed, so every entry naming this worker reads as dead already.
            return;
        }

        _deadEntries.Enqueue((holder.Key, new HolderPlacement(identity.WorkerId, holder.Incarnation, holder.Lifetime, WorkerAlive: true)));
        _ = RemoveDeadEntriesAsync();
    }

    /// <summary>
    /// Drops the entries of dead holders. One that cannot be removed now (the directory unreachable) is tried
    /// again after the next renewal: while it stays, the name would read as alive on this live worker.
    /// </summary>
    private async Task RemoveDeadEntriesAsync()
    {
        if (Interlocked.Exchange(ref _removing, 1) != 0)
        {
            return;
        }

        try
        {
            while (_deadEntries.TryPeek(out var entry))
            {
                await _directory!.RemoveHolderAsync(entry.Key, entry.Placement).ConfigureAwait(false);
                _deadEntries.TryDequeue(out _);
            }
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            if (_deadEntries.TryPeek(out var entry))
            {
                WorkerLog.HolderEntryNotRemoved(logger, entry.Key.Namespace, entry.Key.Name, ex);
            }
        }
        finally
        {
            Volatile.Write(ref _removing, 0);
        }
    }
}
