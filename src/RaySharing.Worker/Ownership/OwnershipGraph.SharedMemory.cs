using System.Security.Cryptography;
using RaySharing.Wire;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>Same-host sessions: puts written in place in the arena, and pins of objects read in place.</summary>
internal sealed partial class OwnershipGraph
{
    /// <summary>Lets a session that proved it maps the arena (it read the secret in its header) use it. Idempotent.</summary>
    public void AttachSharedMemory(ObjectId sessionToken, ReadOnlySpan<byte> secret)
    {
        var session = RequireSession(sessionToken);
        if (!_store.Arena.IsShared)
        {
            throw WorkerErrors.InvalidRequest("This worker offers no shared memory (its OpenSessionReply had no shared_memory); use the network paths.");
        }

        if (!CryptographicOperations.FixedTimeEquals(secret, _store.Arena.Secret))
        {
            throw WorkerErrors.Unauthorized("The secret does not match the worker's arena: the caller did not map it (another host, PID namespace or user).");
        }

        lock (session.Gate)
        {
            ThrowIfEnded(session);
            if (!session.SharedMemoryAttached)
            {
                session.SharedMemoryAttached = true;
                WorkerLog.SharedMemoryAttached(_logger, session.Id);
            }
        }
    }

    /// <summary>Reserves an object's range for the session to write in place; returns its handle and offset.</summary>
    public (ObjectId Handle, long Offset) CreateInArena(ObjectId sessionToken, HolderAddress? owner, ObjectCodec codec, string typeName, long size, TimeSpan sealWithin)
    {
        var (session, transfers) = RequireArenaSession(sessionToken);
        var (handle, bytes) = ReservePending(session, transfers, owner, codec, typeName, size, sealWithin);
        return (handle, bytes.Offset < 0 ? 0 : bytes.Offset);
    }

    /// <summary>
    /// Reserves room for a put whose bytes come later (written in place, or a channel body) and records it in the
    /// session under a new handle, given back if it is not completed within <paramref name="within"/>.
    /// </summary>
    private (ObjectId Handle, StoredBytes Bytes) ReservePending(SessionState session, SessionTransfers transfers, HolderAddress? owner, ObjectCodec codec, string typeName, long size, TimeSpan within)
    {
        // The owner is checked before anything is reserved, as for a streaming put, and pinned to the incarnation
        // found: the commit checks it again, and a holder killed and made again meanwhile is OWNER_DIED, not a new owner.
        if (owner is { } address)
        {
            var holder = PutOwnerOf(address, session).AsOwner;
            owner = new HolderAddress(holder.Namespace, holder.Name, holder.Incarnation);
        }

        var bytes = _store.Reserve(size);
        var handle = ObjectId.NewId();
        if (!transfers.TryAddCreate(handle, new PendingCreate(bytes, owner, codec, typeName, NowMillis() + (long)within.TotalMilliseconds)))
        {
            bytes.Free();
            throw WorkerErrors.SessionExpired();
        }

        return (handle, bytes);
    }

    /// <summary>Checks a created object's bytes against <paramref name="checksum"/> and commits it, as a put.</summary>
    public StoredObject Seal(ObjectId sessionToken, ObjectId handle, uint checksum)
    {
        var (_, arena) = RequireArenaSession(sessionToken);
        var create = arena.TakeCreate(handle)
            ?? throw WorkerErrors.InvalidRequest("No created object has this handle in this session: it was sealed or aborted already, or it expired before it was sealed.");
        return CommitCreate(sessionToken, create, checksum, create.Bytes.ComputeChecksum);
    }

    /// <summary>
    /// Commits a pending put whose bytes are all written, once their checksum (computed by <paramref name="actual"/>)
    /// equals the declared one; gives its room back on any failure.
    /// </summary>
    private StoredObject CommitCreate(ObjectId sessionToken, PendingCreate create, uint checksum, Func<uint> actual)
    {
        try
        {
            var computed = actual();
            if (computed != checksum)
            {
                throw WorkerErrors.ChecksumMismatch($"The bytes written have checksum {computed:x8} but the sender declared {checksum:x8}; nothing was stored.");
            }

            return CommitPut(sessionToken, create.Owner, create.Bytes, create.Codec, create.TypeName, checksum);
        }
        catch
        {
            create.Bytes.Free();
            throw;
        }
    }

    public void AbortCreate(ObjectId sessionToken, ObjectId handle)
    {
        var (_, arena) = RequireArenaSession(sessionToken);
        arena.TakeCreate(handle)?.Bytes.Free();
    }

    /// <summary>Resolves an envelope and pins its object's range for the session until it unpins or ends.</summary>
    public StoredObject Pin(ObjectId sessionToken, RefEnvelope envelope)
    {
        var (_, arena) = RequireArenaSession(sessionToken);
        var stored = ResolveAndPin(envelope);
        if (!arena.TryAddPin(stored.Id, stored.Bytes))
        {
            stored.Bytes.Unpin();
            throw WorkerErrors.SessionExpired();
        }

        return stored;
    }

    /// <summary>Resolves an envelope and takes a reader's pin on its object's bytes (the caller drops it).</summary>
    public StoredObject ResolveAndPin(RefEnvelope envelope)
    {
        var stored = ResolveEnvelope(envelope);
        if (!stored.Bytes.TryPin())
        {
            // Freed since it was resolved: resolving again gives the reason (freed, owner died).
            ResolveEnvelope(envelope);
            throw WorkerErrors.ObjectFreed(stored.Id);
        }

        return stored;
    }

    public void Unpin(ObjectId sessionToken, IEnumerable<ObjectId> ids) => RequireArenaSession(sessionToken).Arena.Unpin(ids);

    private (SessionState Session, SessionTransfers Arena) RequireArenaSession(ObjectId sessionToken)
    {
        var session = RequireSession(sessionToken);
        return session.SharedMemoryAttached
            ? (session, session.Transfers)
            : throw WorkerErrors.InvalidRequest("The session has not attached the shared-memory arena (Sessions.AttachSharedMemory); same-host calls need it.");
    }
}
