namespace RaySharing.Wire.Channel;

/// <summary>
/// Bytes on a channel broke the framing rules of protos/CHANNEL.md: the connection cannot go on. Carries the
/// reason (from protos/ERRORS.md) that the error frame names, <c>PROTOCOL_ERROR</c> unless said otherwise.
/// </summary>
internal sealed class ChannelProtocolException(string message, string reason = ErrorReasons.ProtocolError, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>The reason sent in the error frame.</summary>
    public string Reason { get; } = reason;
}
