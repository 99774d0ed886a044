using Microsoft.Extensions.Logging;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>Log events of the channel transport: event ids 5xxx, never renumbered (beside WorkerLog's 1xxx-4xxx).</summary>
internal static partial class ChannelLog
{
    [LoggerMessage(5001, LogLevel.Information, "RaySharing channel listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, string endPoint);

    [LoggerMessage(5002, LogLevel.Debug, "Channel connection {ConnectionId} from {Remote} opened")]
    public static partial void ConnectionOpened(ILogger logger, long connectionId, string remote);

    [LoggerMessage(5003, LogLevel.Debug, "Channel connection {ConnectionId} from {Remote} closed: {Why}")]
    public static partial void ConnectionClosed(ILogger logger, long connectionId, string remote, string why);

    [LoggerMessage(5004, LogLevel.Warning, "Channel connection {ConnectionId} from {Remote} broke the protocol and is closed: {Reason}: {Message}")]
    public static partial void ProtocolViolation(ILogger logger, long connectionId, string remote, string reason, string message);

    [LoggerMessage(5005, LogLevel.Error, "Channel request {Op} on connection {ConnectionId} failed in the handler; answered INTERNAL_ERROR")]
    public static partial void HandlerFailed(ILogger logger, string op, long connectionId, Exception exception);

    [LoggerMessage(5006, LogLevel.Information, "Channel connection {ConnectionId} from {Remote} failed: {Why}")]
    public static partial void ConnectionFailed(ILogger logger, long connectionId, string remote, string why, Exception? exception);

    [LoggerMessage(5007, LogLevel.Information, "Removed the stale channel socket file {Path}")]
    public static partial void StaleSocketRemoved(ILogger logger, string path);

    [LoggerMessage(5008, LogLevel.Error, "Accepting channel connections on {EndPoint} failed; the listener stops accepting there")]
    public static partial void AcceptFailed(ILogger logger, string endPoint, Exception exception);
}
