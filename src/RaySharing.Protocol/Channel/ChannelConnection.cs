using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using RaySharing.Wire.Channel;

namespace RaySharing.Internal.Channel;

/// <summary>
/// A multiplexed channel connection for small calls (protos/CHANNEL.md, "Multiplexing"): any number of callers
/// send at once. A lone call is written at once, inline; while other calls are in flight the write is made
/// from the thread pool, so the frames of callers arriving meanwhile (and during a write under way) go out
/// together in one write, and the worker answers them in one write too. One reader
/// completes each waiter by request id. A canceled call leaves the connection intact (its late reply is
/// dropped); a broken connection fails every waiter with <see cref="ChannelUnavailableException"/>.
/// </summary>
internal sealed class ChannelConnection : IAsyncDisposable
{
    /// <summary>Payloads from this size up are handed to their call in the receive buffer itself; smaller ones are copied.</summary>
    private const int AdoptPayloadBytes = 64 << 10;

    private const int MaxPooledCalls = 256;

    private readonly Socket _socket;
    private readonly int _maxPayloadBytes;
    private readonly object _writeLock = new();
    private readonly Dictionary<uint, PendingCall> _calls = [];
    private readonly ConcurrentQueue<PendingCall> _pool = new();
    private readonly CancellationTokenSource _closed = new();
    private readonly Task _reader;
    private PooledBuffer _pending = new();
    private PooledBuffer _sending = new();
    private bool _flushing;
    private uint _nextId;
    private Exception? _failure;
    private long _frames;
    private long _writes;

    private ChannelConnection(Socket socket, ChannelEndpoint endpoint, int maxPayloadBytes)
    {
        _socket = socket;
        Endpoint = endpoint;
        _maxPayloadBytes = maxPayloadBytes;
        _reader = Task.Run(ReadLoopAsync);
    }

    public ChannelEndpoint Endpoint { get; }

    /// <summary>Whether the connection broke or was disposed; a broken connection fails every call.</summary>
    public bool IsBroken => Volatile.Read(ref _failure) is not null;

    /// <summary>Request frames written so far; with <see cref="Writes"/>, how well writes coalesce.</summary>
    public long FramesSent => Volatile.Read(ref _frames);

    /// <summary>Socket writes made so far.</summary>
    public long Writes => Volatile.Read(ref _writes);

    /// <summary>Calls sent and not answered yet.</summary>
    public int PendingCount
    {
        get
        {
            lock (_calls)
            {
                return _calls.Count;
            }
        }
    }

    /// <summary>Connects and exchanges prefaces.</summary>
    /// <exception cref="ChannelUnavailableException">The connection could not be made.</exception>
    public static async Task<ChannelConnection> ConnectAsync(ChannelEndpoint endpoint, int maxPayloadBytes = ChannelFrameHeader.DefaultMaxPayloadBytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        var socket = await endpoint.ConnectAsync(cancellationToken).ConfigureAwait(false);
        return new ChannelConnection(socket, endpoint, maxPayloadBytes);
    }

    /// <summary>
    /// Sends one request and waits for its response. Safe for any number of concurrent callers. The reply's
    /// payload is rented: dispose the reply.
    /// </summary>
    /// <exception cref="ArgumentException">The payload exceeds the payload limit.</exception>
    /// <exception cref="OperationCanceledException">Canceled; the connection stays usable and a late reply is dropped.</exception>
    /// <exception cref="ChannelUnavailableException">The connection broke (before or while this call waited).</exception>
    public ValueTask<ChannelReply> SendAsync(ChannelOp op, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (payload.Length > _maxPayloadBytes)
        {
            throw new ArgumentException($"A channel payload of {payload.Length} bytes exceeds the limit of {_maxPayloadBytes}; send the bytes as a body.", nameof(payload));
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ChannelReply>(cancellationToken);
        }

        if (!_pool.TryDequeue(out var call))
        {
            call = new PendingCall(this);
        }

        uint id;
        int inFlight;
        lock (_calls)
        {
            if (_failure is { } failure)
            {
                return ValueTask.FromException<ChannelReply>(failure);
            }

            // Id 0 names no request (connection errors); an id still waiting after a wrap is skipped.
            do
            {
                id = unchecked(++_nextId);
            }
            while (id == 0 || _calls.ContainsKey(id));
            _calls.Add(id, call);
            inFlight = _calls.Count;
        }

        var reply = call.Start(id, cancellationToken);
        bool flush;
        lock (_writeLock)
        {
            var span = _pending.GetSpan(ChannelFrameHeader.Size + payload.Length);
            new ChannelFrameHeader(payload.Length, id, (byte)op, 0, ChannelOps.StatusOk).Write(span);
            payload.Span.CopyTo(span[ChannelFrameHeader.Size..]);
            _pending.Advance(ChannelFrameHeader.Size + payload.Length);
            _frames++;
            flush = !_flushing;
            _flushing = true;
        }

        if (flush)
        {
            if (inFlight <= 1)
            {
                // Alone: write now. Not awaited: a write that completes at once runs inline; one that waits leaves
                // the caller free to cancel.
                _ = FlushLoopAsync();
            }
            else
            {
                // Others are calling too: write from the pool, so the frames they add meanwhile go in the same write.
                ThreadPool.UnsafeQueueUserWorkItem(static connection => _ = connection.FlushLoopAsync(), this, preferLocal: false);
            }
        }

        return reply;
    }

    public async ValueTask DisposeAsync()
    {
        Fail(new ObjectDisposedException(nameof(ChannelConnection), $"The channel connection to {Endpoint} is closed."));
        try
        {
            await _reader.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The reader's failure went to the waiters.
        }
    }

    private async Task FlushLoopAsync()
    {
        try
        {
            while (true)
            {
                lock (_writeLock)
                {
                    if (_pending.WrittenCount == 0 || _failure is not null)
                    {
                        _flushing = false;
                        return;
                    }

                    (_pending, _sending) = (_sending, _pending);
                }

                // One flusher at a time (_flushing), so a plain increment.
                _writes++;
                var bytes = _sending.WrittenMemory;
                while (!bytes.IsEmpty)
                {
                    bytes = bytes[await _socket.SendAsync(bytes, SocketFlags.None, _closed.Token).ConfigureAwait(false)..];
                }

                _sending.Reset();
            }
        }
        catch (Exception ex)
        {
            lock (_writeLock)
            {
                _flushing = false;
            }

            Fail(ex);
        }
    }

    private async Task ReadLoopAsync()
    {
        using var input = new FrameBuffer(_maxPayloadBytes);
        try
        {
            while (true)
            {
                while (input.TryReadFrame(out var header, out var payload))
                {
                    Dispatch(header, payload, input);
                }

                var received = await _socket.ReceiveAsync(input.GetReceiveMemory(), SocketFlags.None, _closed.Token).ConfigureAwait(false);
                if (received == 0)
                {
                    throw new IOException(input.Buffered > 0 ? "The worker closed the channel in the middle of a frame." : "The worker closed the channel.");
                }

                input.Commit(received);
            }
        }
        catch (Exception ex)
        {
            Fail(ex);
        }
    }

    private void Dispatch(ChannelFrameHeader header, ReadOnlyMemory<byte> payload, FrameBuffer input)
    {
        if (header.Op == (byte)ChannelOp.ConnectionError)
        {
            var error = ChannelError.Read(payload.ToArray());
            throw new ChannelProtocolException($"The worker closed the channel: {error.Reason}: {error.Message}", error.Reason);
        }

        if (!header.IsResponse || header.HasBody)
        {
            throw new ChannelProtocolException($"The worker sent op 0x{header.Op:x2} with flags 0x{header.Flags:x2} on a call connection, which carries responses without bodies only.");
        }

        PendingCall? call;
        lock (_calls)
        {
            _calls.Remove(header.RequestId, out call);
        }

        if (call is null)
        {
            // No waiter: the call was canceled and its reply comes late.
            return;
        }

        // A large payload (an object's bytes) takes the receive buffer with it rather than being copied out of it.
        if (payload.Length >= AdoptPayloadBytes && MemoryMarshal.TryGetArray(payload, out var segment))
        {
            var array = input.DetachArray();
            call.Complete(ChannelReply.Adopt(header, array, segment.Offset, segment.Count));
            return;
        }

        call.Complete(ChannelReply.Copy(header, payload.Span));
    }

    private bool TryRemove(uint id, PendingCall call)
    {
        lock (_calls)
        {
            if (_calls.TryGetValue(id, out var found) && ReferenceEquals(found, call))
            {
                _calls.Remove(id);
                return true;
            }

            return false;
        }
    }

    private void Fail(Exception cause)
    {
        PendingCall[] waiting;
        Exception failure;
        lock (_calls)
        {
            if (_failure is not null)
            {
                return;
            }

            failure = cause is ObjectDisposedException
                ? cause
                : new ChannelUnavailableException($"The channel to the worker at {Endpoint} broke: {cause.Message.TrimEnd('.')}. Calls that were waiting may or may not have taken effect; connect again.", Endpoint.ToString(), cause);
            Volatile.Write(ref _failure, failure);
            waiting = [.. _calls.Values];
            _calls.Clear();
        }

        _closed.Cancel();
        _socket.Dispose();
        foreach (var call in waiting)
        {
            call.Fault(failure);
        }
    }

    private void Return(PendingCall call)
    {
        if (_pool.Count < MaxPooledCalls)
        {
            _pool.Enqueue(call);
        }
    }

    /// <summary>One waiting call: a reusable value task source, completed by the reader, a cancellation or a failure.</summary>
    private sealed class PendingCall(ChannelConnection owner) : IValueTaskSource<ChannelReply>
    {
        private ManualResetValueTaskSourceCore<ChannelReply> _core = new() { RunContinuationsAsynchronously = true };
        private CancellationTokenRegistration _registration;
        private uint _id;

        public ValueTask<ChannelReply> Start(uint id, CancellationToken cancellationToken)
        {
            _id = id;
            if (cancellationToken.CanBeCanceled)
            {
                _registration = cancellationToken.UnsafeRegister(static (state, token) => ((PendingCall)state!).Cancel(token), this);
            }

            return new ValueTask<ChannelReply>(this, _core.Version);
        }

        public void Complete(ChannelReply reply) => _core.SetResult(reply);

        public void Fault(Exception exception) => _core.SetException(exception);

        public ChannelReply GetResult(short token)
        {
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                // Waits for a cancellation callback that is still running, so the next use starts clean.
                _registration.Dispose();
                _registration = default;
                _core.Reset();
                owner.Return(this);
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        private void Cancel(CancellationToken token)
        {
            if (owner.TryRemove(_id, this))
            {
                _core.SetException(new OperationCanceledException($"The channel call was canceled; its reply, if it comes, is dropped.", token));
            }
        }
    }
}
