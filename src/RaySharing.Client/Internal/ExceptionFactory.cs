using Grpc.Core;
using RaySharing.Wire;

namespace RaySharing.Internal;

/// <summary>Builds every exception the client throws from a failed call, so each reason maps to one type.</summary>
internal static class ExceptionFactory
{
    public static Exception FromRpc(RpcException rpc, string operation, string address, ObjectId session, CancellationToken cancellationToken, CallSubject subject = default)
    {
        if (rpc.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            return new OperationCanceledException($"{operation} was canceled.", rpc, cancellationToken);
        }

        var trailers = rpc.Trailers;
        var reason = trailers.GetValue(WireHeaders.Reason);
        if (reason is not null)
        {
            // Names and addresses travel percent-encoded in trailers (metadata is ASCII).
            return FromReason(reason, rpc.Status.Detail, key => key is WireHeaders.HolderNamespace or WireHeaders.HolderName or WireHeaders.WorkerAddress
                ? Unescape(trailers.GetValue(key))
                : trailers.GetValue(key), operation, address, session, subject, rpc);
        }

        var message = rpc.Status.Detail;
        // No reason trailer: the failure came from the transport, not from the worker's logic.
        return rpc.StatusCode switch
        {
            StatusCode.DeadlineExceeded => new RaySharingTimeoutException(
                $"{operation}{subject.Describe()} on worker {address} did not complete within its deadline: {message.TrimEnd('.')}. The worker may be overloaded or stuck; raise CallTimeout only if the work is known to be slow.",
                operation, address, TimeSpan.Zero, requestSent: null, subject.ObjectId, subject.HolderNamespace, subject.HolderName, rpc),
            StatusCode.Unavailable => new WorkerUnavailableException(
                $"{operation} could not reach the worker at {address}: {message.TrimEnd('.')}. Check that a worker is running there.", address, rpc),
            StatusCode.PermissionDenied or StatusCode.Unauthenticated => new UnauthorizedException($"{operation} was refused by worker {address}: {message}"),
            // Made up by this client's transport: a message over its MaxMessageBytes (or a worker's bare status).
            StatusCode.ResourceExhausted => new RaySharingException(ErrorReasons.MessageTooLarge,
                $"{operation} on worker {address} failed: {message} Raise MaxMessageBytes (client and worker) or send less in one call.", rpc),
            StatusCode.Cancelled => new WorkerUnavailableException($"{operation} was cut off by worker {address}: {message}", address, rpc),
            // A status the client made up itself (it carries the local exception) means the connection broke
            // under the call, for example a worker killed while the call was starting.
            StatusCode.Internal when rpc.Status.DebugException is not null => new WorkerUnavailableException(
                $"{operation} lost its connection to the worker at {address}: {rpc.Status.DebugException.Message}", address, rpc),
            _ => new RaySharingException(StatusName(rpc.StatusCode), $"{operation} on worker {address} failed with {rpc.StatusCode}: {message}", rpc),
        };
    }

    /// <summary>
    /// The exception for a worker's error reason (protos/ERRORS.md), whichever transport carried it: gRPC trailers or
    /// a channel error. <paramref name="detail"/> gives the context by trailer name, decoded.
    /// </summary>
    public static Exception FromReason(string reason, string message, Func<string, string?> detail, string operation, string address, ObjectId session, CallSubject subject, Exception? inner)
    {
        var objectId = ParseId(detail(WireHeaders.ObjectId));
        var holderNamespace = detail(WireHeaders.HolderNamespace);
        var holderName = detail(WireHeaders.HolderName);
        var incarnation = ParseId(detail(WireHeaders.Incarnation));

        switch (reason)
        {
            case ErrorReasons.OwnerDied:
                // Without a holder name the dead owner was a session, and the incarnation trailer is its id.
                return holderName is null
                    ? new OwnerDiedException(message, objectId, holderNamespace, null, null, incarnation is { } s ? new SessionId(s) : null)
                    : new OwnerDiedException(message, objectId, holderNamespace, holderName, incarnation is { } h ? new HolderIncarnation(h) : null);
            case ErrorReasons.ObjectFreed:
                return new ObjectFreedException(message, objectId ?? ObjectId.Empty);
            case ErrorReasons.ObjectLost:
                return new ObjectLostException(message, objectId ?? ObjectId.Empty);
            case ErrorReasons.ObjectNotFound:
                return new ObjectNotFoundException(message, objectId ?? ObjectId.Empty);
            case ErrorReasons.HolderNotFound:
                return new HolderNotFoundException(message, holderNamespace ?? string.Empty, holderName ?? string.Empty);
            case ErrorReasons.KeyNotFound:
                return new RegistryKeyNotFoundException(message, holderNamespace ?? string.Empty, holderName ?? string.Empty, string.Empty);
            case ErrorReasons.TypeMismatch:
                return new TypeMismatchException(message, objectId ?? ObjectId.Empty, string.Empty, string.Empty, 0);
            case ErrorReasons.StoreFull:
                return new ObjectStoreFullException(message);
            case ErrorReasons.InvalidEnvelope:
                return new InvalidEnvelopeException(message);
            case ErrorReasons.NotOwner:
                return new RefNotOwnedException(message, objectId, holderNamespace, holderName);
            case ErrorReasons.SessionExpired:
                return new SessionExpiredException(
                    $"{operation} ran in session {session}, which has ended on worker {address} (the worker restarted, or the lease lapsed while this process could not renew it): {message} The client opens a new session by itself: call again. Refs and holders obtained in the ended session stay invalid.",
                    new SessionId(session));
            case ErrorReasons.ChecksumMismatch:
                return new ChecksumMismatchException(message, objectId);
            case ErrorReasons.Unauthorized:
                return new UnauthorizedException(message);
            case ErrorReasons.WrongWorker:
                return new WrongWorkerException(message, objectId, new WorkerId(ParseId(detail(WireHeaders.WorkerId)) ?? ObjectId.Empty),
                    detail(WireHeaders.WorkerAddress) ?? string.Empty);
            case ErrorReasons.Unavailable:
                // Sent by a worker for something it could not reach for the call (a worker starting, or in a cluster
                // another worker or the directory that does not answer): transient, as the transport's own UNAVAILABLE.
                return new WorkerUnavailableException($"{operation} failed on worker {address}: {message}", address, inner);
            case ErrorReasons.Timeout:
                // The worker gave up on the call itself (a stream it waited on went idle): it had the request.
                return new RaySharingTimeoutException($"{operation}{subject.Describe()} on worker {address} timed out on the worker: {message}",
                    operation, address, TimeSpan.Zero, requestSent: true, subject.ObjectId, subject.HolderNamespace, subject.HolderName, inner);
            default:
                return new RaySharingException(reason, $"{operation} failed ({reason}): {message}", inner);
        }

    }

    /// <summary>A channel call's failure (protos/CHANNEL.md, "Errors"): the same reasons and context as a gRPC call's.</summary>
    public static Exception FromChannel(Wire.Channel.ChannelError error, string operation, string address, ObjectId session, CallSubject subject) =>
        FromReason(error.Reason, error.Message, key => error.Detail is { } detail && detail.TryGetValue(key, out var value) ? value : null, operation, address, session, subject, inner: null);

    public static RaySharingTimeoutException Deadline(string operation, string address, TimeSpan timeout, CallSubject subject, bool? requestSent, Exception inner) =>
        new($"{operation}{subject.Describe()} on worker {address} did not complete within {timeout.TotalSeconds:0.###} s (CallTimeout); {Sent(requestSent)}. The worker may be overloaded or stuck; raise CallTimeout only if the work is known to be slow.",
            operation, address, timeout, requestSent, subject.ObjectId, subject.HolderNamespace, subject.HolderName, inner);

    /// <summary>A transport failure that reached the client without a gRPC status (a stream's reset, an aborted request).</summary>
    public static WorkerUnavailableException ConnectionLost(string operation, string address, Exception inner) =>
        new($"{operation} lost its connection to the worker at {address}: {inner.Message.TrimEnd('.')}. The call may be tried again.", address, inner);

    public static InvalidEnvelopeException InvalidEnvelope(EnvelopeFormatException ex) =>
        new($"The bytes are not a valid ref envelope: {ex.Message}", ex);

    public static TypeMismatchException TypeMismatch(RefEnvelope envelope, string requested, string why, Exception? inner = null) =>
        new($"Object {envelope.ObjectId} cannot be read as {requested}: {why}. It holds {(envelope.TypeName.Length == 0 ? "an untyped value" : envelope.TypeName)} encoded as {CodecNames.ToName(envelope.Codec)}.",
            envelope.ObjectId, requested, envelope.TypeName, envelope.Codec, inner);

    public static RefNotOwnedException NotOwned(ObjectRef objectRef, ObjectHolder holder) =>
        new($"Object {objectRef.Id} is owned by {objectRef.Owner}, not by {holder}. A holder registers only objects it owns: put them with the holder as owner. Nothing was registered.",
            objectRef.Id, holder.Namespace, holder.Name);

    public static ChecksumMismatchException Corrupted(RefEnvelope envelope, string detail) =>
        new($"Object {envelope.ObjectId} arrived corrupted: {detail}. Get it again.", envelope.ObjectId);

    public static RaySharingTimeoutException StreamIdle(string operation, string address, TimeSpan idle, CallSubject subject, bool? requestSent, Exception? inner) =>
        new($"{operation}{subject.Describe()} on worker {address} stalled: no chunk for {idle.TotalSeconds:0.###} s (StreamIdleTimeout); {Sent(requestSent)}.",
            operation, address, idle, requestSent, subject.ObjectId, subject.HolderNamespace, subject.HolderName, inner);

    private static string Sent(bool? requestSent) => requestSent switch
    {
        true => "the worker had the request, so it may have taken effect",
        false => "the request never left this client",
        null => "the request was sent but no answer came, so whether it took effect is unknown",
    };

    public static ObjectDisposedException Disposed() => new(nameof(RaySharingClient), "The client is disposed; its session has ended.");

    private static string? Unescape(string? value) => value is null ? null : Uri.UnescapeDataString(value);

    /// <summary>The gRPC name of a status, for example <c>RESOURCE_EXHAUSTED</c>, so fallback reasons look like the others.</summary>
    private static string StatusName(StatusCode status) => status switch
    {
        StatusCode.InvalidArgument => "INVALID_ARGUMENT",
        StatusCode.DeadlineExceeded => "DEADLINE_EXCEEDED",
        StatusCode.NotFound => "NOT_FOUND",
        StatusCode.AlreadyExists => "ALREADY_EXISTS",
        StatusCode.PermissionDenied => "PERMISSION_DENIED",
        StatusCode.ResourceExhausted => "RESOURCE_EXHAUSTED",
        StatusCode.FailedPrecondition => "FAILED_PRECONDITION",
        StatusCode.OutOfRange => "OUT_OF_RANGE",
        StatusCode.DataLoss => "DATA_LOSS",
        _ => status.ToString().ToUpperInvariant(),
    };

    private static ObjectId? ParseId(string? hex)
    {
        if (hex is null)
        {
            return null;
        }

        try
        {
            return ObjectId.Parse(hex);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
