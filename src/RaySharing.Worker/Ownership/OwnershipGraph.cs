using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using RaySharing.Wire;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// Sessions, holders and objects, and who owns and borrows what. This is where the lifetime rules of
/// DESIGN.md live: an object lives while it is registered or borrowed; an owner's death frees all it owns.
/// </summary>
/// <remarks>
/// <para>Locks, always taken in this order (a thread holding one takes only later ones):</para>
/// <list type="number">
/// <item><c>_gate</c>: which sessions and holders exist (creation, kill, session end). Held for O(1) work.</item>
/// <item>A holder's <see cref="OwnerState.Gate"/>: its registry and object list. Every call on one holder
/// takes it, which is the actor guarantee; calls on different holders do not wait for each other.</item>
/// <item>A session's <see cref="OwnerState.Gate"/>: its borrows and its own objects' list.</item>
/// <item>One of <see cref="IndexShards"/> shard locks of the id index, chosen by the (random) id.</item>
/// <item>The tombstones' lock.</item>
/// </list>
/// <para>An object's reference count (registrations plus borrows) is atomic; the one caller that takes it
/// to zero frees the object, after leaving the session lock it may hold. An owner's death is a flag set
/// under its gate: resolution reads the object's owner first, so every later get, fetch or borrow answers
/// OWNER_DIED at once, and the objects and their bytes are reclaimed in the background, in batches that
/// each hold a lock for at most <see cref="ReclaimBatch"/> objects.</para>
/// </remarks>
internal sealed partial class OwnershipGraph
{
    /// <summary>Objects freed per background reclaim batch; the dead owner's gate is held only to unlink them (tens of microseconds).</summary>
    internal const int ReclaimBatch = 2048;

    /// <summary>An owner with at most this many objects and borrows is reclaimed inline by the call that ends it.</summary>
    internal const int InlineReclaimMax = 512;

    /// <summary>
    /// The reclaim's pause between batches. Without it the reclaim would take a whole core for as long as
    /// it runs, and on a busy 2-core machine calls on live holders waited for CPU (a 1,000,000-object
    /// kill: gets of another holder 13 times slower meanwhile). Paced, it takes a fraction of a core.
    /// </summary>
    private static readonly TimeSpan ReclaimPause = TimeSpan.FromMilliseconds(1);

    private const string DefaultNamespace = "default";
    private const int IndexShards = 64;

    private readonly Lock _gate = new();
    private readonly ConcurrentDictionary<ObjectId, SessionState> _sessionsByToken = new();
    private readonly ConcurrentDictionary<HolderKey, HolderState> _holders = new();
    private readonly IndexShard[] _index = new IndexShard[IndexShards];
    private readonly ConcurrentQueue<OwnerState> _dead = new();
    private readonly Tombstones _tombstones;
    private readonly ObjectIdGenerator _ids = new();
    private readonly ObjectStore _store;
    private readonly WorkerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private long _objectCount;
    private int _reclaiming;

    public OwnershipGraph(WorkerIdentity identity, ObjectStore store, WorkerOptions options, ILogger<OwnershipGraph> logger, TimeProvider time)
    {
        _time = time;
        Identity = identity;
        _store = store;
        _options = options;
        // Logging happens in the middle of multi-step updates; a failing log provider must not cut one short.
        _logger = new GuardedLogger(logger);
        _tombstones = new Tombstones(options.TombstoneCapacity);
        for (var i = 0; i < _index.Length; i++)
        {
            _index[i] = new IndexShard();
        }
    }

    public WorkerIdentity Identity { get; }

    /// <summary>Awaited before each reclaim batch when set; lets tests hold the reclaim to observe the states in between.</summary>
    internal Func<Task>? BeforeReclaimBatch { get; set; }

    /// <summary>True while owners' objects are still being reclaimed in the background.</summary>
    internal bool Reclaiming => Volatile.Read(ref _reclaiming) != 0 || !_dead.IsEmpty;

    // ---- Sessions ----

    public SessionState OpenSession(string ns, TimeSpan requestedLease, string clientName)
    {
        ns = NormalizeNamespace(ns);
        var lease = requestedLease <= TimeSpan.Zero
            ? _options.DefaultLease
            : TimeSpan.FromTicks(Math.Clamp(requestedLease.Ticks, _options.MinLease.Ticks, _options.MaxLease.Ticks));
        var session = new SessionState(ObjectId.NewId(), ObjectId.NewId(), ns, clientName, lease, NowMillis() + (long)lease.TotalMilliseconds, Identity.Location);
        lock (_gate)
        {
            _sessionsByToken.TryAdd(session.Token, session);
        }

        WorkerLog.SessionOpened(_logger, session.Id, ns, clientName, lease.TotalMilliseconds);
        return session;
    }

    public TimeSpan KeepAlive(ObjectId sessionToken) => RequireSession(sessionToken).Lease;

    /// <summary>The caller's live session. Every call renews its lease: a busy session is plainly alive.</summary>
    public SessionState RequireSession(ObjectId sessionToken)
    {
        if (!_sessionsByToken.TryGetValue(sessionToken, out var session))
        {
            throw WorkerErrors.SessionExpired();
        }

        session.ExpiresAtMillis = NowMillis() + (long)session.Lease.TotalMilliseconds;
        return session;
    }

    public void CloseSession(ObjectId sessionToken)
    {
        if (_sessionsByToken.TryGetValue(sessionToken, out var session))
        {
            EndSession(session, "closed");
        }
    }

    /// <summary>Ends every session whose lease has lapsed; returns how many.</summary>
    public int ExpireLapsedSessions()
    {
        var now = NowMillis();
        var ended = 0;
        foreach (var session in _sessionsByToken.Values)
        {
            if (session.ExpiresAtMillis < now && EndSession(session, "lease lapsed"))
            {
                ended++;
            }
            else
            {
                session.Transfers.Expire(now);
            }
        }

        return ended;
    }

    // ---- Holders ----

    public (HolderSnapshot Holder, bool Created) GetOrCreateHolder(ObjectId sessionToken, string ns, string name, HolderLifetimeKind lifetime)
    {
        var session = RequireSession(sessionToken);
        return GetOrAddHolder(session, new HolderKey(ResolveNamespace(ns, session), ValidateName(name, "holder name")), ObjectId.NewId(), lifetime);
    }

    /// <summary>The live holder of <paramref name="key"/>, or a new one of <paramref name="incarnation"/> created for <paramref name="session"/>.</summary>
    private (HolderSnapshot Holder, bool Created) GetOrAddHolder(SessionState session, HolderKey key, ObjectId incarnation, HolderLifetimeKind lifetime)
    {
        HolderState holder;
        lock (_gate)
        {
            if (_holders.TryGetValue(key, out var existing))
            {
                return (existing.Snapshot(), false);
            }

            // Under _gate, as EndSession: a session-lifetime holder is never created for a session that ended.
            if (!_sessionsByToken.ContainsKey(session.Token))
            {
                throw WorkerErrors.SessionExpired();
            }

            holder = new HolderState(key, incarnation, lifetime, session, Identity.Location);
            _holders[key] = holder;
            if (lifetime == HolderLifetimeKind.Session)
            {
                session.OwnedHolders.Add(holder);
            }
        }

        WorkerLog.HolderCreated(_logger, key.Namespace, key.Name, holder.Incarnation, lifetime.ToString(), session.Id);
        return (holder.Snapshot(), true);
    }

    public HolderSnapshot GetHolder(ObjectId sessionToken, string ns, string name)
    {
        var session = RequireSession(sessionToken);
        var key = new HolderKey(ResolveNamespace(ns, session), ValidateName(name, "holder name"));
        return _holders.TryGetValue(key, out var holder)
            ? holder.Snapshot()
            : throw WorkerErrors.HolderNotFound(key.Namespace, key.Name);
    }

    public IReadOnlyList<HolderSnapshot> ListHolders(ObjectId sessionToken, string ns)
    {
        var session = RequireSession(sessionToken);
        var resolved = ResolveNamespace(ns, session);
        return _holders.Values.Where(h => h.Key.Namespace == resolved).Select(h => h.Snapshot()).ToList();
    }

    /// <summary>Kills a holder in O(1); returns how many objects it owned, which the background reclaim frees.</summary>
    public long KillHolder(ObjectId sessionToken, HolderAddress address)
    {
        var session = RequireSession(sessionToken);
        var holder = ResolveHolder(address, session);
        lock (_gate)
        {
            if (!_holders.TryRemove(new KeyValuePair<HolderKey, HolderState>(holder.Key, holder)))
            {
                // Killed by someone else since it was resolved.
                throw DeadHolder(holder);
            }

            if (holder.Lifetime == HolderLifetimeKind.Session)
            {
                holder.CreatorSession.OwnedHolders.Remove(holder);
            }
        }

        return Bury(holder, $"killed by session {session.Id}");
    }

    /// <summary>
    /// Appends refs to a key's list, all or none. <paramref name="held"/>, when given, has for each ref stored on another
    /// worker the placeholder the caller already took a reference on (<see cref="TryHoldPlaceholder"/>,
    /// <see cref="AddPlaceholder"/>): the registration keeps that reference, and on failure the caller gives it back.
    /// </summary>
    public int Register(ObjectId sessionToken, HolderAddress address, string key, IReadOnlyList<RefEnvelope> refs, StoredObject?[]? held = null)
    {
        ValidateName(key, "key");
        var session = RequireSession(sessionToken);
        var holder = ResolveHolder(address, session);
        List<StoredObject>? toFree = null;
        try
        {
            lock (holder.Gate)
            {
                ThrowIfDead(holder);
                // Check every ref before changing anything, so a bad ref leaves the registry as it was.
                var objects = new StoredObject[refs.Count];
                for (var i = 0; i < refs.Count; i++)
                {
                    var stored = held?[i] ?? ResolveEnvelope(refs[i]);
                    if (!ReferenceEquals(OwningHolderOf(stored), holder))
                    {
                        throw WorkerErrors.NotOwner(stored.Id, stored.Owner.AsOwner, holder.Key);
                    }

                    objects[i] = stored;
                }

                AddRefs(objects, held, ref toFree);
                if (!holder.Registry.TryGetValue(key, out var list))
                {
                    list = new List<StoredObject>(objects.Length);
                    holder.Registry.Add(key, list);
                }

                list.AddRange(objects);
                WorkerLog.Registered(_logger, holder.Key.Namespace, holder.Key.Name, key, objects.Length, list.Count);
                return list.Count;
            }
        }
        finally
        {
            FreeAll(toFree);
        }
    }

    /// <summary>
    /// Returns the envelopes under a key from index <paramref name="start"/>: at most <paramref name="maxCount"/>
    /// and at most <paramref name="maxBytes"/> bytes of envelopes, but at least one if any remain. The session
    /// borrows exactly the refs returned.
    /// </summary>
    public FetchPage Fetch(ObjectId sessionToken, HolderAddress address, string key, int start, int maxCount, int maxBytes)
    {
        if (start < 0 || maxCount < 1 || maxBytes < 1)
        {
            throw WorkerErrors.InvalidRequest($"A fetch page starts at an index >= 0 and takes at least one ref of at least one byte; got start {start}, count {maxCount}, bytes {maxBytes}.");
        }

        var session = RequireSession(sessionToken);
        var holder = ResolveHolder(address, session);
        lock (holder.Gate)
        {
            ThrowIfDead(holder);
            if (!holder.Registry.TryGetValue(key, out var list))
            {
                throw WorkerErrors.KeyNotFound(holder.Key, key);
            }

            var envelopes = new List<byte[]>(Math.Min(maxCount, Math.Max(0, list.Count - start)));
            long bytes = 0;
            for (var i = start; i < list.Count && envelopes.Count < maxCount; i++)
            {
                var envelope = list[i].EnvelopeBytes;
                if (envelopes.Count > 0 && bytes + envelope.Length > maxBytes)
                {
                    break;
                }

                bytes += envelope.Length;
                envelopes.Add(envelope);
            }

            lock (session.Gate)
            {
                ThrowIfEnded(session);
                for (var i = 0; i < envelopes.Count; i++)
                {
                    // Registered, and the holder's gate keeps it so: the count is above zero.
                    var stored = list[start + i];
                    stored.TryAddRef();
                    AddBorrowLocked(session, stored.Id);
                }
            }

            return new FetchPage([.. envelopes], list.Count);
        }
    }

    public int Unregister(ObjectId sessionToken, HolderAddress address, string key)
    {
        var session = RequireSession(sessionToken);
        var holder = ResolveHolder(address, session);
        List<StoredObject>? list;
        lock (holder.Gate)
        {
            ThrowIfDead(holder);
            if (!holder.Registry.Remove(key, out list))
            {
                return 0;
            }

            foreach (var stored in list)
            {
                if (stored.Release(1))
                {
                    FreeUnreferenced(stored);
                }
            }
        }

        WorkerLog.Unregistered(_logger, holder.Key.Namespace, holder.Key.Name, key, list.Count);
        return list.Count;
    }

    public IReadOnlyList<string> ListKeys(ObjectId sessionToken, HolderAddress address)
    {
        var session = RequireSession(sessionToken);
        var holder = ResolveHolder(address, session);
        lock (holder.Gate)
        {
            ThrowIfDead(holder);
            return [.. holder.Registry.Keys];
        }
    }

    // ---- Objects ----

    /// <summary>Checks, before any bytes arrive, that the owner of a put is alive; returns it.</summary>
    public ObjectOwner ResolvePutOwner(ObjectId sessionToken, HolderAddress? holderAddress)
    {
        var session = RequireSession(sessionToken);
        return holderAddress is { } address ? PutOwnerOf(address, session).AsOwner : session.AsOwner;
    }

    /// <summary>
    /// Seals a put: records the object under its owner (the holder at <paramref name="holder"/>, or the
    /// session when null) and lets the putting session borrow it. The caller reserved and filled the bytes;
    /// on failure it frees them.
    /// </summary>
    public StoredObject CommitPut(ObjectId sessionToken, HolderAddress? holder, StoredBytes bytes, ObjectCodec codec, string typeName, uint checksum)
    {
        var session = RequireSession(sessionToken);
        // For a stream the owner was checked before the bytes came; it may have died since.
        var owningHolder = holder is { } address ? PutOwnerOf(address, session) : null;
        OwnerState owner = owningHolder ?? session;
        var stored = new StoredObject(_ids.Next(), owner, bytes, codec, typeName, checksum);
        if (owningHolder is not null)
        {
            lock (owningHolder.Gate)
            {
                if (owningHolder.Dead)
                {
                    throw OwnerDied(null, owningHolder);
                }

                CommitLocked(session, stored);
            }
        }
        else
        {
            CommitLocked(session, stored);
        }

        // Committed: its bytes never change again, so from now on they may spill when no reader pins them.
        bytes.MarkSealed(stored.Id, checksum);
        WorkerLog.ObjectPut(_logger, stored.Id, bytes.Length, owner.AsOwner);
        return stored;
    }

    /// <summary>Resolves an envelope to the stored object, or throws the typed reason it cannot be had.</summary>
    public StoredObject Resolve(ObjectId sessionToken, RefEnvelope envelope)
    {
        RequireSession(sessionToken);
        return ResolveEnvelope(envelope);
    }

    public void Borrow(ObjectId sessionToken, IReadOnlyList<RefEnvelope> refs)
    {
        var session = RequireSession(sessionToken);
        var objects = new StoredObject[refs.Count];
        for (var i = 0; i < refs.Count; i++)
        {
            objects[i] = ResolveEnvelope(refs[i]);
        }

        List<StoredObject>? toFree = null;
        try
        {
            lock (session.Gate)
            {
                ThrowIfEnded(session);
                AddRefs(objects, ref toFree);
                foreach (var stored in objects)
                {
                    AddBorrowLocked(session, stored.Id);
                }
            }
        }
        finally
        {
            FreeAll(toFree);
        }
    }

    public void Release(ObjectId sessionToken, IEnumerable<ObjectId> ids)
    {
        var session = RequireSession(sessionToken);
        List<StoredObject>? toFree = null;
        List<ObjectId>? foreign = null;
        try
        {
            lock (session.Gate)
            {
                ThrowIfEnded(session);
                var borrows = session.Borrows;
                foreach (var id in ids)
                {
                    if (!borrows.TryGetValue(id, out var count))
                    {
                        // Not borrowed here: in a cluster, maybe borrowed on another worker through this one.
                        if (ForeignReleased is not null)
                        {
                            (foreign ??= []).Add(id);
                        }

                        continue;
                    }

                    if (count == 1)
                    {
                        borrows.Remove(id);
                    }
                    else
                    {
                        borrows[id] = count - 1;
                    }

                    if (Shard(id).TryGet(id, out var stored) && stored.Release(1))
                    {
                        (toFree ??= []).Add(stored);
                    }
                }

                TrimIfSparse(borrows);
            }
        }
        finally
        {
            // Outside the session's gate: freeing takes the owner's, which comes earlier in the lock order. In a
            // finally, so objects whose count reached zero are freed even if enumerating the ids throws midway.
            FreeAll(toFree);
            if (foreign is not null)
            {
                ForeignReleased!(session, foreign);
            }
        }
    }

    public GraphStats Stats() =>
        new(_store.UsedBytes, _store.CapacityBytes, Volatile.Read(ref _objectCount), _sessionsByToken.Count, _holders.Count, _store.SpilledBytes, _store.SpillCapacityBytes);

    // ---- Resolution ----

    private HolderState ResolveHolder(HolderAddress address, SessionState session)
    {
        var key = new HolderKey(ResolveNamespace(address.Namespace, session), ValidateName(address.Name, "holder name"));
        if (_holders.TryGetValue(key, out var holder) && (address.Incarnation is not { } pinned || pinned == holder.Incarnation))
        {
            return holder;
        }

        if (holder is null && HolderElsewhere(key, address.Incarnation) is { } elsewhere)
        {
            throw elsewhere;
        }

        if (address.Incarnation is { } incarnation)
        {
            var owner = new ObjectOwner(OwnerKind.Holder, key.Namespace, key.Name, incarnation);
            throw WorkerErrors.OwnerDied(null, owner,
                _tombstones.TryGetDeadOwner(owner, out var dead) && dead.DeathReason is { } why ? why
                : holder is null ? "no holder of that name is alive" : $"the live holder of that name is incarnation {holder.Incarnation}");
        }

        throw WorkerErrors.HolderNotFound(key.Namespace, key.Name);
    }

    /// <summary>The rows of ERRORS.md's "Precedence of checks", in order.</summary>
    private StoredObject ResolveEnvelope(RefEnvelope envelope)
    {
        var owner = envelope.Owner;
        if (envelope.Location.WorkerId != Identity.WorkerId)
        {
            throw WorkerErrors.ForeignWorker(envelope, Identity);
        }

        // What the worker knows of the id decides before what the envelope claims, so an altered owner
        // is never taken at its word.
        if (Shard(envelope.ObjectId).TryGet(envelope.ObjectId, out var stored))
        {
            if (!stored.Matches(envelope))
            {
                throw WorkerErrors.EnvelopeMismatch(envelope.ObjectId);
            }

            // Dead but not yet reclaimed: the flag, not the reclaim, decides.
            return stored.Owner.Dead ? throw OwnerDied(envelope.ObjectId, stored.Owner) : stored;
        }

        if (_tombstones.TryGetFreed(envelope.ObjectId, out var freedOwner))
        {
            if (freedOwner.AsOwner != owner)
            {
                throw WorkerErrors.EnvelopeMismatch(envelope.ObjectId);
            }

            throw freedOwner.Dead ? OwnerDied(envelope.ObjectId, freedOwner) : WorkerErrors.ObjectFreed(envelope.ObjectId);
        }

        throw _tombstones.TryGetDeadOwner(owner, out var dead)
            ? OwnerDied(envelope.ObjectId, dead)
            : WorkerErrors.ObjectNotFound(envelope.ObjectId);
    }

    private static WorkerException OwnerDied(ObjectId? objectId, OwnerState owner) =>
        WorkerErrors.OwnerDied(objectId, owner.AsOwner, owner.DeathReason
            ?? (owner.AsOwner.Kind == OwnerKind.Holder ? "the holder was killed or its session ended" : "the owning session ended"));

    private static WorkerException DeadHolder(HolderState holder) => OwnerDied(null, holder);

    private static void ThrowIfDead(HolderState holder)
    {
        if (holder.Dead)
        {
            throw DeadHolder(holder);
        }
    }

    /// <summary>A call that found its session before it ended, and reached its gate after.</summary>
    private static void ThrowIfEnded(SessionState session)
    {
        if (session.Dead)
        {
            throw WorkerErrors.SessionExpired();
        }
    }

    // ---- Reference counts (the callers hold the locks their comments name) ----

    /// <summary>Under the owner's gate (and, for a holder, not the session's yet): links, indexes and lends to the putter.</summary>
    private void CommitLocked(SessionState session, StoredObject stored)
    {
        lock (session.Gate)
        {
            ThrowIfEnded(session);
            if (ReferenceEquals(stored.Owner, session))
            {
                // A session-owned put: the session's gate is also the owner's.
                session.Link(stored);
            }
            else
            {
                stored.Owner.Link(stored);
            }

            Shard(stored.Id).Add(stored);
            Interlocked.Increment(ref _objectCount);
            AddBorrowLocked(session, stored.Id);
        }
    }

    private static void AddBorrowLocked(SessionState session, ObjectId id)
    {
        ref var count = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(session.Borrows, id, out _);
        count++;
    }

    /// <summary>Takes one reference on each object, or none: an object freed since it was resolved fails the call.</summary>
    private static void AddRefs(StoredObject[] objects, ref List<StoredObject>? toFree) => AddRefs(objects, null, ref toFree);

    /// <summary>As above, skipping the objects <paramref name="held"/> names (their reference is taken already).</summary>
    private static void AddRefs(StoredObject[] objects, StoredObject?[]? held, ref List<StoredObject>? toFree)
    {
        for (var i = 0; i < objects.Length; i++)
        {
            if (held?[i] is not null || objects[i].TryAddRef())
            {
                continue;
            }

            for (var j = 0; j < i; j++)
            {
                if (held?[j] is null && objects[j].Release(1))
                {
                    (toFree ??= []).Add(objects[j]);
                }
            }

            var gone = objects[i];
            throw gone.Owner.Dead ? OwnerDied(gone.Id, gone.Owner) : WorkerErrors.ObjectFreed(gone.Id);
        }
    }

    private void FreeAll(List<StoredObject>? objects)
    {
        if (objects is null)
        {
            return;
        }

        foreach (var stored in objects)
        {
            FreeUnreferenced(stored);
        }
    }

    /// <summary>Frees an object whose count reached zero. Takes the owner's gate (re-entered when the caller holds it).</summary>
    private void FreeUnreferenced(StoredObject stored)
    {
        if (!stored.TryMarkFreed())
        {
            return;
        }

        lock (stored.Owner.Gate)
        {
            stored.Owner.Unlink(stored);
        }

        if (stored.Owner is ForeignStore store)
        {
            // A placeholder: this worker's borrow on the storing worker goes back, unless the object is gone with it.
            Drop(stored, ErrorReasons.ObjectFreed);
            if (!store.Dead && store.LostReason is null)
            {
                PlaceholderFreed?.Invoke(store, stored.Id);
            }

            return;
        }

        // The tombstone first: a lookup that misses the index then finds it, and answers OBJECT_FREED, never NOT_FOUND.
        _tombstones.ObjectFreed(stored.Id, stored.Owner);
        Drop(stored, ErrorReasons.ObjectFreed);
    }

    /// <summary>Removes a freed object from the index and gives its bytes back to the store.</summary>
    private void Drop(StoredObject stored, string reason)
    {
        Shard(stored.Id).Remove(stored);
        if (!stored.IsPlaceholder)
        {
            Interlocked.Decrement(ref _objectCount);
        }

        stored.Bytes.Free();
        WorkerLog.ObjectFreed(_logger, stored.Id, stored.Bytes.Length, reason);
    }

    // ---- Death and reclaim ----

    /// <summary>Ends a session in O(1) under any lock; false when it had already ended.</summary>
    private bool EndSession(SessionState session, string why)
    {
        HolderState[] holders;
        lock (_gate)
        {
            if (!_sessionsByToken.TryRemove(new KeyValuePair<ObjectId, SessionState>(session.Token, session)))
            {
                return false;
            }

            holders = [.. session.OwnedHolders];
            session.OwnedHolders.Clear();
            foreach (var holder in holders)
            {
                _holders.TryRemove(new KeyValuePair<HolderKey, HolderState>(holder.Key, holder));
            }
        }

        foreach (var holder in holders)
        {
            Bury(holder, $"its session {session.Id} ended ({why})");
        }

        Bury(session, $"the owning session ended ({why})");
        SessionEnded?.Invoke(session);
        session.Transfers.Close();
        WorkerLog.SessionEnded(_logger, session.Id, why);
        return true;
    }

    /// <summary>Marks an owner, already unreachable by name, dead; queues its objects for reclaim. O(1).</summary>
    private long Bury(OwnerState owner, string why)
    {
        long owned;
        bool small;
        ForeignStore[]? stores = null;
        lock (owner.Gate)
        {
            if (!owner.Die(why))
            {
                return 0;
            }

            owned = owner.OwnedCount;
            small = owned + (owner is SessionState ended ? ended.Borrows.Count : 0) <= InlineReclaimMax;
            if (owner is HolderState { ForeignStores.Count: > 0 } withStores)
            {
                // Dead now, so no store is added after this: the placeholders go with the holder.
                stores = [.. withStores.ForeignStores.Values];
            }
        }

        if (owner is not ForeignStore)
        {
            // A foreign store shares its holder's name and incarnation: the holder's own tombstone speaks for both.
            _tombstones.OwnerDied(owner);
        }

        if (owner is HolderState holder)
        {
            WorkerLog.HolderKilled(_logger, holder.Key.Namespace, holder.Key.Name, holder.Incarnation, owned, why);
            foreach (var store in stores ?? [])
            {
                Bury(store, why);
            }

            HolderDied?.Invoke(holder);
        }

        if (small)
        {
            // A few hundred objects at most: reclaimed at once, so a small owner's objects and bytes are gone when the call returns.
            ReclaimNow(owner);
            return owned;
        }

        _dead.Enqueue(owner);
        if (Interlocked.CompareExchange(ref _reclaiming, 1, 0) == 0)
        {
            _ = Task.Run(ReclaimAsync);
        }

        return owned;
    }

    /// <summary>
    /// Frees dead owners' objects and drops dead sessions' borrows, <see cref="ReclaimBatch"/> at a time,
    /// pausing <see cref="ReclaimPause"/> between batches so that calls waiting for a lock or a core get it.
    /// </summary>
    private async Task ReclaimAsync()
    {
        while (true)
        {
            while (_dead.TryDequeue(out var owner))
            {
                try
                {
                    await ReclaimAsync(owner).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    // A bug here must not leave later owners unreclaimed; their objects already answer OWNER_DIED.
                    WorkerLog.ReclaimFailed(_logger, owner.AsOwner, ex);
                }
            }

            foreach (var shard in _index)
            {
                shard.TrimIfSparse();
            }

            // A full fence, not a release write: the queue is read below only after the flag's drop is visible, or a
            // concurrent Bury could both miss the flag's drop and be missed by this read (its owner never reclaimed).
            Interlocked.Exchange(ref _reclaiming, 0);
            // An owner queued after the loop saw the queue empty, but before the flag dropped, must not wait.
            if (_dead.IsEmpty || Interlocked.CompareExchange(ref _reclaiming, 1, 0) != 0)
            {
                return;
            }
        }
    }

    private async Task ReclaimAsync(OwnerState owner)
    {
        if (owner is SessionState session)
        {
            Dictionary<ObjectId, int> borrows;
            lock (session.Gate)
            {
                borrows = session.Borrows;
                session.Borrows = [];
            }

            // The dictionary is the reclaim's alone now: nothing else reaches a dead session's borrows.
            var done = 0;
            foreach (var (id, count) in borrows)
            {
                if (done % ReclaimBatch == 0)
                {
                    await YieldAsync(first: done == 0).ConfigureAwait(false);
                }

                done++;

                if (Shard(id).TryGet(id, out var stored) && stored.Release(count))
                {
                    FreeUnreferenced(stored);
                }
            }
        }
        else if (owner is HolderState holder)
        {
            lock (holder.Gate)
            {
                // Its registrations die with it: every object on it is the holder's own and freed below.
                holder.Registry = new(StringComparer.Ordinal);
            }
        }

        for (var first = true; ; first = false)
        {
            await YieldAsync(first).ConfigureAwait(false);
            List<StoredObject> batch;
            lock (owner.Gate)
            {
                batch = owner.TakeBatch(ReclaimBatch);
            }

            if (batch.Count == 0)
            {
                return;
            }

            foreach (var stored in batch)
            {
                if (stored.TryMarkFreed())
                {
                    Drop(stored, ErrorReasons.OwnerDied);
                }
            }
        }
    }

    /// <summary>Reclaims an owner of at most <see cref="InlineReclaimMax"/> objects and borrows, on the caller's thread.</summary>
    private void ReclaimNow(OwnerState owner)
    {
        if (owner is SessionState session)
        {
            Dictionary<ObjectId, int> borrows;
            lock (session.Gate)
            {
                borrows = session.Borrows;
                session.Borrows = [];
            }

            foreach (var (id, count) in borrows)
            {
                if (Shard(id).TryGet(id, out var stored) && stored.Release(count))
                {
                    FreeUnreferenced(stored);
                }
            }
        }

        List<StoredObject> batch;
        lock (owner.Gate)
        {
            if (owner is HolderState holder)
            {
                holder.Registry = new(StringComparer.Ordinal);
            }

            batch = owner.TakeBatch(InlineReclaimMax);
        }

        foreach (var stored in batch)
        {
            if (stored.TryMarkFreed())
            {
                Drop(stored, ErrorReasons.OwnerDied);
            }
        }
    }

    private async Task YieldAsync(bool first)
    {
        if (BeforeReclaimBatch is { } hook)
        {
            await hook().ConfigureAwait(false);
        }

        if (!first)
        {
            await Task.Delay(ReclaimPause).ConfigureAwait(false);
        }
    }

    private static void TrimIfSparse<TKey, TValue>(Dictionary<TKey, TValue> dictionary)
        where TKey : notnull
    {
        // Rebuilding costs O(count) under the caller's lock: only when the table is mostly empty and small.
        if (dictionary.Count <= 4096 && dictionary.Count * 4 < dictionary.EnsureCapacity(0) && dictionary.EnsureCapacity(0) > 64)
        {
            dictionary.TrimExcess();
        }
    }

    private IndexShard Shard(ObjectId id) => _index[(int)(id.GetHashCode() & 0x7fffffff) % IndexShards];

    /// <summary>One part of the id -> object index, with its own lock (the innermost but the tombstones').</summary>
    private sealed class IndexShard
    {
        private readonly Lock _gate = new();
        private readonly Dictionary<ObjectId, StoredObject> _objects = [];

        public bool TryGet(ObjectId id, out StoredObject stored)
        {
            lock (_gate)
            {
                return _objects.TryGetValue(id, out stored!);
            }
        }

        public void Add(StoredObject stored)
        {
            lock (_gate)
            {
                _objects.Add(stored.Id, stored);
            }
        }

        /// <summary>Removes <paramref name="stored"/> if the index still has it under its id (not a successor placeholder).</summary>
        public void Remove(StoredObject stored)
        {
            lock (_gate)
            {
                if (_objects.TryGetValue(stored.Id, out var indexed) && ReferenceEquals(indexed, stored))
                {
                    _objects.Remove(stored.Id);
                }
            }
        }

        /// <summary>Adds <paramref name="stored"/> unless its id is indexed already; returns the one indexed.</summary>
        public StoredObject GetOrAdd(StoredObject stored)
        {
            lock (_gate)
            {
                ref var slot = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_objects, stored.Id, out var exists);
                if (!exists)
                {
                    slot = stored;
                }

                return slot!;
            }
        }

        /// <summary>Puts <paramref name="successor"/> in the place of <paramref name="stored"/>.</summary>
        public void Replace(StoredObject stored, StoredObject successor)
        {
            lock (_gate)
            {
                if (_objects.TryGetValue(stored.Id, out var indexed) && ReferenceEquals(indexed, stored))
                {
                    _objects[stored.Id] = successor;
                }
                else
                {
                    _objects.TryAdd(successor.Id, successor);
                }
            }
        }

        public void TrimIfSparse()
        {
            lock (_gate)
            {
                OwnershipGraph.TrimIfSparse(_objects);
            }
        }
    }

    private static string ResolveNamespace(string ns, SessionState session) =>
        string.IsNullOrEmpty(ns) ? session.Namespace : ValidateName(ns, "namespace");

    private static string NormalizeNamespace(string ns) =>
        string.IsNullOrEmpty(ns) ? DefaultNamespace : ValidateName(ns, "namespace");

    private static string ValidateName(string value, string what) =>
        NameRules.Problem(value, what) is { } problem ? throw WorkerErrors.InvalidRequest(problem) : value;

    /// <summary>Monotonic milliseconds on the worker's clock (<see cref="TimeProvider"/>, so tests can drive leases).</summary>
    private long NowMillis() => (long)((double)_time.GetTimestamp() * 1000 / _time.TimestampFrequency);
}
