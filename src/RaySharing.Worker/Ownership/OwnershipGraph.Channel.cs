using System.Security.Cryptography;
using RaySharing.Wire;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Ownership;

/// <summary>The binary channel's sessions (HELLO) and the tickets that authorise its bulk transfers (protos/CHANNEL.md).</summary>
internal sealed partial class OwnershipGraph
{
    /// <summary>The channel's HELLO: the live session whose token and channel key these are.</summary>
    /// <exception cref="WorkerException">SESSION_EXPIRED for an unknown or ended session, UNAUTHORIZED for a wrong key.</exception>
    public SessionState AuthenticateChannel(ObjectId sessionToken, ReadOnlySpan<byte> channelKey)
    {
        var session = RequireSession(sessionToken);
        return CryptographicOperations.FixedTimeEquals(channelKey, session.ChannelKey)
            ? session
            : throw WorkerErrors.Unauthorized("The channel key does not match the session's: present the key its OpenSessionReply.channel carried.");
    }

    /// <summary>
    /// Resolves an envelope as a get does and pins its object for one BULK_GET by the session, within
    /// <paramref name="within"/>; returns the ticket and the object.
    /// </summary>
    public (ObjectId Ticket, StoredObject Object) IssueGetTicket(ObjectId sessionToken, RefEnvelope envelope, TimeSpan within)
    {
        var session = RequireSession(sessionToken);
        var stored = ResolveAndPin(envelope);
        var ticket = ObjectId.NewId();
        if (!session.Transfers.TryAddRead(ticket, new PendingRead(stored, NowMillis() + (long)within.TotalMilliseconds)))
        {
            stored.Bytes.Unpin();
            throw WorkerErrors.SessionExpired();
        }

        return (ticket, stored);
    }

    /// <summary>Reserves room for one BULK_PUT by the session, within <paramref name="within"/>; returns the ticket.</summary>
    public ObjectId IssuePutTicket(ObjectId sessionToken, HolderAddress? owner, ObjectCodec codec, string typeName, long size, TimeSpan within)
    {
        var session = RequireSession(sessionToken);
        return ReservePending(session, session.Transfers, owner, codec, typeName, size, within).Handle;
    }

    /// <summary>Takes a get ticket of the session; the caller unpins its object when the body is sent (or not).</summary>
    /// <exception cref="WorkerException">INVALID_REQUEST when the session has no such ticket (used, expired, or another session's).</exception>
    public PendingRead TakeGetTicket(ObjectId sessionToken, ObjectId ticket) =>
        RequireSession(sessionToken).Transfers.TakeRead(ticket) ?? throw UnknownTicket("get");

    /// <summary>Takes a put ticket of the session: the caller writes the bytes, then <see cref="CommitTicket"/> or frees them.</summary>
    public PendingCreate TakePutTicket(ObjectId sessionToken, ObjectId ticket) =>
        RequireSession(sessionToken).Transfers.TakeCreate(ticket) ?? throw UnknownTicket("put");

    /// <summary>Commits a put ticket's bytes, all received, whose CRC-32 was <paramref name="computed"/>; frees them on any failure.</summary>
    public StoredObject CommitTicket(ObjectId sessionToken, PendingCreate create, uint declared, uint computed) =>
        CommitCreate(sessionToken, create, declared, () => computed);

    private static WorkerException UnknownTicket(string kind) =>
        WorkerErrors.InvalidRequest($"This session has no such {kind} ticket: it was used already, it expired (tickets last the worker's stream idle timeout), or another session was issued it.");
}
