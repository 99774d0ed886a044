using RaySharing.Protocol;
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

/// <summary>A point-in-time copy of a holder's state, safe to use outside the graph's lock.</summary>
internal readonly record struct HolderSnapshot(HolderKey Key, ObjectId Incarnation, HolderLifetimeKind Lifetime, long OwnedObjects, int Keys);

/// <summary>Counts reported by the Stats call.</summary>
internal readonly record struct GraphStats(long UsedBytes, long CapacityBytes, long Objects, int Sessions, int Holders);

// The entities below are mutated only under OwnershipGraph's lock.

internal sealed class SessionState(ObjectId id, ObjectId token, string ns, string clientName, TimeSpan lease, long expiresAtMillis)
{
    /// <summary>Public: envelopes of the session's own objects name it.</summary>
    public ObjectId Id { get; } = id;

    /// <summary>Secret: the credential every call of the session presents.</summary>
    public ObjectId Token { get; } = token;

    public string Namespace { get; } = ns;

    public string ClientName { get; } = clientName;

    public TimeSpan Lease { get; } = lease;

    public long ExpiresAtMillis { get; set; } = expiresAtMillis;

    /// <summary>Borrow counts by object: one per ref the session put, fetched or rebuilt and has not released.</summary>
    public Dictionary<ObjectId, int> Borrows { get; } = [];

    /// <summary>Objects the session put without an owner: they die with it.</summary>
    public HashSet<ObjectId> OwnedObjects { get; } = [];

    /// <summary>Session-lifetime holders the session created: they die with it.</summary>
    public List<HolderState> OwnedHolders { get; } = [];

    public ObjectOwner AsOwner => new(OwnerKind.Session, Namespace, string.Empty, Id);
}

internal sealed class HolderState(HolderKey key, ObjectId incarnation, HolderLifetimeKind lifetime, ObjectId creator)
{
    public HolderKey Key { get; } = key;

    public ObjectId Incarnation { get; } = incarnation;

    public HolderLifetimeKind Lifetime { get; } = lifetime;

    public ObjectId CreatorSession { get; } = creator;

    /// <summary>key -> ordered list of registered objects. An object may appear more than once.</summary>
    public Dictionary<string, List<StoredObject>> Registry { get; } = new(StringComparer.Ordinal);

    public HashSet<ObjectId> Owned { get; } = [];

    public ObjectOwner AsOwner => new(OwnerKind.Holder, Key.Namespace, Key.Name, Incarnation);

    public HolderSnapshot Snapshot() => new(Key, Incarnation, Lifetime, Owned.Count, Registry.Count);
}

internal sealed class StoredObject(ObjectId id, ObjectOwner owner, ObjectData data, ObjectCodec codec, string typeName, uint checksum, byte[] envelopeBytes)
{
    public ObjectId Id { get; } = id;

    public ObjectOwner Owner { get; } = owner;

    public ObjectData Data { get; } = data;

    public ObjectCodec Codec { get; } = codec;

    public string TypeName { get; } = typeName;

    public uint Checksum { get; } = checksum;

    /// <summary>The encoded envelope, built once at put and handed out by every fetch.</summary>
    public byte[] EnvelopeBytes { get; } = envelopeBytes;

    /// <summary>How many registry entries name this object.</summary>
    public int Registrations { get; set; }

    /// <summary>The sum of all sessions' borrow counts of this object.</summary>
    public int Borrows { get; set; }

    public bool Freed { get; set; }

    /// <summary>
    /// True when an envelope describes this object as the worker issued it. Compared field by field, not
    /// byte by byte: another language may encode the same envelope with wider MessagePack forms. The
    /// location's address and the integrity tag are not compared: version-1 readers carry the tag along
    /// uninterpreted (ENVELOPE.md), and the worker id is checked before this.
    /// </summary>
    public bool Matches(RefEnvelope envelope) =>
        envelope.ObjectId == Id
        && envelope.Owner == Owner
        && envelope.Size == Data.Length
        && envelope.Codec == Codec
        && envelope.TypeName == TypeName
        && envelope.Checksum == Checksum;
}
