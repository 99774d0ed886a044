using RaySharing.Wire.Channel;

namespace RaySharing.Internal.Channel;

/// <summary>A failed channel reply or HELLO: the worker's error, for the client to map like a gRPC status.</summary>
internal sealed class ChannelFailure(ChannelError error) : Exception(error.ToString())
{
    public ChannelError Error { get; } = error;
}

/// <summary>
/// One session's use of the worker's binary channel (protos/CHANNEL.md): a multiplexed call connection for small
/// calls and a pool of body connections for bulk transfers, each bound to the session by a HELLO. A call connection
/// that broke (a timeout, a worker that closed it) is replaced by the next call; if no new one can be made, the call
/// fails with <see cref="WorkerUnavailableException"/>, as a gRPC call would.
/// </summary>
internal sealed class SessionChannel : IAsyncDisposable
{
    private readonly byte[] _hello;
    private readonly int _maxPayloadBytes;
    private readonly ChannelBodyPool _bodies;
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private volatile ChannelConnection? _calls;
    private int _disposed;

    public SessionChannel(ChannelEndpoint endpoint, byte[] hello, int maxPayloadBytes)
    {
        Endpoint = endpoint;
        _hello = hello;
        _maxPayloadBytes = maxPayloadBytes;
        _bodies = new ChannelBodyPool(endpoint, maxIdle: 4, maxPayloadBytes, HelloAsync);
    }

    public ChannelEndpoint Endpoint { get; }

    /// <summary>The largest payload a request may carry.</summary>
    public int MaxPayloadBytes => _maxPayloadBytes;

    /// <summary>Connects the call connection and proves the session on it; used at session open to test the channel.</summary>
    /// <exception cref="WorkerUnavailableException">The channel cannot be reached.</exception>
    /// <exception cref="ChannelFailure">The worker refused the HELLO.</exception>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        try
        {
            await CallsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelUnavailableException ex)
        {
            throw Unavailable(ex);
        }
    }

    /// <summary>Sends one small call and waits for its reply, ok or failed (dispose it).</summary>
    /// <exception cref="WorkerUnavailableException">The channel cannot be reached, or broke under the call.</exception>
    public async ValueTask<ChannelReply> CallAsync(ChannelOp op, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        try
        {
            var calls = _calls is { IsBroken: false } live ? live : await CallsAsync(cancellationToken).ConfigureAwait(false);
            return await calls.SendAsync(op, payload, cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelUnavailableException ex)
        {
            throw Unavailable(ex);
        }
    }

    /// <summary>The client's public form of a channel that did not answer.</summary>
    public static WorkerUnavailableException Unavailable(ChannelUnavailableException ex) => new(ex.Message, ex.Address, ex);

    /// <summary>A body connection bound to the session, for one transfer; give it back with <see cref="ReturnAsync"/>.</summary>
    public ValueTask<ChannelBodyConnection> RentAsync(CancellationToken cancellationToken) => _bodies.RentAsync(cancellationToken);

    public ValueTask ReturnAsync(ChannelBodyConnection connection) => _bodies.ReturnAsync(connection);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_calls is { } calls)
        {
            await calls.DisposeAsync().ConfigureAwait(false);
        }

        await _bodies.DisposeAsync().ConfigureAwait(false);
    }

    private async ValueTask<ChannelConnection> CallsAsync(CancellationToken cancellationToken)
    {
        await _connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            if (_calls is { IsBroken: false } live)
            {
                return live;
            }

            if (_calls is { } broken)
            {
                await broken.DisposeAsync().ConfigureAwait(false);
            }

            var connection = await ChannelConnection.ConnectAsync(Endpoint, _maxPayloadBytes, cancellationToken).ConfigureAwait(false);
            try
            {
                using var reply = await connection.SendAsync(ChannelOp.Hello, _hello, cancellationToken).ConfigureAwait(false);
                if (!reply.IsOk)
                {
                    throw new ChannelFailure(reply.ReadError());
                }
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            _calls = connection;
            return connection;
        }
        finally
        {
            _connecting.Release();
        }
    }

    private async Task HelloAsync(ChannelBodyConnection connection, CancellationToken cancellationToken)
    {
        using var reply = await connection.ExchangeAsync(ChannelOp.Hello, _hello, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (!reply.IsOk)
        {
            throw new ChannelFailure(reply.ReadError());
        }
    }
}
