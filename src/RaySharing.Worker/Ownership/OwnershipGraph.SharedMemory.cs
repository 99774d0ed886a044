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
            if (session.Arena is null)
            {
                session.Arena = new ArenaSession();
                WorkerLog.SharedMemoryAttached(_logger, session.Id);
            }
        }
    }

    /// <summary>Reserves an object's range for the session to write in place; returns its handle and offset.</summary>
    public (ObjectId Handle, long Offset) CreateInArena(ObjectId sessionToken, HolderAddress? owner, ObjectCodec codec, string typeName, long size, TimeSpan sealWithin)
    {
        var (session, arena) = RequireArenaSession(sessionToken);
        // The owner is checked before anything is reserved, as for a streaming put, and pinned to the incarnation
        // found: Seal checks it again, and a holder killed and made again meanwhile is OWNER_DIED, not a new owner.
        if (owner is { } address)
        {
            var holder = ResolveHolder(address, session);
            owner = new HolderAddress(holder.Key.Namespace, holder.Key.Name, holder.Incarnation);
        }

        var bytes = _store.Reserve(size);
        var handle = ObjectId.NewId();
        if (!arena.TryAddCreate(handle, new PendingCreate(bytes, owner, codec, typeName, NowMillis() + (long)sealWithin.TotalMilliseconds)))
        {
            bytes.Free();
            throw WorkerErrors.SessionExpired();
        }

        return (handle, bytes.Offset < 0 ? 0 : bytes.Offset);
    }

    /// <summary>Checks a created object's bytes against <paramref name="checksum"/> and commits it, as a put.</summary>
    public StoredObject Seal(ObjectId sessionToken, ObjectId handle, uint checksum)
    {
        var (_, arena) = RequireArenaSession(sessionToken);
        var create = arena.TakeCreate(handle)
            ?? throw WorkerErrors.InvalidRequest("No created object has this handle in this session: it was sealed or aborted already, or it expired before it was sealed.");
        try
        {
            var actual = create.Bytes.ComputeChecksum();
            if (actual != checksum)
            {
                throw WorkerErrors.ChecksumMismatch($"The bytes written have checksum {actual:x8} but the seal declared {checksum:x8}; nothing was stored.");
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
        var stored = ResolveEnvelope(envelope);
        if (!stored.Bytes.TryPin())
        {
            // Freed since it was resolved: resolving again gives the reason (freed, owner died).
            ResolveEnvelope(envelope);
            throw WorkerErrors.ObjectFreed(stored.Id);
        }

        if (!arena.TryAddPin(stored.Id, stored.Bytes))
        {
            stored.Bytes.Unpin();
            throw WorkerErrors.SessionExpired();
        }

        return stored;
    }

    public void Unpin(ObjectId sessionToken, IEnumerable<ObjectId> ids) => RequireArenaSession(sessionToken).Arena.Unpin(ids);

    private (SessionState Session, ArenaSession Arena) RequireArenaSession(ObjectId sessionToken)
    {
        var session = RequireSession(sessionToken);
        return (session, session.Arena
            ?? throw WorkerErrors.InvalidRequest("The session has not attached the shared-memory arena (Sessions.AttachSharedMemory); same-host calls need it."));
    }
}
