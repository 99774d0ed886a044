using Microsoft.Extensions.Logging;

namespace RaySharing.Internal;

/// <summary>Every log event of the client. Event ids by area, never renumbered: 1xxx session and lease, 2xxx calls.</summary>
internal static partial class ClientLog
{
    [LoggerMessage(1001, LogLevel.Information, "Session {SessionId} opened on worker {Address} (worker {WorkerId}), lease {LeaseMillis} ms")]
    public static partial void SessionOpened(ILogger logger, ObjectId sessionId, string address, ObjectId workerId, uint leaseMillis);

    [LoggerMessage(1002, LogLevel.Warning, "Lease renewal of session {SessionId} failed; retrying")]
    public static partial void LeaseRenewalFailed(ILogger logger, ObjectId sessionId, Exception exception);

    [LoggerMessage(1003, LogLevel.Warning, "Session {SessionId} has ended on the worker; opening a new session")]
    public static partial void SessionLost(ILogger logger, ObjectId sessionId);

    [LoggerMessage(1004, LogLevel.Information, "Session {SessionId} closed")]
    public static partial void SessionClosed(ILogger logger, ObjectId sessionId);

    [LoggerMessage(1005, LogLevel.Debug, "Closing session {SessionId} failed; the worker will end it when its lease lapses")]
    public static partial void CloseFailed(ILogger logger, ObjectId sessionId, Exception exception);

    [LoggerMessage(1006, LogLevel.Warning, "Session {PreviousSessionId} (worker {PreviousWorkerId}) was replaced by session {SessionId} (worker {WorkerId}) at {Address}; refs and holders obtained before it fail from now on")]
    public static partial void SessionReplaced(ILogger logger, ObjectId previousSessionId, ObjectId sessionId, ObjectId previousWorkerId, ObjectId workerId, string address);

    [LoggerMessage(1007, LogLevel.Warning, "Opening a session in place of ended session {SessionId} failed; the next call or renewal tries again")]
    public static partial void SessionReplaceFailed(ILogger logger, ObjectId sessionId, Exception exception);

    [LoggerMessage(1008, LogLevel.Error, "A SessionReplaced handler threw; the client ignores it")]
    public static partial void SessionReplacedHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(1009, LogLevel.Debug, "Session {SessionId} moves bytes through the worker's shared memory")]
    public static partial void SharedMemoryAttached(ILogger logger, ObjectId sessionId);

    [LoggerMessage(1010, LogLevel.Debug, "Session {SessionId} does not use the worker's shared memory: {Why}")]
    public static partial void SharedMemoryNotUsed(ILogger logger, ObjectId sessionId, string why);

    [LoggerMessage(1011, LogLevel.Debug, "Session {SessionId} uses the worker's channel at {EndPoint}")]
    public static partial void ChannelOpened(ILogger logger, ObjectId sessionId, string endPoint);

    [LoggerMessage(1012, LogLevel.Warning, "Session {SessionId} cannot use the worker's channel at {EndPoint}; its calls go over gRPC: {Why}")]
    public static partial void ChannelUnavailable(ILogger logger, ObjectId sessionId, string endPoint, string why);

    [LoggerMessage(2004, LogLevel.Debug, "The worker at {Address} that stores an object could not be read from directly; the read goes through this client's worker")]
    public static partial void StoringWorkerUnreachable(ILogger logger, string address, Exception exception);

    [LoggerMessage(2002, LogLevel.Debug, "Unpinning {Count} object(s) failed; the worker drops the pins when the session ends")]
    public static partial void UnpinFailed(ILogger logger, int count, Exception exception);

    [LoggerMessage(2003, LogLevel.Debug, "Aborting an unsealed in-place put failed; the worker drops it after its stream idle timeout or when the session ends")]
    public static partial void AbortFailed(ILogger logger, Exception exception);

    [LoggerMessage(2001, LogLevel.Debug, "Releasing {Count} ref(s) failed; the worker drops them when the session ends")]
    public static partial void ReleaseFailed(ILogger logger, int count, Exception exception);
}
