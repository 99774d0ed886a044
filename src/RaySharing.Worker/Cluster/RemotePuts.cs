using System.Collections.Concurrent;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RaySharing.Protocol.V1;
using RaySharing.Wire;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// Objects put for another worker's holder: the bytes stay on the worker the putting session uses (the storing
/// worker), the holder's worker records them. This class is both sides' part that needs the network:
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Storing side: before the first put for a holder of another worker, that worker is told (<c>AttachStore</c>)
/// and a <see cref="HolderProxy"/> owns the objects here; the proxy dies when the holder's worker says the holder
/// died, or when the directory shows it gone (a sweep every third of a lease).</item>
/// <item>Holder side: registering a ref stored elsewhere borrows it once on the storing worker for the placeholder
/// kept here, before the registration is acknowledged; a placeholder freed here gives that borrow back (batched).
/// A holder's death is sent to every worker that stores its objects; a storing worker's death marks its objects
/// lost (OBJECT_LOST) in the registries here.</item>
/// </list>
/// </remarks>
internal sealed class RemotePuts : IHostedService
{
    /// <summary>Ids per give-back call to a storing worker.</summary>
    private const int ReleaseBatch = 16384;

    private const int DeathNoticeAttempts = 3;

    private readonly OwnershipGraph _graph;
    private readonly ClusterMembership _membership;
    private readonly ClusterHolders _holders;
    private readonly PeerWorkers _peers;
    private readonly RemoteObjects _objects;
    private readonly RemoteBorrows _borrows;
    private readonly WorkerIdentity _identity;
    private readonly WorkerOptions _options;
    private readonly ILogger<RemotePuts> _logger;
    private readonly ConcurrentDictionary<ObjectOwner, Lazy<Task>> _attaching = new();
    private readonly ConcurrentQueue<(ObjectId Worker, ObjectId Id)> _releases = new();
    private int _draining;

    public RemotePuts(OwnershipGraph graph, ClusterMembership membership, ClusterHolders holders, PeerWorkers peers, RemoteObjects objects,
        RemoteBorrows borrows, WorkerIdentity identity, WorkerOptions options, ILogger<RemotePuts> logger)
    {
        _graph = graph;
        _membership = membership;
        _holders = holders;
        _peers = peers;
        _objects = objects;
        _borrows = borrows;
        _identity = identity;
        _options = options;
        _logger = logger;
        if (membership.Enabled)
        {
            graph.PlaceholderFreed = OnPlaceholderFreed;
            graph.HolderDied += OnHolderDied;
            membership.AfterRenewal = SweepAsync;
        }
    }

    /// <summary>Nothing to start: a hosted service only so that its handlers are in place before the first call.</summary>
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Whether this worker is in a cluster (otherwise every call here is the single worker's own).</summary>
    public bool Enabled => _membership.Enabled;

    // ---- Storing side ----

    /// <summary>
    /// Makes sure a put owned by <paramref name="owner"/> can be stored here: when that holder is another worker's,
    /// that worker is told (once per holder incarnation) and the proxy that owns such objects here exists.
    /// </summary>
    public async Task PrepareAsync(ObjectId sessionToken, HolderAddress? owner, CancellationToken cancellationToken)
    {
        if (!_membership.Enabled || owner is not { } address || !_graph.NeedsProxy(sessionToken, address))
        {
            return;
        }

        if (await _holders.FindRemoteAsync(sessionToken, address).ConfigureAwait(false) is { } remote)
        {
            await AttachAsync(remote, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Tells <paramref name="remote"/>'s worker that this one stores objects of its holder; concurrent callers share one call.</summary>
    public async Task AttachAsync(RemoteHolder remote, CancellationToken cancellationToken)
    {
        var owner = new ObjectOwner(OwnerKind.Holder, remote.Key.Namespace, remote.Key.Name, remote.Holder.Incarnation);
        var attach = new Lazy<Task>(() => AttachOnceAsync(remote, owner));
        var shared = _attaching.GetOrAdd(owner, attach);
        try
        {
            await shared.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _attaching.TryRemove(new KeyValuePair<ObjectOwner, Lazy<Task>>(owner, shared));
        }
    }

    private async Task AttachOnceAsync(RemoteHolder remote, ObjectOwner owner)
    {
        // The proxy first: a death notice that arrives while the call is under way finds it and buries it.
        var proxy = _graph.EnsureProxy(remote.Holder);
        if (proxy.Attached)
        {
            return;
        }

        var request = new AttachStoreRequest
        {
            Holder = HolderRefOf(owner),
            WorkerId = UnsafeByteOperations.UnsafeWrap(_identity.WorkerId.ToByteArray()),
            WorkerAddress = _identity.Address,
        };
        try
        {
            await _holders.ForwardAsync(remote, (peer, o) => peer.Peers.AttachStoreAsync(request, o), CancellationToken.None).ConfigureAwait(false);
            proxy.Attached = true;
        }
        catch (RpcException ex) when (ex.Trailers.GetValue(WireHeaders.Reason) is ErrorReasons.OwnerDied or ErrorReasons.HolderNotFound)
        {
            _graph.BuryProxy(owner, $"the holder died on worker {remote.Holder.Location.WorkerId}");
            throw;
        }
        catch (WorkerException ex) when (ex.Reason == ErrorReasons.OwnerDied)
        {
            _graph.BuryProxy(owner, ex.Status.Detail);
            throw;
        }
    }

    // ---- Holder side ----

    /// <summary>
    /// Registers refs with a holder of this worker when some are stored on other workers: each of those is borrowed
    /// once there for its placeholder here (unless a placeholder exists), then the registration is made as for local
    /// refs, all or nothing.
    /// </summary>
    public async Task<int> RegisterAsync(ObjectId sessionToken, HolderAddress address, string key, IReadOnlyList<RefEnvelope> refs,
        IReadOnlyList<ByteString> envelopeBytes, CancellationToken cancellationToken)
    {
        var holder = _graph.LocalHolderOf(sessionToken, address);
        var owner = new ObjectOwner(OwnerKind.Holder, holder.Key.Namespace, holder.Key.Name, holder.Incarnation);
        var held = new StoredObject?[refs.Count];
        try
        {
            var missing = new List<int>();
            for (var i = 0; i < refs.Count; i++)
            {
                var envelope = refs[i];
                if (envelope.Location.WorkerId == _identity.WorkerId)
                {
                    continue;
                }

                // Checked before anything is borrowed: only this holder's objects are borrowed for it.
                if (envelope.Owner != owner)
                {
                    throw WorkerErrors.NotOwner(envelope.ObjectId, envelope.Owner, holder.Key);
                }

                held[i] = _graph.TryHoldPlaceholder(envelope);
                if (held[i] is null)
                {
                    missing.Add(i);
                }
            }

            foreach (var group in missing.GroupBy(i => refs[i].Location.WorkerId))
            {
                var indices = group.ToList();
                var request = new BorrowRequest();
                request.Envelopes.AddRange(indices.Select(i => envelopeBytes[i]));
                var peer = await _objects.HoldAsync(refs[indices[0]], request, cancellationToken).ConfigureAwait(false);
                var spare = new List<ObjectId>();
                var placed = 0;
                try
                {
                    foreach (var i in indices)
                    {
                        held[i] = _graph.AddPlaceholder(holder, refs[i], out var extra);
                        placed++;
                        if (extra)
                        {
                            spare.Add(refs[i].ObjectId);
                        }
                    }
                }
                catch
                {
                    spare.AddRange(indices.Skip(placed).Select(i => refs[i].ObjectId));
                    throw;
                }
                finally
                {
                    if (spare.Count > 0)
                    {
                        _borrows.GiveBack(peer, spare);
                    }
                }
            }

            return _graph.Register(sessionToken, address, key, refs, held);
        }
        catch
        {
            _graph.ReleaseHeld(held);
            throw;
        }
    }

    private void OnPlaceholderFreed(ForeignStore store, ObjectId id)
    {
        _releases.Enqueue((store.Location.WorkerId, id));
        if (Interlocked.CompareExchange(ref _draining, 1, 0) == 0)
        {
            _ = Task.Run(DrainReleasesAsync);
        }
    }

    /// <summary>Gives back the borrows of freed placeholders, in batches per storing worker.</summary>
    private async Task DrainReleasesAsync()
    {
        while (true)
        {
            var batch = new List<(ObjectId Worker, ObjectId Id)>();
            while (batch.Count < ReleaseBatch && _releases.TryDequeue(out var next))
            {
                batch.Add(next);
            }

            foreach (var group in batch.GroupBy(b => b.Worker))
            {
                try
                {
                    if (await _holders.WorkerAsync(group.Key).ConfigureAwait(false) is { } worker)
                    {
                        // A worker that is gone dropped this worker's borrows with its peer session.
                        _borrows.GiveBack(_peers.Get(worker), group.Select(b => b.Id).ToList());
                    }
                }
                catch (WorkerException ex)
                {
                    WorkerLog.RemoteReleaseFailed(_logger, group.Count(), group.Key, ex.Message);
                }
            }

            if (batch.Count > 0)
            {
                continue;
            }

            // As the graph's reclaim: the flag drops with a full fence, then the queue is looked at once more.
            Interlocked.Exchange(ref _draining, 0);
            if (_releases.IsEmpty || Interlocked.CompareExchange(ref _draining, 1, 0) != 0)
            {
                return;
            }
        }
    }

    private void OnHolderDied(HolderState holder)
    {
        ForeignStore[] stores;
        lock (holder.Gate)
        {
            stores = [.. holder.ForeignStores.Values];
        }

        if (stores.Length == 0)
        {
            return;
        }

        var request = new HolderDiedRequest { Holder = HolderRefOf(holder.AsOwner), Reason = holder.DeathReason ?? "killed" };
        foreach (var store in stores.Where(s => s.LostReason is null))
        {
            _ = TellDeathAsync(store.Location.WorkerId, holder, request);
        }
    }

    /// <summary>Tells a storing worker that a holder died; a few tries, then the directory tells it within a lease.</summary>
    private async Task TellDeathAsync(ObjectId workerId, HolderState holder, HolderDiedRequest request)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (await _holders.WorkerAsync(workerId).ConfigureAwait(false) is not { } worker)
                {
                    return;
                }

                var peer = _peers.Get(worker);
                await peer.CallAsync(o => peer.Peers.HolderDiedAsync(request, o), CancellationToken.None).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is RpcException or PeerUnreachableException or WorkerException)
            {
                if (attempt == DeathNoticeAttempts)
                {
                    WorkerLog.HolderDeathNotSent(_logger, workerId, holder.Key.Namespace, holder.Key.Name, ex);
                    return;
                }

                await Task.Delay(_options.ClusterLease / 10).ConfigureAwait(false);
            }
        }
    }

    // ---- Both: what the directory says ----

    /// <summary>
    /// After each renewal of this worker's record (<see cref="ClusterMembership.AfterRenewal"/>, so never within a
    /// lease of a directory reset): proxies of holders the directory no longer has die (their death notice was lost),
    /// and the objects of storing workers the directory no longer has are marked lost.
    /// </summary>
    private async Task SweepAsync()
    {
        var proxies = _graph.Proxies();
        var storing = _graph.ForeignStoreWorkers();
        if (proxies.Count == 0 && storing.Count == 0)
        {
            return;
        }

        var workers = proxies.Select(p => p.HolderWorker).Concat(storing).Distinct().ToList();
        var alive = await _membership.Directory.AliveAsync(workers).ConfigureAwait(false);
        foreach (var worker in storing.Where(w => !alive.Contains(w)))
        {
            _graph.StoringWorkerDied(worker, $"its storing worker {worker} died");
        }

        foreach (var (owner, key, holderWorker) in proxies)
        {
            string? why = null;
            if (!alive.Contains(holderWorker))
            {
                why = $"the holder's worker {holderWorker} died";
            }
            else if (await _membership.Directory.FindHolderAsync(key).ConfigureAwait(false) is not { } placement || placement.Incarnation != owner.Incarnation)
            {
                why = "the holder is no longer alive (per the cluster's directory)";
            }

            if (why is not null && _graph.BuryProxy(owner, why))
            {
                WorkerLog.ProxyDied(_logger, owner.Namespace, owner.Name, owner.Incarnation, why);
            }
        }
    }

    private static HolderRef HolderRefOf(ObjectOwner owner) => new()
    {
        Namespace = owner.Namespace,
        Name = owner.Name,
        Incarnation = UnsafeByteOperations.UnsafeWrap(owner.Incarnation.ToByteArray()),
    };
}
