using System.Collections.Concurrent;
using RaySharing.Wire.Channel;

namespace RaySharing.Internal.Channel;

/// <summary>
/// Idle body connections to one worker, so bulk transfers run side by side without reconnecting each time and
/// never share a socket with small calls. A connection that broke or still has unread body bytes is not kept.
/// </summary>
internal sealed class ChannelBodyPool(ChannelEndpoint endpoint, int maxIdle = 4, int maxPayloadBytes = ChannelFrameHeader.DefaultMaxPayloadBytes) : IAsyncDisposable
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

        return await ChannelBodyConnection.ConnectAsync(endpoint, maxPayloadBytes, cancellationToken).ConfigureAwait(false);
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
