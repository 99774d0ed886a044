namespace RaySharing.Wire;

/// <summary>
/// Machine-readable error reasons, sent in the <c>rs-reason</c> trailer of a failed call. The table
/// in <c>protos/ERRORS.md</c> gives each one's gRPC status and meaning. Never renamed.
/// </summary>
internal static class ErrorReasons
{
    /// <summary>The object's owner (holder or session) is dead; its objects were freed with it.</summary>
    public const string OwnerDied = "OWNER_DIED";

    /// <summary>The object was released by reference counting: no key registered it and no session borrowed it.</summary>
    public const string ObjectFreed = "OBJECT_FREED";

    /// <summary>The object's bytes are gone though its owner lives: its spill file no longer reads back intact (or, in scale-out, the host that stored them died).</summary>
    public const string ObjectLost = "OBJECT_LOST";

    /// <summary>No object with this id ever existed on this worker (or its record has been forgotten).</summary>
    public const string ObjectNotFound = "OBJECT_NOT_FOUND";

    /// <summary>No live holder has this name.</summary>
    public const string HolderNotFound = "HOLDER_NOT_FOUND";

    /// <summary>The holder has no such key in its registry.</summary>
    public const string KeyNotFound = "KEY_NOT_FOUND";

    /// <summary>The object's codec or type does not match what the caller asked for.</summary>
    public const string TypeMismatch = "TYPE_MISMATCH";

    /// <summary>The object store has no room for the object.</summary>
    public const string StoreFull = "STORE_FULL";

    /// <summary>Bytes that were to be a ref envelope are not one.</summary>
    public const string InvalidEnvelope = "INVALID_ENVELOPE";

    /// <summary>A ref given to a holder is not owned by that holder.</summary>
    public const string NotOwner = "NOT_OWNER";

    /// <summary>The caller's session has ended (closed, or its lease lapsed).</summary>
    public const string SessionExpired = "SESSION_EXPIRED";

    /// <summary>The bytes received do not match their checksum or declared size.</summary>
    public const string ChecksumMismatch = "CHECKSUM_MISMATCH";

    /// <summary>The object is larger than a unary get may return; use the streaming get.</summary>
    public const string ObjectTooLarge = "OBJECT_TOO_LARGE";

    /// <summary>The request is malformed (missing field, bad name, bad size).</summary>
    public const string InvalidRequest = "INVALID_REQUEST";

    /// <summary>A call or a stream did not complete in time (deadline, or a stream idle for too long).</summary>
    public const string Timeout = "TIMEOUT";

    /// <summary>The worker could not be reached.</summary>
    public const string Unavailable = "UNAVAILABLE";

    /// <summary>The caller is not allowed to do this.</summary>
    public const string Unauthorized = "UNAUTHORIZED";

    /// <summary>The ref lives on another worker (named in the trailers); connect a client to that worker to use it.</summary>
    public const string WrongWorker = "WRONG_WORKER";

    /// <summary>A registry key's list was unregistered (and maybe registered again) while it was being fetched in pages.</summary>
    public const string ListChanged = "LIST_CHANGED";

    /// <summary>A gRPC message is larger than the receiver (worker or client) accepts.</summary>
    public const string MessageTooLarge = "MESSAGE_TOO_LARGE";

    /// <summary>The worker does not implement the method or service called, or the message encoding used.</summary>
    public const string Unimplemented = "UNIMPLEMENTED";

    /// <summary>The request broke the gRPC framing (truncated message, data after a unary message, wrong content type).</summary>
    public const string ProtocolError = "PROTOCOL_ERROR";

    /// <summary>The worker failed unexpectedly: a fault in the worker, not in the request.</summary>
    public const string InternalError = "INTERNAL_ERROR";
}

/// <summary>Names of the gRPC metadata entries of the protocol.</summary>
internal static class WireHeaders
{
    /// <summary>
    /// Request header: the caller's secret session token, 32 lowercase hex characters. It is the session's
    /// credential; the session id, which envelopes of session-owned objects publish, is not.
    /// </summary>
    public const string SessionToken = "rs-session-token";

    /// <summary>Error trailer: the reason, one of <see cref="ErrorReasons"/>.</summary>
    public const string Reason = "rs-reason";

    /// <summary>Error trailer: the object the error is about, in hex.</summary>
    public const string ObjectId = "rs-object-id";

    /// <summary>Error trailer: the namespace of the holder the error is about, percent-encoded (names may be any UTF-8).</summary>
    public const string HolderNamespace = "rs-holder-namespace";

    /// <summary>Error trailer: the name of the holder the error is about, percent-encoded.</summary>
    public const string HolderName = "rs-holder-name";

    /// <summary>Error trailer: the holder incarnation (or owning session id) the error is about, in hex.</summary>
    public const string Incarnation = "rs-incarnation";

    /// <summary>Error trailer of <c>WRONG_WORKER</c>: the id of the worker the ref lives on, in hex.</summary>
    public const string WorkerId = "rs-worker-id";

    /// <summary>Error trailer of <c>WRONG_WORKER</c>: the address of the worker the ref lives on, percent-encoded.</summary>
    public const string WorkerAddress = "rs-worker-address";

    /// <summary>
    /// Response header of <c>PutStream</c>, value <c>1</c>: the worker has reserved room for the object and reads
    /// its bytes. A client that sends the header alone waits for it; without it the put was refused.
    /// </summary>
    public const string PutAccepted = "rs-put-accepted";
}
