namespace RaySharing;

/// <summary>The owner of an object (a holder, or the session that put it) died, and its objects were freed with it. Reason <c>OWNER_DIED</c>.</summary>
public sealed class OwnerDiedException : RaySharingException
{
    /// <summary>Creates the exception.</summary>
    public OwnerDiedException(string message, ObjectId? objectId, string? holderNamespace, string? holderName, HolderIncarnation? incarnation, SessionId? ownerSessionId = null)
        : base("OWNER_DIED", message)
    {
        ObjectId = objectId;
        HolderNamespace = holderNamespace;
        HolderName = holderName;
        Incarnation = incarnation;
        OwnerSessionId = ownerSessionId;
    }

    /// <summary>The object asked for, when the call was about one.</summary>
    public ObjectId? ObjectId { get; }

    /// <summary>The dead owner's namespace.</summary>
    public string? HolderNamespace { get; }

    /// <summary>The dead holder's name; null when the owner was a session.</summary>
    public string? HolderName { get; }

    /// <summary>The dead holder's incarnation; null when the owner was a session.</summary>
    public HolderIncarnation? Incarnation { get; }

    /// <summary>The dead owning session's id, when the owner was a session.</summary>
    public SessionId? OwnerSessionId { get; }
}

/// <summary>The object was freed by reference counting: nothing registered or borrowed it any more. Reason <c>OBJECT_FREED</c>.</summary>
public sealed class ObjectFreedException(string message, ObjectId objectId) : RaySharingException("OBJECT_FREED", message)
{
    /// <summary>The object.</summary>
    public ObjectId ObjectId { get; } = objectId;
}

/// <summary>
/// The object's bytes are gone while its owner lives: the file it was spilled to was lost or damaged (the message
/// says which), or the host that stored them is gone. Reason <c>OBJECT_LOST</c>.
/// </summary>
public sealed class ObjectLostException(string message, ObjectId objectId) : RaySharingException("OBJECT_LOST", message)
{
    /// <summary>The object.</summary>
    public ObjectId ObjectId { get; } = objectId;
}

/// <summary>The worker does not know the object: it never existed there, or was forgotten long after it was freed. Reason <c>OBJECT_NOT_FOUND</c>.</summary>
public sealed class ObjectNotFoundException(string message, ObjectId objectId) : RaySharingException("OBJECT_NOT_FOUND", message)
{
    /// <summary>The object.</summary>
    public ObjectId ObjectId { get; } = objectId;
}

/// <summary>No live holder has the name asked for. Reason <c>HOLDER_NOT_FOUND</c>.</summary>
public sealed class HolderNotFoundException(string message, string holderNamespace, string holderName) : RaySharingException("HOLDER_NOT_FOUND", message)
{
    /// <summary>The namespace looked in.</summary>
    public string HolderNamespace { get; } = holderNamespace;

    /// <summary>The name looked for.</summary>
    public string HolderName { get; } = holderName;
}

/// <summary>The holder has no such key in its registry. Reason <c>KEY_NOT_FOUND</c>.</summary>
public sealed class RegistryKeyNotFoundException(string message, string holderNamespace, string holderName, string key) : RaySharingException("KEY_NOT_FOUND", message)
{
    /// <summary>The holder's namespace.</summary>
    public string HolderNamespace { get; } = holderNamespace;

    /// <summary>The holder's name.</summary>
    public string HolderName { get; } = holderName;

    /// <summary>The key asked for.</summary>
    public string Key { get; } = key;
}

/// <summary>The object's codec or type is not what the caller asked for, or its bytes do not decode as that type. Reason <c>TYPE_MISMATCH</c>.</summary>
public sealed class TypeMismatchException : RaySharingException
{
    /// <summary>Creates the exception.</summary>
    public TypeMismatchException(string message, ObjectId objectId, string requestedType, string storedType, ObjectCodec storedCodec, Exception? innerException = null)
        : base("TYPE_MISMATCH", message, innerException)
    {
        ObjectId = objectId;
        RequestedType = requestedType;
        StoredType = storedType;
        StoredCodec = storedCodec;
    }

    /// <summary>The object.</summary>
    public ObjectId ObjectId { get; }

    /// <summary>The type the caller asked for.</summary>
    public string RequestedType { get; }

    /// <summary>The type name the putter gave (empty when untyped).</summary>
    public string StoredType { get; }

    /// <summary>The object's codec.</summary>
    public ObjectCodec StoredCodec { get; }
}

/// <summary>The worker's object store has no room for the object. Reason <c>STORE_FULL</c>.</summary>
public sealed class ObjectStoreFullException(string message) : RaySharingException("STORE_FULL", message)
{
    /// <summary>True: room may be freed by others releasing objects.</summary>
    public override bool IsTransient => true;
}

/// <summary>Bytes that were to be a ref envelope are not one (truncated, garbage, unknown version, or not matching the object). Reason <c>INVALID_ENVELOPE</c>.</summary>
public sealed class InvalidEnvelopeException(string message, Exception? innerException = null) : RaySharingException("INVALID_ENVELOPE", message, innerException);

/// <summary>A ref given to a holder is not owned by that holder; a holder registers only objects it owns. Reason <c>NOT_OWNER</c>.</summary>
public sealed class RefNotOwnedException(string message, ObjectId? objectId, string? holderNamespace, string? holderName) : RaySharingException("NOT_OWNER", message)
{
    /// <summary>The object.</summary>
    public ObjectId? ObjectId { get; } = objectId;

    /// <summary>The holder's namespace.</summary>
    public string? HolderNamespace { get; } = holderNamespace;

    /// <summary>The holder's name.</summary>
    public string? HolderName { get; } = holderName;
}

/// <summary>The bytes do not match their checksum or declared size: they were corrupted on the way. Reason <c>CHECKSUM_MISMATCH</c>.</summary>
public sealed class ChecksumMismatchException(string message, ObjectId? objectId) : RaySharingException("CHECKSUM_MISMATCH", message)
{
    /// <summary>The object, when known.</summary>
    public ObjectId? ObjectId { get; } = objectId;

    /// <summary>True: a second transfer may arrive intact.</summary>
    public override bool IsTransient => true;
}
