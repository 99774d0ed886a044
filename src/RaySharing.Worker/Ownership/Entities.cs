using RaySharing.Wire;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>A holder's identity within a worker: namespace and name.</summary>
internal readonly record struct HolderKey(string Namespace, string Name);

/// <summary>How a request names a holder; a null incarnation means "the live one".</summary>
internal readonly record struct HolderAddress(string Namespace, string Name, ObjectId? Incarnation);

/// <summary>Whether a holder lives until killed or until its creating session ends.</summary>
internal enum HolderLifetimeKind
{
    Detached,
    Session,
}

/// <summary>A point-in-time copy of a holder's state, safe to use outside the graph's locks.</summary>
/// <summary>A holder as a call reports it; <paramref name="Location"/> names the worker that hosts it (in a cluster, maybe another).</summary>
internal readonly record struct HolderSnapshot(HolderKey Key, ObjectId Incarnation, HolderLifetimeKind Lifetime, long OwnedObjects, int Keys, WorkerLocation Location);

/// <summary>Counts reported by the Stats call.</summary>
internal readonly record struct GraphStats(long UsedBytes, long CapacityBytes, long Objects, int Sessions, int Holders, long SpilledBytes, long SpillCapacityBytes);

/// <summary>
/// Something that owns objects: a holder incarnation or a session. Its objects form an intrusive list
/// (two references per object instead of a set entry), which the background reclaim walks after death.
/// </summary>
/// <remarks>
/// <see cref="Gate"/> guards the list, <see cref="OwnedCount"/> and whatever the subclass says. Death is
/// one flag set under it: every resolution reads the flag, so an owner's death costs O(1) under any lock.
/// </remarks>
internal abstract class OwnerState(ObjectOwner owner, WorkerLocation location)
{
    private volatile string? _deathReason;
    private StoredObject? _head;
    private long _ownedCount;

    public Lock Gate { get; } = new();

    public ObjectOwner AsOwner { get; } = owner;

    /// <summary>Where this owner's objects live; every envelope of them names it.</summary>
    public WorkerLocation Location { get; } = location;

    /// <summary>True once the owner died; never false again.</summary>
    public bool Dead => _deathReason is not null;

    /// <summary>Why the owner died, for OWNER_DIED messages; null while alive.</summary>
    public string? DeathReason => _deathReason;

    public long OwnedCount => Volatile.Read(ref _ownedCount);

    /// <summary>Marks the owner dead (under <see cref="Gate"/>); false when it already was.</summary>
    public bool Die(string why)
    {
        if (_deathReason is not null)
        {
            return false;
        }

        _deathReason = why;
        return true;
    }

    /// <summary>Adds an object to the owner's list (under <see cref="Gate"/>).</summary>
    public void Link(StoredObject stored)
    {
        stored.Next = _head;
        if (_head is not null)
        {
            _head.Prev = stored;
        }

        _head = stored;
        Volatile.Write(ref _ownedCount, _ownedCount + 1);
    }

    /// <summary>Removes an object from the owner's list if it is still on it (under <see cref="Gate"/>).</summary>
    public void Unlink(StoredObject stored)
    {
        if (stored.Prev is null && !ReferenceEquals(_head, stored))
        {
            return;
        }

        if (stored.Prev is null)
        {
            _head = stored.Next;
        }
        else
        {
            stored.Prev.Next = stored.Next;
        }

        if (stored.Next is not null)
        {
            stored.Next.Prev = stored.Prev;
        }

        stored.Prev = null;
        stored.Next = null;
        Volatile.Write(ref _ownedCount, _ownedCount - 1);
    }

    /// <summary>Takes up to <paramref name="max"/> objects off the list (under <see cref="Gate"/>); empty when none are left.</summary>
    public List<StoredObject> TakeBatch(int max)
    {
        var batch = new List<StoredObject>(Math.Min(max, (int)Math.Min(int.MaxValue, _ownedCount)));
        while (_head is { } stored && batch.Count < max)
        {
            Unlink(stored);
            batch.Add(stored);
        }

        return batch;
    }
}

internal sealed class SessionState(ObjectId id, ObjectId token, string ns, string clientName, TimeSpan lease, long expiresAtMillis, WorkerLocation location)
    : OwnerState(new ObjectOwner(OwnerKind.Session, ns, string.Empty, id), location)
{
    private long _expiresAtMillis = expiresAtMillis;

    /// <summary>Public: envelopes of the session's own objects name it.</summary>
    public ObjectId Id { get; } = id;

    /// <summary>Secret: the credential every call of the session presents.</summary>
    public ObjectId Token { get; } = token;

    public string Namespace { get; } = ns;

    public string ClientName { get; } = clientName;

    public TimeSpan Lease { get; } = lease;

    /// <summary>Renewed by every call, without a lock.</summary>
    public long ExpiresAtMillis
    {
        get => Volatile.Read(ref _expiresAtMillis);
        set => Volatile.Write(ref _expiresAtMillis, value);
    }

    /// <summary>
    /// Borrow counts by object (under <see cref="OwnerState.Gate"/>): one per ref the session put, fetched or
    /// rebuilt and has not released. Handed whole to the background reclaim when the session ends.
    /// </summary>
    public Dictionary<ObjectId, int> Borrows { get; set; } = [];

    /// <summary>What the session pins, writes and may read once in the store between calls.</summary>
    public SessionTransfers Transfers { get; } = new();

    /// <summary>Set (under <see cref="OwnerState.Gate"/>) once the session proved it maps the arena: it is on the worker's host.</summary>
    public bool SharedMemoryAttached { get; set; }

    /// <summary>Secret: the 32 bytes the session's channel HELLO presents beside its token.</summary>
    public byte[] ChannelKey { get; } = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);

    /// <summary>Session-lifetime holders the session created (under the graph's lock): they die with it.</summary>
    public List<HolderState> OwnedHolders { get; } = [];
}

internal sealed class HolderState(HolderKey key, ObjectId incarnation, HolderLifetimeKind lifetime, SessionState creator, WorkerLocation location)
    : OwnerState(new ObjectOwner(OwnerKind.Holder, key.Namespace, key.Name, incarnation), location)
{
    public HolderKey Key { get; } = key;

    public ObjectId Incarnation { get; } = incarnation;

    public HolderLifetimeKind Lifetime { get; } = lifetime;

    public SessionState CreatorSession { get; } = creator;

    /// <summary>key -> ordered list of registered objects (under <see cref="OwnerState.Gate"/>). An object may appear more than once.</summary>
    public Dictionary<string, List<StoredObject>> Registry { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// In a cluster, the other workers that store objects of this holder (sessions there put them), by worker id
    /// (under <see cref="OwnerState.Gate"/>): each keeps placeholders of the registered ones, and hears of the death.
    /// </summary>
    public Dictionary<ObjectId, ForeignStore> ForeignStores { get; } = [];

    public HolderSnapshot Snapshot() => new(Key, Incarnation, Lifetime, OwnedCount, Registry.Count, Location);
}

/// <summary>
/// On the worker that stores them: a holder of another worker of the cluster as the owner of objects its sessions put
/// here for it. Envelopes name the holder as owner and this worker as location; the proxy dies when the holder does
/// (its worker says so, or the directory shows it gone), and its objects are freed with it.
/// </summary>
internal sealed class HolderProxy(HolderSnapshot holder, WorkerLocation here)
    : OwnerState(new ObjectOwner(OwnerKind.Holder, holder.Key.Namespace, holder.Key.Name, holder.Incarnation), here)
{
    public HolderKey Key { get; } = holder.Key;

    public ObjectId Incarnation { get; } = holder.Incarnation;

    /// <summary>The worker that hosts the holder.</summary>
    public WorkerLocation HolderWorker { get; } = holder.Location;

    private volatile bool _attached;

    /// <summary>True once the holder's worker acknowledged that this worker stores its objects (it will send the holder's death).</summary>
    public bool Attached
    {
        get => _attached;
        set => _attached = value;
    }
}

/// <summary>
/// On the holder's worker: the objects of one holder that another worker stores, as placeholders that only name
/// where they are (their bytes stay there). A placeholder exists while it is registered or borrowed here, and for
/// that time this worker holds one borrow of the object on the storing worker.
/// </summary>
internal sealed class ForeignStore(HolderState holder, WorkerLocation storing)
    : OwnerState(holder.AsOwner, storing)
{
    private volatile string? _lostReason;

    public HolderState Holder { get; } = holder;

    /// <summary>Why the storing worker's objects are lost (it died while the holder lives); null while they are not.</summary>
    public string? LostReason => _lostReason;

    /// <summary>Marks the objects lost; they stay registered, and gets of them answer OBJECT_LOST.</summary>
    public void MarkLost(string why) => _lostReason ??= why;
}

/// <summary>
/// One stored object. Kept small, since a worker holds millions: the owner is a reference (its name and
/// location are the owner's), the envelope is encoded when asked for rather than kept, and the bytes are
/// one reference.
/// </summary>
internal sealed class StoredObject(ObjectId id, OwnerState owner, StoredBytes bytes, ObjectCodec codec, string typeName, uint checksum)
{
    private int _refs = 1;
    private int _freed;

    public ObjectId Id { get; } = id;

    public OwnerState Owner { get; } = owner;

    /// <summary>The bytes in the store; freed with the object, given back to the arena when no reader holds them.</summary>
    public StoredBytes Bytes { get; } = bytes;

    public ObjectCodec Codec { get; } = codec;

    public string TypeName { get; } = typeName;

    public uint Checksum { get; } = checksum;

    /// <summary>Neighbours on the owner's list (under the owner's gate).</summary>
    public StoredObject? Prev { get; set; }

    public StoredObject? Next { get; set; }

    /// <summary>True for a placeholder of an object another worker stores (<see cref="ForeignStore"/>): no bytes here.</summary>
    public bool IsPlaceholder => Owner is ForeignStore;

    /// <summary>Registrations plus borrows; the object is born with its putter's borrow.</summary>
    public int Refs => Volatile.Read(ref _refs);

    public bool Freed => Volatile.Read(ref _freed) != 0;

    /// <summary>The envelope as the worker issued it. Encoded on each read: not keeping it saves about 130 B per object.</summary>
    public byte[] EnvelopeBytes => EnvelopeCodec.Encode(new RefEnvelope
    {
        ObjectId = Id,
        Owner = Owner.AsOwner,
        Location = Owner.Location,
        Size = Bytes.Length,
        Codec = Codec,
        TypeName = TypeName,
        Checksum = Checksum,
    });

    /// <summary>Takes one more reference, unless the count already reached zero (the object is being freed).</summary>
    public bool TryAddRef() => RefCount.TryIncrement(ref _refs);

    /// <summary>Drops references; true when that left none, and the caller must free the object.</summary>
    public bool Release(int count) => Interlocked.Add(ref _refs, -count) == 0;

    /// <summary>True for exactly one caller: the one that frees the object.</summary>
    public bool TryMarkFreed() => Interlocked.Exchange(ref _freed, 1) == 0;

    /// <summary>
    /// True when an envelope describes this object as the worker issued it. Compared field by field, not
    /// byte by byte: another language may encode the same envelope with wider MessagePack forms. The
    /// location's address and the integrity tag are not compared: version-1 readers carry the tag along
    /// uninterpreted (ENVELOPE.md), and the worker id is checked before this.
    /// </summary>
    public bool Matches(RefEnvelope envelope) =>
        envelope.ObjectId == Id
        && envelope.Owner == Owner.AsOwner
        && envelope.Size == Bytes.Length
        && envelope.Codec == Codec
        && envelope.TypeName == TypeName
        && envelope.Checksum == Checksum;
}
