namespace RaySharing.Internal.Channel;

/// <summary>
/// A channel connection could not be made, or broke: the worker at <see cref="Address"/> did not answer there. The .NET
/// client reports it as its public <c>WorkerUnavailableException</c>; a worker calling another takes it as that worker
/// not answering.
/// </summary>
internal sealed class ChannelUnavailableException(string message, string address, Exception? innerException = null) : IOException(message, innerException)
{
    /// <summary>The channel endpoint that did not answer (<c>tcp://host:port</c> or <c>unix:path</c>).</summary>
    public string Address { get; } = address;
}
