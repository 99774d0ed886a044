namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// What the channel's requests do. The transport calls it once per request, in the connection's order, and
/// never concurrently for one connection. It answers <c>PING</c> itself, refuses every op but <c>HELLO</c> on a
/// connection without a session, and turns an exception into an <c>INTERNAL_ERROR</c> response.
/// </summary>
internal interface IChannelHandler
{
    /// <summary>
    /// Handles one request. Most complete synchronously; the next request of the connection waits for this one,
    /// and so do the answers already made in the same batch (they go out in the batch's one write), so a handler
    /// that awaits I/O delays its connection's earlier answers too.
    /// <paramref name="request"/> and <paramref name="response"/> are reused for the connection's next request:
    /// keep neither, nor the payload memory, past the returned task.
    /// </summary>
    /// <param name="request">The op, payload, connection and, for a BODY request, its body.</param>
    /// <param name="response">Where the answer goes: an ok payload (the default, empty), an error, or a BODY.</param>
    /// <param name="cancellationToken">Canceled when the listener stops.</param>
    ValueTask HandleAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken);

    /// <summary>The connection closed (for any reason); its <see cref="ChannelConnectionState.Session"/> may be let go.</summary>
    void ConnectionClosed(ChannelConnectionState connection)
    {
    }
}

/// <summary>One accepted channel connection, as the handler sees it.</summary>
internal sealed class ChannelConnectionState(long id, string remote)
{
    /// <summary>A number unique among the listener's connections, for logs.</summary>
    public long Id { get; } = id;

    /// <summary>The peer's address (or <c>unix:</c> and the socket path).</summary>
    public string Remote { get; } = remote;

    /// <summary>
    /// The session a successful <c>HELLO</c> bound the connection to; set by the handler. Until it is set, the
    /// transport refuses every op but <c>HELLO</c> and <c>PING</c>.
    /// </summary>
    public object? Session { get; set; }
}
