using System.Collections.Concurrent;
using Grpc.Core;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using RaySharing.Worker.Ownership;
using StackExchange.Redis;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// Holders by name across the cluster: get-or-create, get and list consult the directory when this worker does not
/// host the holder, so that one name has one live incarnation whichever worker is asked (a claim is one Redis
/// script). Holders of this worker are answered without a directory round trip. In a single worker, the graph
/// answers alone.
/// </summary>
internal sealed class ClusterHolders(OwnershipGraph graph, ClusterMembership membership, WorkerIdentity identity, PeerWorkers peers)
{
    /// <summary>A claim's answer can name this worker for a holder it no longer has (its entry not yet removed); tries that many times.</summary>
    private const int ClaimAttempts = 3;

    // One claim at a time per name from this worker: concurrent callers share its answer, and only one is "created".
    private readonly ConcurrentDictionary<HolderKey, Lazy<Task<(HolderSnapshot Holder, bool Created)>>> _claims = new();
    private readonly ConcurrentDictionary<ObjectId, WorkerRecord> _workers = new();

    public async Task<(HolderSnapshot Holder, bool Created)> GetOrCreateAsync(ObjectId sessionToken, string ns, string name, HolderLifetimeKind lifetime)
    {
        if (!membership.Enabled)
        {
            return graph.GetOrCreateHolder(sessionToken, ns, name, lifetime);
        }

        var (session, key) = graph.HolderKeyOf(sessionToken, ns, name);
        if (graph.TryGetLocalHolder(key) is { } local)
        {
            return (local, false);
        }

        var claim = new Lazy<Task<(HolderSnapshot, bool)>>(() => ClaimAsync(session, key, lifetime));
        var shared = _claims.GetOrAdd(key, claim);
        try
        {
            var (holder, created) = await shared.Value.ConfigureAwait(false);
            return (holder, created && ReferenceEquals(shared, claim));
        }
        finally
        {
            _claims.TryRemove(new KeyValuePair<HolderKey, Lazy<Task<(HolderSnapshot, bool)>>>(key, shared));
        }
    }

    public async Task<HolderSnapshot> GetAsync(ObjectId sessionToken, string ns, string name)
    {
        if (!membership.Enabled)
        {
            return graph.GetHolder(sessionToken, ns, name);
        }

        var (_, key) = graph.HolderKeyOf(sessionToken, ns, name);
        if (graph.TryGetLocalHolder(key) is { } local)
        {
            return local;
        }

        var placement = await Directory(d => d.FindHolderAsync(key)).ConfigureAwait(false);
        if (placement is { WorkerAlive: true } alive && alive.WorkerId != identity.WorkerId
            && await RemoteAsync(key, alive).ConfigureAwait(false) is { } remote)
        {
            return remote;
        }

        throw WorkerErrors.HolderNotFound(key.Namespace, key.Name);
    }

    public async Task<IReadOnlyList<HolderSnapshot>> ListAsync(ObjectId sessionToken, string ns)
    {
        var locals = graph.ListHolders(sessionToken, ns);
        if (!membership.Enabled)
        {
            return locals;
        }

        var entries = await Directory(d => d.ListHoldersAsync(graph.NamespaceOf(sessionToken, ns))).ConfigureAwait(false);
        var all = new List<HolderSnapshot>(locals);
        foreach (var (key, placement) in entries)
        {
            if (placement.WorkerAlive && placement.WorkerId != identity.WorkerId && await RemoteAsync(key, placement).ConfigureAwait(false) is { } remote)
            {
                all.Add(remote);
            }
        }

        return all;
    }

    /// <summary>
    /// The other worker that hosts the holder a call names, for the call to be forwarded there; null when this worker
    /// answers it (its own holder, none alive anywhere, or a single worker).
    /// </summary>
    public async Task<RemoteHolder?> FindRemoteAsync(ObjectId sessionToken, HolderAddress address)
    {
        if (!membership.Enabled)
        {
            return null;
        }

        var (session, key) = graph.HolderKeyOf(sessionToken, address.Namespace, address.Name);
        if (graph.TryGetLocalHolder(key) is not null)
        {
            return null;
        }

        if (!graph.TryGetRemoteHolder(key, out var holder))
        {
            var placement = await Directory(d => d.FindHolderAsync(key)).ConfigureAwait(false);
            if (placement is not { WorkerAlive: true } alive || alive.WorkerId == identity.WorkerId
                || await RemoteAsync(key, alive).ConfigureAwait(false) is not { } found)
            {
                return null;
            }

            holder = found;
        }

        return _workers.TryGetValue(holder.Location.WorkerId, out var worker)
            ? new RemoteHolder(session, key, holder, peers.Get(worker))
            : null;
    }

    /// <summary>
    /// One call forwarded to the worker that hosts <paramref name="remote"/>, through this worker's peer session there.
    /// Its own errors come back as they are (reason and trailers intact); a worker that cannot be reached is
    /// OWNER_DIED when the directory says it died (its holders died with it), else UNAVAILABLE.
    /// </summary>
    public Task<T> ForwardAsync<T>(RemoteHolder remote, Func<PeerWorker, CallOptions, AsyncUnaryCall<T>> call, CancellationToken cancellationToken) =>
        ForwardCoreAsync(remote, peer => peer.CallAsync(options => call(peer, options), cancellationToken));

    /// <summary>
    /// As <see cref="ForwardAsync{T}(RemoteHolder, Func{PeerWorker, CallOptions, AsyncUnaryCall{T}}, CancellationToken)"/>, over the other
    /// worker's binary channel when it offers one (<paramref name="op"/> with <paramref name="payload"/>, the reply made by
    /// <paramref name="read"/>): a third of a gRPC call's cost. Over gRPC (<paramref name="call"/>) otherwise.
    /// </summary>
    public Task<T> ForwardAsync<T>(RemoteHolder remote, ChannelOp op, ReadOnlyMemory<byte> payload, Func<ReadOnlyMemory<byte>, T> read,
        Func<PeerWorker, CallOptions, AsyncUnaryCall<T>> call, CancellationToken cancellationToken)
        where T : class =>
        ForwardCoreAsync(remote, async peer =>
            await peer.ChannelCallAsync(op, payload, read, cancellationToken).ConfigureAwait(false)
            ?? await peer.CallAsync(options => call(peer, options), cancellationToken).ConfigureAwait(false));

    private async Task<T> ForwardCoreAsync<T>(RemoteHolder remote, Func<PeerWorker, Task<T>> send)
    {
        try
        {
            return await send(remote.Peer).ConfigureAwait(false);
        }
        catch (RpcException ex) when (ex.Trailers.GetValue(WireHeaders.Reason) is ErrorReasons.HolderNotFound or ErrorReasons.OwnerDied)
        {
            graph.ForgetRemoteHolder(remote.Key, remote.Holder.Incarnation);
            throw;
        }
        catch (PeerUnreachableException ex)
        {
            throw await UnreachableAsync(remote, ((RpcException)ex.InnerException!).Status.Detail).ConfigureAwait(false);
        }
    }

    /// <summary>The live worker <paramref name="workerId"/>'s record (cached: records never change); null when it is dead.</summary>
    public async Task<WorkerRecord?> WorkerAsync(ObjectId workerId)
    {
        if (_workers.TryGetValue(workerId, out var known))
        {
            return known;
        }

        return await Directory(d => d.FindWorkerAsync(workerId)).ConfigureAwait(false) is { } found
            ? _workers.GetOrAdd(workerId, found)
            : null;
    }

    /// <summary>Whether <paramref name="workerId"/>'s record still exists.</summary>
    public async Task<bool> IsAliveAsync(ObjectId workerId) =>
        (await Directory(d => d.AliveAsync([workerId])).ConfigureAwait(false)).Contains(workerId);

    /// <summary>Where a holder lives per the directory; null when it has no entry.</summary>
    public Task<HolderPlacement?> PlacementAsync(HolderKey key) => Directory(d => d.FindHolderAsync(key));

    private async Task<WorkerException> UnreachableAsync(RemoteHolder remote, string detail)
    {
        var worker = remote.Holder.Location;
        var alive = await Directory(d => d.AliveAsync([worker.WorkerId])).ConfigureAwait(false);
        if (alive.Contains(worker.WorkerId) || membership.RecentlyReset)
        {
            return WorkerErrors.PeerUnavailable(remote.Holder, detail);
        }

        graph.ForgetRemoteHolder(remote.Key, remote.Holder.Incarnation);
        await peers.ForgetAsync(worker.WorkerId).ConfigureAwait(false);
        var owner = new ObjectOwner(OwnerKind.Holder, remote.Key.Namespace, remote.Key.Name, remote.Holder.Incarnation);
        return WorkerErrors.OwnerDied(null, owner, $"its worker {worker.WorkerId} at {worker.Address} died");
    }

    private async Task<(HolderSnapshot Holder, bool Created)> ClaimAsync(SessionState session, HolderKey key, HolderLifetimeKind lifetime)
    {
        for (var attempt = 1; ; attempt++)
        {
            var candidate = new HolderPlacement(identity.WorkerId, ObjectId.NewId(), lifetime, WorkerAlive: true);
            var (placement, created) = await Directory(d => d.ClaimHolderAsync(key, candidate)).ConfigureAwait(false);
            if (created)
            {
                try
                {
                    return graph.CreateClaimedHolder(session, key, placement.Incarnation, lifetime);
                }
                catch
                {
                    // The session ended meanwhile: the name goes back to whoever asks next.
                    await Directory(d => d.RemoveHolderAsync(key, placement)).ConfigureAwait(false);
                    throw;
                }
            }

            if (placement.WorkerId != identity.WorkerId)
            {
                if (await RemoteAsync(key, placement).ConfigureAwait(false) is { } remote)
                {
                    return (remote, false);
                }
            }
            else if (graph.TryGetLocalHolder(key) is { } local && local.Incarnation == placement.Incarnation)
            {
                return (local, false);
            }
            else
            {
                // An entry of this worker's for a holder that died here and whose entry is still to be removed.
                await Directory(d => d.RemoveHolderAsync(key, placement)).ConfigureAwait(false);
            }

            if (attempt == ClaimAttempts)
            {
                throw WorkerErrors.DirectoryUnavailable($"holder {key.Namespace}/{key.Name} kept moving between workers while it was claimed ({ClaimAttempts} attempts)");
            }
        }
    }

    /// <summary>A holder of another worker as a call reports it; null when that worker died since the directory answered.</summary>
    private async Task<HolderSnapshot?> RemoteAsync(HolderKey key, HolderPlacement placement)
    {
        if (!_workers.TryGetValue(placement.WorkerId, out var worker))
        {
            if (await Directory(d => d.FindWorkerAsync(placement.WorkerId)).ConfigureAwait(false) is not { } found)
            {
                return null;
            }

            // A worker id is never reused, and its record never changes: cached for good.
            worker = _workers.GetOrAdd(placement.WorkerId, found);
        }

        var remote = new HolderSnapshot(key, placement.Incarnation, placement.Lifetime, OwnedObjects: 0, Keys: 0, new WorkerLocation(worker.Address, worker.Id));
        graph.RememberRemoteHolder(remote);
        return remote;
    }

    /// <summary>A directory call, its failures as UNAVAILABLE: the caller may try again once Redis answers.</summary>
    private async Task<T> Directory<T>(Func<RedisDirectory, Task<T>> call)
    {
        try
        {
            return await call(membership.Directory).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ClusterDirectoryException)
        {
            throw WorkerErrors.DirectoryUnavailable(ex.Message);
        }
    }

    private async Task Directory(Func<RedisDirectory, Task> call) =>
        await Directory<bool>(async d =>
        {
            await call(d).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
}

/// <summary>A call's holder hosted by another worker: the calling session, the holder, and the way there.</summary>
internal sealed record RemoteHolder(SessionState Session, HolderKey Key, HolderSnapshot Holder, PeerWorker Peer);
