using System.Collections.Concurrent;
using RaySharing.Wire;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// Objects put on this worker for another worker's holder, and placeholders here of this worker's holders' objects
/// that other workers store (protos/CLUSTER.md, "Objects put for another worker's holder").
/// </summary>
/// <remarks>
/// The storing worker keeps an object's whole reference count: its own sessions' borrows, and one borrow by the
/// holder's worker's peer session for each placeholder that worker keeps (a placeholder lives while it is
/// registered or borrowed there). The holder's worker keeps placeholders, under a <see cref="ForeignStore"/> per
/// storing worker, so that its registry and fetches name the objects where they are. Lock order as in the graph:
/// the holder's gate, then a foreign store's (an owner's), then an index shard.
/// </remarks>
internal sealed partial class OwnershipGraph
{
    // Proxies by the holder incarnation they stand for: a stale incarnation's proxy may live beside the new one's
    // until its death is heard, and puts pinned to either must find their own.
    private readonly ConcurrentDictionary<ObjectOwner, HolderProxy> _proxies = new();

    /// <summary>
    /// Raised when a placeholder is freed here (no longer registered or borrowed here) while its storing worker is
    /// alive: the borrow this worker holds there must be given back. Must not throw.
    /// </summary>
    public Action<ForeignStore, ObjectId>? PlaceholderFreed { get; set; }

    // ---- On the storing worker ----

    /// <summary>The live proxy of another worker's holder incarnation, made now if there is none.</summary>
    public HolderProxy EnsureProxy(HolderSnapshot holder)
    {
        var owner = new ObjectOwner(OwnerKind.Holder, holder.Key.Namespace, holder.Key.Name, holder.Incarnation);
        lock (_gate)
        {
            if (_proxies.TryGetValue(owner, out var existing) && !existing.Dead)
            {
                return existing;
            }

            var proxy = new HolderProxy(holder, Identity.Location);
            _proxies[owner] = proxy;
            WorkerLog.ProxyCreated(_logger, holder.Key.Namespace, holder.Key.Name, holder.Incarnation, holder.Location.WorkerId);
            return proxy;
        }
    }

    /// <summary>Whether a put for <paramref name="address"/> needs a proxy that does not exist yet (the holder is another worker's).</summary>
    public bool NeedsProxy(ObjectId sessionToken, HolderAddress address)
    {
        var session = RequireSession(sessionToken);
        var key = new HolderKey(ResolveNamespace(address.Namespace, session), ValidateName(address.Name, "holder name"));
        return !_holders.ContainsKey(key) && FindProxy(key, address.Incarnation) is not { Attached: true };
    }

    /// <summary>Kills the proxy of a holder incarnation of another worker (that holder died): its objects are freed. False when there was none alive.</summary>
    public bool BuryProxy(ObjectOwner owner, string why)
    {
        if (!_proxies.TryRemove(owner, out var proxy))
        {
            return false;
        }

        ForgetRemoteHolder(proxy.Key, proxy.Incarnation);
        Bury(proxy, why);
        return true;
    }

    /// <summary>The holder incarnations this worker stores objects for, with the worker hosting each.</summary>
    public IReadOnlyList<(ObjectOwner Owner, HolderKey Key, ObjectId HolderWorker)> Proxies() =>
        _proxies.Values.Where(p => !p.Dead).Select(p => (p.AsOwner, p.Key, p.HolderWorker.WorkerId)).ToList();

    /// <summary>The owner a put names: the local holder, or the proxy of another worker's; null when neither is here.</summary>
    private OwnerState? FindPutOwner(HolderKey key, ObjectId? incarnation)
    {
        if (_holders.TryGetValue(key, out var holder))
        {
            return incarnation is null || incarnation == holder.Incarnation ? holder : null;
        }

        return FindProxy(key, incarnation);
    }

    private HolderProxy? FindProxy(HolderKey key, ObjectId? incarnation)
    {
        // Unpinned, a put means the live holder: the incarnation this worker last heard of.
        var wanted = incarnation ?? (_remoteHolders.TryGetValue(key, out var remote) ? remote.Incarnation : null);
        return wanted is { } id && _proxies.TryGetValue(new ObjectOwner(OwnerKind.Holder, key.Namespace, key.Name, id), out var proxy) ? proxy : null;
    }

    /// <summary>The owner of a put: a holder here or the proxy of another worker's; the session's errors otherwise.</summary>
    private OwnerState PutOwnerOf(HolderAddress address, SessionState session)
    {
        var key = new HolderKey(ResolveNamespace(address.Namespace, session), ValidateName(address.Name, "holder name"));
        if (FindPutOwner(key, address.Incarnation) is { } owner)
        {
            return owner.Dead ? throw OwnerDied(null, owner) : owner;
        }

        // Another worker's holder whose proxy here died with it: OWNER_DIED, not a referral to its worker.
        var wanted = address.Incarnation ?? (_remoteHolders.TryGetValue(key, out var remote) ? remote.Incarnation : null);
        if (!_holders.ContainsKey(key) && wanted is { } incarnation
            && _tombstones.TryGetDeadOwner(new ObjectOwner(OwnerKind.Holder, key.Namespace, key.Name, incarnation), out var dead) && dead is HolderProxy)
        {
            throw OwnerDied(null, dead);
        }

        return ResolveHolder(address, session);
    }

    // ---- On the holder's worker ----

    /// <summary>
    /// Records that <paramref name="storing"/> stores objects of the holder at <paramref name="address"/> (pinned to
    /// an incarnation), so that the holder's death reaches it.
    /// </summary>
    public void AttachStore(ObjectId sessionToken, HolderAddress address, WorkerLocation storing)
    {
        var holder = ResolveHolder(address, RequireSession(sessionToken));
        lock (holder.Gate)
        {
            ThrowIfDead(holder);
            StoreOf(holder, storing);
        }
    }

    /// <summary>The live holder of this worker a call names.</summary>
    public HolderSnapshot LocalHolderOf(ObjectId sessionToken, HolderAddress address) =>
        ResolveHolder(address, RequireSession(sessionToken)).Snapshot();

    /// <summary>The storing workers of this worker's holders whose objects are not (yet) known lost.</summary>
    public IReadOnlyList<ObjectId> ForeignStoreWorkers()
    {
        var workers = new HashSet<ObjectId>();
        foreach (var holder in _holders.Values)
        {
            lock (holder.Gate)
            {
                foreach (var store in holder.ForeignStores.Values)
                {
                    if (store.LostReason is null)
                    {
                        workers.Add(store.Location.WorkerId);
                    }
                }
            }
        }

        return [.. workers];
    }

    /// <summary>
    /// Takes a reference on this worker's placeholder of <paramref name="envelope"/>'s object (stored on another
    /// worker), if there is one; null when there is none, and the caller must borrow the object there first.
    /// </summary>
    public StoredObject? TryHoldPlaceholder(RefEnvelope envelope)
    {
        if (!Shard(envelope.ObjectId).TryGet(envelope.ObjectId, out var stored) || stored.Owner is not ForeignStore store)
        {
            return null;
        }

        if (!stored.Matches(envelope) || store.Location.WorkerId != envelope.Location.WorkerId)
        {
            throw WorkerErrors.EnvelopeMismatch(envelope.ObjectId);
        }

        if (store.LostReason is not null)
        {
            throw WorkerErrors.StoringWorkerLost(envelope.ObjectId, store.Location);
        }

        return stored.TryAddRef() ? stored : null;
    }

    /// <summary>
    /// Makes the placeholder of <paramref name="envelope"/>'s object, which its storing worker has just lent this worker
    /// (one borrow, which the placeholder now holds), with one reference for the caller. When a concurrent call made it
    /// first, that one is referenced instead and <paramref name="spareBorrow"/> is true: the caller gives the borrow back.
    /// </summary>
    /// <exception cref="WorkerException">OWNER_DIED: the holder died meanwhile (the caller gives the borrow back).</exception>
    public StoredObject AddPlaceholder(HolderSnapshot holderSnapshot, RefEnvelope envelope, out bool spareBorrow)
    {
        if (!_holders.TryGetValue(holderSnapshot.Key, out var holder) || holder.Incarnation != holderSnapshot.Incarnation)
        {
            throw WorkerErrors.OwnerDied(envelope.ObjectId, envelope.Owner, "the holder died while the ref was being registered");
        }

        lock (holder.Gate)
        {
            ThrowIfDead(holder);
            var store = StoreOf(holder, envelope.Location);
            var placeholder = new StoredObject(envelope.ObjectId, store, StoredBytes.Elsewhere(envelope.Size), envelope.Codec, envelope.TypeName, envelope.Checksum);
            lock (store.Gate)
            {
                var indexed = Shard(envelope.ObjectId).GetOrAdd(placeholder);
                if (ReferenceEquals(indexed, placeholder))
                {
                    store.Link(placeholder);
                    spareBorrow = false;
                    return placeholder;
                }

                if (indexed.Owner != store || !indexed.Matches(envelope))
                {
                    spareBorrow = true;
                    throw WorkerErrors.EnvelopeMismatch(envelope.ObjectId);
                }

                if (indexed.TryAddRef())
                {
                    spareBorrow = true;
                    return indexed;
                }

                // The one there is being freed (its borrow given back by its freer): this one, with its own borrow, takes its place.
                Shard(envelope.ObjectId).Replace(indexed, placeholder);
                store.Link(placeholder);
                spareBorrow = false;
                return placeholder;
            }
        }
    }

    /// <summary>Gives back references taken by <see cref="TryHoldPlaceholder"/> or <see cref="AddPlaceholder"/> for a call that failed.</summary>
    public void ReleaseHeld(IEnumerable<StoredObject?> held)
    {
        foreach (var stored in held)
        {
            if (stored is not null && stored.Release(1))
            {
                FreeUnreferenced(stored);
            }
        }
    }

    /// <summary>
    /// A storing worker died: the objects it stored for this worker's holders are lost. Their placeholders stay
    /// registered (a fetch still returns them; a get answers OBJECT_LOST) until unregistered. Returns how many holders had some.
    /// </summary>
    public int StoringWorkerDied(ObjectId workerId, string why)
    {
        var marked = 0;
        foreach (var holder in _holders.Values)
        {
            lock (holder.Gate)
            {
                if (holder.ForeignStores.TryGetValue(workerId, out var store) && store.LostReason is null)
                {
                    store.MarkLost(why);
                    marked++;
                    if (store.OwnedCount > 0)
                    {
                        // A store with no placeholder only means that worker looked the holder up: nothing to report.
                        WorkerLog.ObjectsLost(_logger, holder.Key.Namespace, holder.Key.Name, store.OwnedCount, workerId, why);
                    }
                }
            }
        }

        return marked;
    }

    /// <summary>The refs registered with the holder whose objects are lost, with their key and index (oldest first).</summary>
    public IReadOnlyList<(string Key, int Index, StoredObject Object)> LostRefs(ObjectId sessionToken, HolderAddress address)
    {
        var holder = ResolveHolder(address, RequireSession(sessionToken));
        var lost = new List<(string, int, StoredObject)>();
        lock (holder.Gate)
        {
            ThrowIfDead(holder);
            if (!holder.ForeignStores.Values.Any(s => s.LostReason is not null))
            {
                return lost;
            }

            foreach (var (key, list) in holder.Registry)
            {
                for (var i = 0; i < list.Count; i++)
                {
                    if (list[i].Owner is ForeignStore { LostReason: not null })
                    {
                        lost.Add((key, i, list[i]));
                    }
                }
            }
        }

        return lost;
    }

    /// <summary>The holder's foreign store for a storing worker, made if needed (under the holder's gate).</summary>
    private static ForeignStore StoreOf(HolderState holder, WorkerLocation storing)
    {
        if (!holder.ForeignStores.TryGetValue(storing.WorkerId, out var store))
        {
            store = new ForeignStore(holder, storing);
            holder.ForeignStores.Add(storing.WorkerId, store);
        }

        return store;
    }

    /// <summary>The holder that owns <paramref name="stored"/>: its owner, or for a placeholder its foreign store's holder.</summary>
    private static OwnerState OwningHolderOf(StoredObject stored) => stored.Owner is ForeignStore store ? store.Holder : stored.Owner;
}
