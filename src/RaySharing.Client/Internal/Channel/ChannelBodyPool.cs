using System.Collections.Concurrent;
using RaySharing.Wire.Channel;

namespace RaySharing.Internal.Channel;

/// <summary>
/// Idle body connections to one worker, so bulk transfers run side by side without reconnecting each time and
/// never share a socket with small calls. A connection that broke or still has unread body bytes is not kept.
/// </summary>
/// <param name="endpoint">Where the worker's channel listens.</param>
/// <param name="maxIdle">How many idle connections are kept.</param>
/// <param name="maxPayloadBytes">The largest response payload accepted.</param>
/// <param name="onConnect">Run on each new connection before its first use (a HELLO); a failure closes it and is the caller's.</param>
internal sealed class ChannelBodyPool(ChannelEndpoint endpoint, int maxIdle = 4, int maxPayloadBytes = ChannelFrameHeader.DefaultMaxPayloadBytes, Func<ChannelBodyConnection, CancellationToken, Task>? onConnect = null) : IAsyncDisposable
{
    private readonly ConcurrentBag<ChannelBodyConnection> _idle = [];
    private int _disposed;

    public ChannelEndpoint Endpoint => endpoint;

    /// <summary>An idle connection, or a new one.</summary>
    public async ValueTask<ChannelBodyConnection> RentAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        while (_idle.TryTake(out var connection))
        {
            if (!connection.IsBroken)
            {
                return connection;
            }

            await connection.DisposeAsync().ConfigureAwait(false);
        }

        var fresh = await ChannelBodyConnection.ConnectAsync(endpoint, maxPayloadBytes, cancellationToken).ConfigureAwait(false);
        if (onConnect is not null)
        {
            try
            {
                await onConnect(fresh, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await fresh.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }

        return fresh;
    }

    /// <summary>Gives a connection back: kept if it is whole and between exchanges and the pool has room, closed otherwise.</summary>
    public async ValueTask ReturnAsync(ChannelBodyConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (connection.IsBroken || connection.BodyRemaining > 0 || Volatile.Read(ref _disposed) != 0 || _idle.Count >= maxIdle)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            return;
        }

        _idle.Add(connection);
    }

    public async ValueTask DisposeAsync()
    {
        Interlocked.Exchange(ref _disposed, 1);
        while (_idle.TryTake(out var connection))
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
