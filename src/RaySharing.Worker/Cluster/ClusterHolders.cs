using System.Collections.Concurrent;
using RaySharing.Wire;
using RaySharing.Worker.Ownership;
using StackExchange.Redis;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// Holders by name across the cluster: get-or-create, get and list consult the directory when this worker does not
/// host the holder, so that one name has one live incarnation whichever worker is asked (a claim is one Redis
/// script). Holders of this worker are answered without a directory round trip. In a single worker, the graph
/// answers alone.
/// </summary>
internal sealed class ClusterHolders(OwnershipGraph graph, ClusterMembership membership, WorkerIdentity identity)
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
