using Grpc.Core;
using RaySharing.Wire;

namespace RaySharing.Worker.Ownership;

/// <summary>
/// A failure the worker reports to the caller: a gRPC status whose trailers carry a reason from
/// <see cref="ErrorReasons"/> and the ids it concerns. An <see cref="RpcException"/>, so gRPC sends it
/// as it is, with no interceptor on the path of every call.
/// </summary>
internal sealed class WorkerException : RpcException
{
    private readonly ObjectId? _objectId;
    private readonly string? _holderNamespace;
    private readonly string? _holderName;
    private readonly ObjectId? _incarnation;
    private readonly ObjectId? _workerId;
    private readonly string? _workerAddress;

    public WorkerException(StatusCode status, string reason, string message)
        : base(new Status(status, message), new Metadata { { WireHeaders.Reason, reason } }, message)
    {
        Reason = reason;
    }

    public string Reason { get; }

    public ObjectId? ObjectId
    {
        get => _objectId;
        init => AddIfPresent(WireHeaders.ObjectId, _objectId = value);
    }

    /// <summary>Sent percent-encoded: metadata values must be ASCII, names may be any UTF-8.</summary>
    public string? HolderNamespace
    {
        get => _holderNamespace;
        init => Trailers.Add(WireHeaders.HolderNamespace, Uri.EscapeDataString(_holderNamespace = value ?? string.Empty));
    }

    public string? HolderName
    {
        get => _holderName;
        init
        {
            // A session owner has no name: no trailer then.
            if ((_holderName = value) is not null)
            {
                Trailers.Add(WireHeaders.HolderName, Uri.EscapeDataString(value!));
            }
        }
    }

    public ObjectId? Incarnation
    {
        get => _incarnation;
        init => AddIfPresent(WireHeaders.Incarnation, _incarnation = value);
    }

    public ObjectId? WorkerId
    {
        get => _workerId;
        init => AddIfPresent(WireHeaders.WorkerId, _workerId = value);
    }

    /// <summary>Sent percent-encoded, like the names: an address is whatever the worker advertises.</summary>
    public string? WorkerAddress
    {
        get => _workerAddress;
        init => Trailers.Add(WireHeaders.WorkerAddress, Uri.EscapeDataString(_workerAddress = value ?? string.Empty));
    }

    private void AddIfPresent(string key, ObjectId? id)
    {
        if (id is { } value)
        {
            Trailers.Add(key, value.ToString());
        }
    }
}

/// <summary>Builds every <see cref="WorkerException"/>, so each reason has one status and one wording.</summary>
internal static class WorkerErrors
{
    public static WorkerException OwnerDied(ObjectId? objectId, in ObjectOwner owner, string why) =>
        new(StatusCode.FailedPrecondition, ErrorReasons.OwnerDied,
            objectId is { } id
                ? $"Object {id} is gone: its owner, {owner}, died ({why}). Its objects were freed with it; put the data again under a live owner."
                : $"The owner {owner} died ({why}).")
        {
            ObjectId = objectId,
            HolderNamespace = owner.Namespace,
            HolderName = owner.Kind == OwnerKind.Holder ? owner.Name : null,
            Incarnation = owner.Incarnation,
        };

    public static WorkerException HolderNotFound(string ns, string name) =>
        new(StatusCode.NotFound, ErrorReasons.HolderNotFound,
            $"No live holder '{name}' in namespace '{ns}'. Create it with GetOrCreate, or check the name and namespace.")
        {
            HolderNamespace = ns,
            HolderName = name,
        };

    public static WorkerException ObjectFreed(ObjectId id) =>
        new(StatusCode.NotFound, ErrorReasons.ObjectFreed,
            $"Object {id} was freed: no key registered it and no session borrowed it any more.")
        { ObjectId = id };

    public static WorkerException ObjectNotFound(ObjectId id) =>
        new(StatusCode.NotFound, ErrorReasons.ObjectNotFound,
            $"Object {id} is not known to this worker: it never existed here, or it was freed so long ago that the worker forgot it.")
        { ObjectId = id };

    public static WorkerException KeyNotFound(in HolderKey holder, string key) =>
        new(StatusCode.NotFound, ErrorReasons.KeyNotFound,
            $"Holder '{holder.Namespace}/{holder.Name}' has no key '{key}'. Register refs under it first, or list the keys.")
        {
            HolderNamespace = holder.Namespace,
            HolderName = holder.Name,
        };

    public static WorkerException NotOwner(ObjectId id, in ObjectOwner actual, in HolderKey holder) =>
        new(StatusCode.InvalidArgument, ErrorReasons.NotOwner,
            $"Object {id} is owned by {actual}, not by holder '{holder.Namespace}/{holder.Name}'. A holder registers only objects it owns: put them with the holder as owner.")
        {
            ObjectId = id,
            HolderNamespace = holder.Namespace,
            HolderName = holder.Name,
        };

    public static WorkerException EnvelopeMismatch(ObjectId id) =>
        new(StatusCode.InvalidArgument, ErrorReasons.InvalidEnvelope,
            $"The envelope of object {id} does not match the object this worker stores under that id (owner, size, codec or checksum differ).")
        { ObjectId = id };

    public static WorkerException InvalidEnvelope(string detail) =>
        new(StatusCode.InvalidArgument, ErrorReasons.InvalidEnvelope, $"Invalid ref envelope: {detail}");

    public static WorkerException StoreFull(long requested, long used, long capacity) =>
        new(StatusCode.ResourceExhausted, ErrorReasons.StoreFull,
            $"The object store cannot take {requested} bytes: {used} of {capacity} bytes are in use. Release or unregister objects, or raise the worker's StoreCapacityBytes (--capacity-mb).");

    public static WorkerException StoreFragmented(long requested, long used, long capacity, long largestFree) =>
        new(StatusCode.ResourceExhausted, ErrorReasons.StoreFull,
            $"The object store cannot take {requested} bytes in one piece: {used} of {capacity} bytes are in use and the largest free range is {largestFree} bytes. Release or unregister objects, or raise the worker's StoreCapacityBytes (--capacity-mb).");

    public static WorkerException StoreAndSpillFull(long requested, long used, long capacity, long spilled, long spillCapacity) =>
        new(StatusCode.ResourceExhausted, ErrorReasons.StoreFull,
            requested > capacity
                ? $"The object store cannot take {requested} bytes: an object must fit in memory, whose capacity is {capacity} bytes ({used} in use; {spilled} of {spillCapacity} bytes spilled to disk). Raise the worker's StoreCapacityBytes (--capacity-mb)."
                : $"The object store cannot take {requested} bytes: {used} of {capacity} bytes are in memory and {spilled} of the {spillCapacity} bytes the spill files may hold are used, so nothing more can spill to make room (objects a reader pins never spill). Release or unregister objects, end same-host leases, or raise the worker's StoreCapacityBytes (--capacity-mb) or SpillCapacityBytes (--spill-capacity-mb).");

    /// <summary>A get of a spilled object that memory cannot take back: every other object is pinned, being put, or cannot spill.</summary>
    public static WorkerException NoRoomToRestore(ObjectId id, long size, long used, long capacity) =>
        new(StatusCode.ResourceExhausted, ErrorReasons.StoreFull,
            $"Object {id} ({size} bytes) is spilled to disk, and memory has no room to bring it back: {used} of {capacity} bytes are in use by objects that readers pin, puts in progress, or objects the spill limit cannot take. Retry once readers are done, release objects, or raise the worker's StoreCapacityBytes (--capacity-mb).")
        { ObjectId = id };

    /// <summary>A spilled object whose file cannot give its bytes back: they are lost, though the object and its owner live.</summary>
    public static WorkerException SpillFileLost(ObjectId id, string problem) =>
        new(StatusCode.DataLoss, ErrorReasons.ObjectLost,
            $"Object {id} was spilled to disk and cannot be read back: {problem}. Its bytes are lost; put the data again.")
        { ObjectId = id };

    /// <summary>The worker that stored an object died while its owner lives: the bytes are gone with it.</summary>
    public static WorkerException StoringWorkerLost(ObjectId id, in WorkerLocation location) =>
        new(StatusCode.DataLoss, ErrorReasons.ObjectLost,
            $"Object {id} is lost: worker {location.WorkerId} at {location.Address}, which stored its bytes, died, though its owner lives. Put the data again.")
        { ObjectId = id };

    /// <summary>The worker that stores an object is alive in the directory but does not answer.</summary>
    public static WorkerException StoringWorkerUnavailable(ObjectId id, in WorkerLocation location) =>
        new(StatusCode.Unavailable, ErrorReasons.Unavailable,
            $"Object {id} is stored on worker {location.WorkerId} at {location.Address}, which does not answer though its cluster lease has not lapsed; try again.")
        { ObjectId = id };

    // The caller presented a token; echoing a credential into trailers (and logs) would be careless.
    public static WorkerException SessionExpired() =>
        new(StatusCode.FailedPrecondition, ErrorReasons.SessionExpired,
            "The session has ended (closed, or its lease lapsed), or the session token is not known here. Open a new session.");

    public static WorkerException ChecksumMismatch(string detail) =>
        new(StatusCode.DataLoss, ErrorReasons.ChecksumMismatch, detail);

    public static WorkerException ObjectTooLarge(ObjectId id, long size, int limit) =>
        new(StatusCode.ResourceExhausted, ErrorReasons.ObjectTooLarge,
            $"Object {id} is {size} bytes, more than a unary Get returns ({limit}); use GetStream.")
        { ObjectId = id };

    public static WorkerException StreamIdle(TimeSpan idle) =>
        new(StatusCode.DeadlineExceeded, ErrorReasons.Timeout,
            $"The put stream sent nothing for {idle.TotalSeconds:0.###} s and was abandoned; nothing was stored.");

    public static WorkerException Unauthorized(string detail) =>
        new(StatusCode.PermissionDenied, ErrorReasons.Unauthorized, detail);

    public static WorkerException InvalidRequest(string detail) =>
        new(StatusCode.InvalidArgument, ErrorReasons.InvalidRequest, detail);

    /// <summary>
    /// An envelope issued by another worker instance. At this worker's own address it names an earlier run of
    /// this worker, whose owners died with it; at another address, a worker this one knows nothing of, to
    /// which the caller must go.
    /// </summary>
    public static WorkerException ForeignWorker(RefEnvelope envelope, WorkerIdentity identity) =>
        envelope.Location.Address == identity.Address
            ? OwnerDied(envelope.ObjectId, envelope.Owner, $"its worker {envelope.Location.WorkerId} at {envelope.Location.Address} is not running; this worker is {identity.WorkerId}")
            : WrongWorker(envelope.ObjectId, envelope.Location.WorkerId, envelope.Location.Address, identity.Address);

    public static WorkerException WrongWorker(ObjectId objectId, ObjectId workerId, string address, string thisAddress) =>
        new(StatusCode.FailedPrecondition, ErrorReasons.WrongWorker,
            $"Object {objectId} lives on worker {workerId} at {address}, not on this worker ({thisAddress}). Connect a client to {address} to use it.")
        {
            ObjectId = objectId,
            WorkerId = workerId,
            WorkerAddress = address,
        };

    /// <summary>
    /// A put on the channel or in shared memory for a holder that another worker of the cluster hosts, before this
    /// worker was set up to store objects for it (which a lookup of the holder through this worker, or a gRPC put, does).
    /// </summary>
    public static WorkerException HolderElsewhere(in HolderSnapshot holder, string thisAddress) =>
        new(StatusCode.FailedPrecondition, ErrorReasons.WrongWorker,
            $"Holder '{holder.Key.Namespace}/{holder.Key.Name}' (incarnation {holder.Incarnation}) lives on worker {holder.Location.WorkerId} at {holder.Location.Address}, not on this worker ({thisAddress}), which does not store objects for it yet. Look the holder up through this worker (Holders.Get or GetOrCreate) or put over gRPC, then put again.")
        {
            HolderNamespace = holder.Key.Namespace,
            HolderName = holder.Key.Name,
            Incarnation = holder.Incarnation,
            WorkerId = holder.Location.WorkerId,
            WorkerAddress = holder.Location.Address,
        };

    /// <summary>The worker hosting a holder is alive in the directory but does not answer.</summary>
    public static WorkerException PeerUnavailable(in HolderSnapshot holder, string detail) =>
        new(StatusCode.Unavailable, ErrorReasons.Unavailable,
            $"Holder '{holder.Key.Namespace}/{holder.Key.Name}' lives on worker {holder.Location.WorkerId} at {holder.Location.Address}, which does not answer ({detail.TrimEnd('.')}) though its cluster lease has not lapsed; try again.");

    public static WorkerException ListChanged(in HolderAddress holder, string key) =>
        new(StatusCode.Aborted, ErrorReasons.ListChanged,
            $"The list under key '{key}' of holder '{holder.Namespace}/{holder.Name}' was unregistered while it was being fetched in pages. Fetch it again from the first page (release the refs of the pages already read).")
        {
            HolderNamespace = holder.Namespace,
            HolderName = holder.Name,
        };

    public static WorkerException UnaryPutTooLarge(ulong size, int limit) =>
        new(StatusCode.ResourceExhausted, ErrorReasons.ObjectTooLarge,
            $"A unary Put takes objects of at most {limit} bytes; this one declares {size}. Use PutStream; nothing was stored.");

    public static WorkerException Stopping() =>
        new(StatusCode.Unavailable, ErrorReasons.Unavailable, "The worker is stopping: its object store is closed. Connect to a running worker.");

    public static WorkerException DirectoryUnavailable(string detail) =>
        new(StatusCode.Unavailable, ErrorReasons.Unavailable, $"The cluster's directory (Redis) cannot be reached: {detail.TrimEnd('.')}. Holders on other workers cannot be found until it answers; try again.");

    public static WorkerException LeftCluster() =>
        new(StatusCode.Unavailable, ErrorReasons.Unavailable, "The worker lost its registration in the cluster's directory (it could not renew it within its lease) and is stopping; its holders died with it. Connect to another worker.");

    public static WorkerException Starting() =>
        new(StatusCode.Unavailable, ErrorReasons.Unavailable, "The worker is starting and does not know its address yet; try again.");

    /// <summary>
    /// The reason of a failed call that carries none: the gRPC library (framing, message size, unknown
    /// method, a handler's unexpected exception) ended it with a bare status. See protos/ERRORS.md.
    /// </summary>
    public static string ReasonForBareStatus(StatusCode status) => status switch
    {
        StatusCode.InvalidArgument => ErrorReasons.InvalidRequest,
        StatusCode.ResourceExhausted => ErrorReasons.MessageTooLarge,
        StatusCode.Unimplemented => ErrorReasons.Unimplemented,
        StatusCode.Internal => ErrorReasons.ProtocolError,
        StatusCode.DeadlineExceeded => ErrorReasons.Timeout,
        StatusCode.Unavailable => ErrorReasons.Unavailable,
        _ => ErrorReasons.InternalError,
    };
}
