using Grpc.Core;

namespace RaySharing.Internal;

/// <summary>
/// One session the client opened: its ids, the worker it was opened on, and the headers its calls carry.
/// Replaced as a whole when the worker ends the session, so a call, a ref or a borrow knows which session it
/// belongs to.
/// </summary>
internal sealed class ClientSession(ObjectId id, ObjectId token, ObjectId workerId, string workerAddress, TimeSpan lease, int maxUnaryObjectBytes)
{
    public ObjectId Id { get; } = id;

    public ObjectId WorkerId { get; } = workerId;

    public string WorkerAddress { get; } = workerAddress;

    public TimeSpan Lease { get; } = lease;

    /// <summary>Objects up to this size use the unary put and get: the smaller of the client's and the worker's limit.</summary>
    public int MaxUnaryObjectBytes { get; } = maxUnaryObjectBytes;

    /// <summary>The worker's arena, mapped, when the session proved it is on the worker's host; null otherwise.</summary>
    public SharedMemory.ArenaMapping? Arena { get; set; }

    /// <summary>The worker's binary channel, connected for this session; null when the session uses gRPC only.</summary>
    public Channel.SessionChannel? Channel { get; set; }

    /// <summary>Objects read in place whose pins are still to be dropped (RaySharingClient.Unpin).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<ObjectId> PendingUnpins { get; } = new();

    /// <summary>1 while an Unpin call is in flight for this session.</summary>
    public int Unpinning;

    /// <summary>The session token header; the token is the session's credential and never leaves it.</summary>
    public Metadata Headers { get; } = [new(Wire.WireHeaders.SessionToken, token.ToString())];
}
