using Microsoft.Extensions.Logging;
using RaySharing.Protocol;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// Sessions, holders and objects, and who owns and borrows what. This is where the lifetime rules of
/// DESIGN.md live: an object lives while it is registered or borrowed; an owner's death frees all it owns.
/// </summary>
/// <remarks>
/// One lock guards the whole graph. Almost every operation crosses entities (a fetch touches a holder,
/// its objects and a session; a session's end touches holders and objects), each is a few dictionary
/// operations, and bytes are never copied under it, so one lock is both simplest to prove correct and
/// cheap. It also gives the actor guarantee: calls on one holder are serialized.
/// </remarks>
internal sealed class OwnershipGraph
{
    private const string DefaultNamespace = "default";

    private readonly Lock _gate = new();
    private readonly Dictionary<ObjectId, SessionState> _sessions = [];
    private readonly Dictionary<ObjectId, SessionState> _sessionsByToken = [];
    private readonly Dictionary<HolderKey, HolderState> _holders = [];
    private readonly Dictionary<ObjectId, StoredObject> _objects = [];
    private readonly Tombstones _tombstones;
    private readonly ObjectIdGenerator _ids = new();
    private readonly ObjectStore _store;
    private readonly WorkerOptions _options;
    private readonly ILogger _logger;

    public OwnershipGraph(WorkerIdentity identity, ObjectStore store, WorkerOptions options, ILogger<OwnershipGraph> logger)
    {
        Identity = identity;
        _store = store;
        _options = options;
        // Logging happens in the middle of multi-step updates; a failing log provider must not cut one short.
        _logger = new GuardedLogger(logger);
        _tombstones = new Tombstones(options.TombstoneCapacity);
    }

    public WorkerIdentity Identity { get; }

    // ---- Sessions ----

    public SessionState OpenSession(string ns, TimeSpan requestedLease, string clientName)
    {
        ns = NormalizeNamespace(ns);
        var lease = requestedLease <= TimeSpan.Zero
            ? _options.DefaultLease
            : TimeSpan.FromTicks(Math.Clamp(requestedLease.Ticks, _options.MinLease.Ticks, _options.MaxLease.Ticks));
        var session = new SessionState(ObjectId.NewId(), ObjectId.NewId(), ns, clientName, lease, NowMillis() + (long)lease.TotalMilliseconds);
        lock (_gate)
        {
            _sessions.Add(session.Id, session);
            _sessionsByToken.Add(session.Token, session);
        }

        WorkerLog.SessionOpened(_logger, session.Id, ns, clientName, lease.TotalMilliseconds);
        return session;
    }

    public TimeSpan KeepAlive(ObjectId sessionToken)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            session.ExpiresAtMillis = NowMillis() + (long)session.Lease.TotalMilliseconds;
            return session.Lease;
        }
    }

    public SessionState RequireSession(ObjectId sessionToken)
    {
        lock (_gate)
        {
            return RequireSessionLocked(sessionToken);
        }
    }

    public void CloseSession(ObjectId sessionToken)
    {
        lock (_gate)
        {
            if (_sessionsByToken.TryGetValue(sessionToken, out var session))
            {
                EndSessionLocked(session, "closed");
            }
        }
    }

    /// <summary>Ends every session whose lease has lapsed; returns how many.</summary>
    public int ExpireLapsedSessions()
    {
        var now = NowMillis();
        lock (_gate)
        {
            List<SessionState>? lapsed = null;
            foreach (var session in _sessions.Values)
            {
                if (session.ExpiresAtMillis < now)
                {
                    (lapsed ??= []).Add(session);
                }
            }

            if (lapsed is null)
            {
                return 0;
            }

            foreach (var session in lapsed)
            {
                EndSessionLocked(session, "lease lapsed");
            }

            return lapsed.Count;
        }
    }

    // ---- Holders ----

    public (HolderSnapshot Holder, bool Created) GetOrCreateHolder(ObjectId sessionToken, string ns, string name, HolderLifetimeKind lifetime)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var key = new HolderKey(ResolveNamespace(ns, session), ValidateName(name, "holder name"));
            if (_holders.TryGetValue(key, out var existing))
            {
                return (existing.Snapshot(), false);
            }

            var holder = new HolderState(key, ObjectId.NewId(), lifetime, session.Id);
            _holders.Add(key, holder);
            if (lifetime == HolderLifetimeKind.Session)
            {
                session.OwnedHolders.Add(holder);
            }

            WorkerLog.HolderCreated(_logger, key.Namespace, key.Name, holder.Incarnation, lifetime.ToString(), session.Id);
            return (holder.Snapshot(), true);
        }
    }

    public HolderSnapshot GetHolder(ObjectId sessionToken, string ns, string name)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var key = new HolderKey(ResolveNamespace(ns, session), ValidateName(name, "holder name"));
            return _holders.TryGetValue(key, out var holder)
                ? holder.Snapshot()
                : throw WorkerErrors.HolderNotFound(key.Namespace, key.Name);
        }
    }

    public IReadOnlyList<HolderSnapshot> ListHolders(ObjectId sessionToken, string ns)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var resolved = ResolveNamespace(ns, session);
            return _holders.Values.Where(h => h.Key.Namespace == resolved).Select(h => h.Snapshot()).ToList();
        }
    }

    public long KillHolder(ObjectId sessionToken, HolderAddress address)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var holder = ResolveHolderLocked(address, session);
            return KillHolderLocked(holder, $"killed by session {session.Id}");
        }
    }

    public int Register(ObjectId sessionToken, HolderAddress address, string key, IReadOnlyList<RefEnvelope> refs)
    {
        ValidateName(key, "key");
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var holder = ResolveHolderLocked(address, session);

            // Check every ref before changing anything, so a bad ref leaves the registry as it was.
            var objects = new StoredObject[refs.Count];
            for (var i = 0; i < refs.Count; i++)
            {
                var stored = ResolveLocked(refs[i]);
                if (stored.Owner != holder.AsOwner)
                {
                    throw WorkerErrors.NotOwner(stored.Id, stored.Owner, holder.Key);
                }

                objects[i] = stored;
            }

            if (!holder.Registry.TryGetValue(key, out var list))
            {
                list = new List<StoredObject>(objects.Length);
                holder.Registry.Add(key, list);
            }

            foreach (var stored in objects)
            {
                stored.Registrations++;
                list.Add(stored);
            }

            WorkerLog.Registered(_logger, holder.Key.Namespace, holder.Key.Name, key, objects.Length, list.Count);
            return list.Count;
        }
    }

    /// <summary>Returns the encoded envelopes under a key; the session borrows each ref.</summary>
    public byte[][] Fetch(ObjectId sessionToken, HolderAddress address, string key)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var holder = ResolveHolderLocked(address, session);
            if (!holder.Registry.TryGetValue(key, out var list))
            {
                throw WorkerErrors.KeyNotFound(holder.Key, key);
            }

            var envelopes = new byte[list.Count][];
            for (var i = 0; i < list.Count; i++)
            {
                var stored = list[i];
                BorrowLocked(session, stored);
                envelopes[i] = stored.EnvelopeBytes;
            }

            return envelopes;
        }
    }

    public int Unregister(ObjectId sessionToken, HolderAddress address, string key)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var holder = ResolveHolderLocked(address, session);
            if (!holder.Registry.Remove(key, out var list))
            {
                return 0;
            }

            foreach (var stored in list)
            {
                stored.Registrations--;
                FreeIfUnreferencedLocked(stored);
            }

            WorkerLog.Unregistered(_logger, holder.Key.Namespace, holder.Key.Name, key, list.Count);
            return list.Count;
        }
    }

    public IReadOnlyList<string> ListKeys(ObjectId sessionToken, HolderAddress address)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            return [.. ResolveHolderLocked(address, session).Registry.Keys];
        }
    }

    // ---- Objects ----

    /// <summary>Checks, before any bytes arrive, that the owner of a put is alive; returns it.</summary>
    public ObjectOwner ResolvePutOwner(ObjectId sessionToken, HolderAddress? holderAddress)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            return holderAddress is { } address ? ResolveHolderLocked(address, session).AsOwner : session.AsOwner;
        }
    }

    /// <summary>
    /// Seals a put: records the object under its owner (the holder at <paramref name="holder"/>, or the
    /// session when null) and lets the putting session borrow it, all under one lock. The caller has
    /// reserved the space; on failure it releases it.
    /// </summary>
    public StoredObject CommitPut(ObjectId sessionToken, HolderAddress? holder, ObjectData data, ObjectCodec codec, string typeName, uint checksum)
    {
        var id = _ids.Next();
        // A put pinned to a holder incarnation names its owner fully, so the envelope is encoded before
        // taking the lock, which 32 concurrent putters then hold for less time. The lock still decides
        // whether that owner is alive.
        var prepared = holder is { Incarnation: { } incarnation } pinned
            && pinned.Namespace.Length > 0
            && NameRules.Problem(pinned.Namespace, "namespace") is null
            && NameRules.Problem(pinned.Name, "holder name") is null
                ? Prepare(id, new ObjectOwner(OwnerKind.Holder, pinned.Namespace, pinned.Name, incarnation), data, codec, typeName, checksum)
                : null;

        StoredObject stored;
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            // For a stream the owner was checked before the bytes came; it may have died since.
            var owningHolder = holder is { } address ? ResolveHolderLocked(address, session) : null;
            stored = prepared ?? Prepare(id, owningHolder?.AsOwner ?? session.AsOwner, data, codec, typeName, checksum);
            if (owningHolder is not null)
            {
                owningHolder.Owned.Add(id);
            }
            else
            {
                session.OwnedObjects.Add(id);
            }

            _objects.Add(id, stored);
            BorrowLocked(session, stored);
        }

        WorkerLog.ObjectPut(_logger, stored.Id, data.Length, stored.Owner);
        return stored;
    }

    private StoredObject Prepare(ObjectId id, ObjectOwner owner, ObjectData data, ObjectCodec codec, string typeName, uint checksum)
    {
        var envelope = new RefEnvelope
        {
            ObjectId = id,
            Owner = owner,
            Location = Identity.Location,
            Size = data.Length,
            Codec = codec,
            TypeName = typeName,
            Checksum = checksum,
        };
        return new StoredObject(id, owner, data, codec, typeName, checksum, EnvelopeCodec.Encode(envelope));
    }

    /// <summary>Resolves an envelope to the stored object, or throws the typed reason it cannot be had.</summary>
    public StoredObject Resolve(ObjectId sessionToken, RefEnvelope envelope)
    {
        lock (_gate)
        {
            RequireSessionLocked(sessionToken);
            return ResolveLocked(envelope);
        }
    }

    public void Borrow(ObjectId sessionToken, IReadOnlyList<RefEnvelope> refs)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            var objects = new StoredObject[refs.Count];
            for (var i = 0; i < refs.Count; i++)
            {
                objects[i] = ResolveLocked(refs[i]);
            }

            foreach (var stored in objects)
            {
                BorrowLocked(session, stored);
            }
        }
    }

    public void Release(ObjectId sessionToken, IEnumerable<ObjectId> ids)
    {
        lock (_gate)
        {
            var session = RequireSessionLocked(sessionToken);
            foreach (var id in ids)
            {
                if (!session.Borrows.TryGetValue(id, out var count))
                {
                    continue;
                }

                if (count == 1)
                {
                    session.Borrows.Remove(id);
                }
                else
                {
                    session.Borrows[id] = count - 1;
                }

                if (_objects.TryGetValue(id, out var stored))
                {
                    stored.Borrows--;
                    FreeIfUnreferencedLocked(stored);
                }
            }
        }
    }

    public GraphStats Stats()
    {
        lock (_gate)
        {
            return new GraphStats(_store.UsedBytes, _store.CapacityBytes, _objects.Count, _sessions.Count, _holders.Count);
        }
    }

    // ---- Internals (all called under _gate) ----

    /// <summary>The caller's live session. Every call renews its lease: a busy session is plainly alive.</summary>
    private SessionState RequireSessionLocked(ObjectId sessionToken)
    {
        if (!_sessionsByToken.TryGetValue(sessionToken, out var session))
        {
            throw WorkerErrors.SessionExpired();
        }

        session.ExpiresAtMillis = NowMillis() + (long)session.Lease.TotalMilliseconds;
        return session;
    }

    private HolderState ResolveHolderLocked(HolderAddress address, SessionState session)
    {
        var key = new HolderKey(ResolveNamespace(address.Namespace, session), ValidateName(address.Name, "holder name"));
        if (_holders.TryGetValue(key, out var holder) && (address.Incarnation is not { } pinned || pinned == holder.Incarnation))
        {
            return holder;
        }

        if (address.Incarnation is { } incarnation)
        {
            throw WorkerErrors.OwnerDied(null, new ObjectOwner(OwnerKind.Holder, key.Namespace, key.Name, incarnation),
                holder is null ? "no holder of that name is alive" : $"the live holder of that name is incarnation {holder.Incarnation}");
        }

        throw WorkerErrors.HolderNotFound(key.Namespace, key.Name);
    }

    private StoredObject ResolveLocked(RefEnvelope envelope)
    {
        var owner = envelope.Owner;
        if (envelope.Location.WorkerId != Identity.WorkerId)
        {
            // One worker per directory today: an envelope from another worker instance names one that has
            // restarted (or a stranger), and its owner died with it.
            throw WorkerErrors.OwnerDied(envelope.ObjectId, owner, $"its worker {envelope.Location.WorkerId} at {envelope.Location.Address} is not running; this worker is {Identity.WorkerId}");
        }

        // From here on, the order of ERRORS.md's "Precedence of checks": what the worker knows of the id
        // decides before what the envelope claims, so an altered owner is never taken at its word.
        if (_objects.TryGetValue(envelope.ObjectId, out var stored))
        {
            if (!stored.Matches(envelope))
            {
                throw WorkerErrors.EnvelopeMismatch(envelope.ObjectId);
            }

            return OwnerAliveLocked(stored.Owner)
                ? stored
                : throw OwnerDiedLocked(envelope.ObjectId, stored.Owner);
        }

        if (_tombstones.TryGetFreed(envelope.ObjectId, out var freedOwner))
        {
            if (freedOwner != owner)
            {
                throw WorkerErrors.EnvelopeMismatch(envelope.ObjectId);
            }

            throw OwnerAliveLocked(freedOwner)
                ? WorkerErrors.ObjectFreed(envelope.ObjectId)
                : OwnerDiedLocked(envelope.ObjectId, freedOwner);
        }

        throw _tombstones.TryGetDeadOwner(owner, out var why)
            ? WorkerErrors.OwnerDied(envelope.ObjectId, owner, why)
            : WorkerErrors.ObjectNotFound(envelope.ObjectId);
    }

    private bool OwnerAliveLocked(in ObjectOwner owner) => owner.Kind == OwnerKind.Holder
        ? _holders.TryGetValue(new HolderKey(owner.Namespace, owner.Name), out var holder) && holder.Incarnation == owner.Incarnation
        : _sessions.TryGetValue(owner.Incarnation, out var session) && session.Namespace == owner.Namespace;

    private WorkerException OwnerDiedLocked(ObjectId objectId, in ObjectOwner owner) =>
        WorkerErrors.OwnerDied(objectId, owner, _tombstones.TryGetDeadOwner(owner, out var why)
            ? why
            : owner.Kind == OwnerKind.Holder ? "the holder was killed or its session ended" : "the owning session ended");

    private static void BorrowLocked(SessionState session, StoredObject stored)
    {
        stored.Borrows++;
        session.Borrows[stored.Id] = session.Borrows.GetValueOrDefault(stored.Id) + 1;
    }

    private void FreeIfUnreferencedLocked(StoredObject stored)
    {
        if (stored.Registrations == 0 && stored.Borrows == 0)
        {
            FreeLocked(stored, ErrorReasons.ObjectFreed);
            _tombstones.ObjectFreed(stored.Id, stored.Owner);
            if (stored.Owner.Kind == OwnerKind.Holder)
            {
                if (_holders.TryGetValue(new HolderKey(stored.Owner.Namespace, stored.Owner.Name), out var holder) && holder.Incarnation == stored.Owner.Incarnation)
                {
                    holder.Owned.Remove(stored.Id);
                }
            }
            else if (_sessions.TryGetValue(stored.Owner.Incarnation, out var owner))
            {
                owner.OwnedObjects.Remove(stored.Id);
            }
        }
    }

    private void FreeLocked(StoredObject stored, string reason)
    {
        if (stored.Freed)
        {
            return;
        }

        stored.Freed = true;
        _objects.Remove(stored.Id);
        _store.Release(stored.Data.Length);
        WorkerLog.ObjectFreed(_logger, stored.Id, stored.Data.Length, reason);
    }

    private long KillHolderLocked(HolderState holder, string why)
    {
        _holders.Remove(holder.Key);
        _tombstones.OwnerDied(holder.AsOwner, why);
        long freed = 0;
        foreach (var id in holder.Owned)
        {
            if (_objects.TryGetValue(id, out var stored))
            {
                FreeLocked(stored, ErrorReasons.OwnerDied);
                freed++;
            }
        }

        holder.Owned.Clear();
        holder.Registry.Clear();
        if (holder.Lifetime == HolderLifetimeKind.Session && _sessions.TryGetValue(holder.CreatorSession, out var creator))
        {
            creator.OwnedHolders.Remove(holder);
        }

        WorkerLog.HolderKilled(_logger, holder.Key.Namespace, holder.Key.Name, holder.Incarnation, freed, why);
        return freed;
    }

    private void EndSessionLocked(SessionState session, string why)
    {
        _sessions.Remove(session.Id);
        _sessionsByToken.Remove(session.Token);
        _tombstones.OwnerDied(session.AsOwner, $"the owning session ended ({why})");
        foreach (var (id, count) in session.Borrows)
        {
            if (_objects.TryGetValue(id, out var stored))
            {
                stored.Borrows -= count;
                FreeIfUnreferencedLocked(stored);
            }
        }

        session.Borrows.Clear();
        foreach (var id in session.OwnedObjects)
        {
            if (_objects.TryGetValue(id, out var stored))
            {
                FreeLocked(stored, ErrorReasons.OwnerDied);
            }
        }

        session.OwnedObjects.Clear();
        foreach (var holder in session.OwnedHolders.ToArray())
        {
            KillHolderLocked(holder, $"its session {session.Id} ended ({why})");
        }

        WorkerLog.SessionEnded(_logger, session.Id, why);
    }

    private static string ResolveNamespace(string ns, SessionState session) =>
        string.IsNullOrEmpty(ns) ? session.Namespace : ValidateName(ns, "namespace");

    private static string NormalizeNamespace(string ns) =>
        string.IsNullOrEmpty(ns) ? DefaultNamespace : ValidateName(ns, "namespace");

    private static string ValidateName(string value, string what) =>
        NameRules.Problem(value, what) is { } problem ? throw WorkerErrors.InvalidRequest(problem) : value;

    private static long NowMillis() => Environment.TickCount64;
}
