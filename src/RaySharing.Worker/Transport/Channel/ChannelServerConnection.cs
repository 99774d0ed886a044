using System.Buffers;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using RaySharing.Wire;
using RaySharing.Wire.Channel;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// One accepted channel socket: reads the preface, then frames; handles each in order; appends the answers to
/// one output buffer and sends them in one write once no whole frame is left in the input (the batch of a
/// pipelining client goes out together). Bodies move between the socket and the handler's memory directly.
/// </summary>
internal sealed class ChannelServerConnection
{
    // Each piece of a body sent is bounded by the frame timeout: a reader must take at least this much per timeout.
    private const int BodyChunkBytes = 1024 * 1024;
    private static readonly TimeSpan LingerTime = TimeSpan.FromSeconds(1);

    private readonly Socket _socket;
    private readonly ChannelListenerOptions _options;
    private readonly IChannelHandler _handler;
    private readonly ILogger _logger;
    private readonly CancellationToken _stop;

    // Linked to the listener's stop; armed with the frame timeout only while a frame, body or send is under way.
    private readonly CancellationTokenSource _io;
    private readonly FrameBuffer _input;
    private readonly PooledBuffer _output;
    private readonly ChannelRequest _request;
    private readonly ChannelResponse _response;
    private bool _prefaceSent;
    private bool _closeAfterFlush;
    private bool _transportFailed;
    private int _outputMark;
    private uint _currentRequestId;

    public ChannelServerConnection(Socket socket, ChannelConnectionState state, ChannelListenerOptions options, IChannelHandler handler, ILogger logger, CancellationToken stop)
    {
        _socket = socket;
        State = state;
        _options = options;
        _handler = handler;
        _logger = logger;
        _stop = stop;
        _io = CancellationTokenSource.CreateLinkedTokenSource(stop);
        _input = new FrameBuffer(options.MaxPayloadBytes, options.ReceiveBufferBytes);
        _output = new PooledBuffer();
        _request = new ChannelRequest(this);
        _response = new ChannelResponse(this, _output);
    }

    public ChannelConnectionState State { get; }

    /// <summary>Closes the socket at once (listener stop): pending reads and writes end.</summary>
    public void Abort()
    {
        try
        {
            _socket.Dispose();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public async Task RunAsync()
    {
        ChannelLog.ConnectionOpened(_logger, State.Id, State.Remote);
        var why = "the peer closed it";
        try
        {
            await ReadPrefaceAsync().ConfigureAwait(false);
            while (true)
            {
                while (_input.TryReadFrame(out var header, out var payload))
                {
                    await ProcessAsync(header, payload).ConfigureAwait(false);
                    if (_closeAfterFlush)
                    {
                        await FlushAsync().ConfigureAwait(false);
                        why = "its HELLO failed";
                        await LingerCloseAsync().ConfigureAwait(false);
                        return;
                    }
                }

                if (_output.WrittenCount > 0)
                {
                    await FlushAsync().ConfigureAwait(false);
                }

                var partial = _input.Buffered > 0;
                var received = await ReceiveAsync(_input.GetReceiveMemory(), timed: partial).ConfigureAwait(false);
                if (received == 0)
                {
                    if (partial)
                    {
                        why = "the peer closed it in the middle of a frame";
                    }

                    return;
                }

                _input.Commit(received);
            }
        }
        catch (ChannelProtocolException ex)
        {
            why = $"protocol error: {ex.Message}";
            ChannelLog.ProtocolViolation(_logger, State.Id, State.Remote, ex.Reason, ex.Message);
            await SendConnectionErrorAsync(ex.Reason, ex.Message).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            why = "the listener stopped";
        }
        catch (OperationCanceledException) when (_io.IsCancellationRequested)
        {
            why = $"a frame, body or send stalled for longer than the frame timeout ({_options.FrameTimeout.TotalSeconds:0.###} s)";
            ChannelLog.ConnectionFailed(_logger, State.Id, State.Remote, why, null);
            await SendConnectionErrorAsync(ErrorReasons.Timeout, $"The channel connection is closed: {why}.").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
        {
            why = ex.Message;
            if (!_stop.IsCancellationRequested)
            {
                ChannelLog.ConnectionFailed(_logger, State.Id, State.Remote, why, ex);
            }
        }
        catch (Exception ex)
        {
            // A handler that failed after its body went out: the peer cannot be answered any more.
            why = $"{ex.GetType().Name}: {ex.Message}";
            ChannelLog.ConnectionFailed(_logger, State.Id, State.Remote, why, ex);
        }
        finally
        {
            ChannelLog.ConnectionClosed(_logger, State.Id, State.Remote, why);
            try
            {
                _handler.ConnectionClosed(State);
            }
            finally
            {
                Abort();
                _io.Dispose();
                _input.Dispose();
                _output.Dispose();
            }
        }
    }

    internal async ValueTask ReadBodyAsync(ChannelRequest request, Memory<byte> destination, CancellationToken cancellationToken)
    {
        try
        {
            var taken = _input.Take(destination.Span);
            request.BodyRemaining -= taken;
            destination = destination[taken..];
            while (!destination.IsEmpty)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var received = await ReceiveAsync(destination, timed: true).ConfigureAwait(false);
                if (received == 0)
                {
                    throw new IOException($"The channel peer closed the connection with {request.BodyRemaining} byte(s) of a {request.BodyLength}-byte body still to come.");
                }

                request.BodyRemaining -= received;
                destination = destination[received..];
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException || (ex is OperationCanceledException && _io.IsCancellationRequested))
        {
            _transportFailed = true;
            throw;
        }
    }

    internal async ValueTask SendBodyAsync(ReadOnlySequence<byte> body, CancellationToken cancellationToken)
    {
        try
        {
            await FlushAsync().ConfigureAwait(false);
            foreach (var segment in body)
            {
                // In chunks, so the frame timeout bounds a stall rather than the whole body.
                for (var at = 0; at < segment.Length; at += BodyChunkBytes)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    await SendAllAsync(segment.Slice(at, Math.Min(BodyChunkBytes, segment.Length - at))).ConfigureAwait(false);
                }
            }
        }
        catch
        {
            // Once the header went out, the peer expects the whole body: the connection cannot go on.
            _transportFailed = true;
            throw;
        }
    }

    private async ValueTask ProcessAsync(ChannelFrameHeader header, ReadOnlyMemory<byte> payload)
    {
        _currentRequestId = header.RequestId;
        if (header.IsResponse || header.Op == 0)
        {
            throw new ChannelProtocolException($"A client sent op 0x{header.Op:x2}, which is not a request op.");
        }

        if (header.Status != ChannelOps.StatusOk)
        {
            throw new ChannelProtocolException($"A client sent a request with status {header.Status}; requests carry 0.");
        }

        _request.Reset(header, payload);
        var op = (ChannelOp)header.Op;
        if (State.Session is null && ((op != ChannelOp.Hello && op != ChannelOp.Ping) || _request.HasBody))
        {
            // Before HELLO nobody vouches for the peer: no op that acts, and no body to swallow.
            throw new ChannelProtocolException($"The channel connection sent {op}{(_request.HasBody ? " with a body" : string.Empty)} before a successful HELLO.", ErrorReasons.Unauthorized);
        }

        _response.Begin(header.RequestId, header.Op);
        if (op == ChannelOp.Ping)
        {
            if (_request.HasBody)
            {
                _response.Fail(ErrorReasons.InvalidRequest, "PING carries no body.");
            }
            else
            {
                _response.Payload.Write(_request.Payload.Span);
            }
        }
        else if (!ChannelOps.IsKnownRequest(header.Op))
        {
            _response.Fail(ErrorReasons.Unimplemented, $"This worker's channel has no op {header.Op} (version {ChannelPreface.Version} knows ops 1 to 8).");
        }
        else if (op == ChannelOp.Hello && State.Session is not null)
        {
            _response.Fail(ErrorReasons.InvalidRequest, "The channel connection is already bound to a session; HELLO is sent once per connection.");
        }
        else
        {
            await HandleAsync(op).ConfigureAwait(false);
        }

        _response.Complete();
        if (_request.BodyRemaining > 0)
        {
            await DiscardBodyAsync().ConfigureAwait(false);
        }

        _outputMark = _output.WrittenCount;
        _currentRequestId = 0;
    }

    private async ValueTask HandleAsync(ChannelOp op)
    {
        try
        {
            await _handler.HandleAsync(_request, _response, _stop).ConfigureAwait(false);
        }
        catch (Exception ex) when (!_transportFailed && !_response.BodyStarted && !(ex is OperationCanceledException && _stop.IsCancellationRequested))
        {
            ChannelLog.HandlerFailed(_logger, op.ToString(), State.Id, ex);
            _response.FailInternal($"The worker failed handling {op}: {ex.GetType().Name}. Report it with the worker's log.");
        }

        if (_output.WrittenCount - _outputMark - ChannelFrameHeader.Size > _options.MaxPayloadBytes && !_response.BodyStarted)
        {
            _response.FailInternal($"The worker's answer to {op} exceeds the channel's payload limit of {_options.MaxPayloadBytes} bytes; it should have been a body.");
        }

        if (op == ChannelOp.Hello && _response.IsFailed)
        {
            _closeAfterFlush = true;
        }
    }

    private async ValueTask DiscardBodyAsync()
    {
        _request.BodyRemaining -= _input.Skip(_request.BodyRemaining);
        while (_request.BodyRemaining > 0)
        {
            // The input buffer is empty now: its memory serves as scratch without being committed.
            var scratch = _input.GetReceiveMemory();
            var received = await ReceiveAsync(scratch[..(int)Math.Min(scratch.Length, _request.BodyRemaining)], timed: true).ConfigureAwait(false);
            if (received == 0)
            {
                throw new IOException($"The channel peer closed the connection with {_request.BodyRemaining} byte(s) of a body still to come.");
            }

            _request.BodyRemaining -= received;
        }
    }

    private async ValueTask ReadPrefaceAsync()
    {
        while (_input.Buffered < ChannelPreface.Size)
        {
            var received = await ReceiveAsync(_input.GetReceiveMemory(), timed: true).ConfigureAwait(false);
            if (received == 0)
            {
                throw new IOException("The peer closed the connection before its preface.");
            }

            _input.Commit(received);
        }

        Span<byte> preface = stackalloc byte[ChannelPreface.Size];
        _input.Take(preface);
        var version = ChannelPreface.Read(preface);
        ChannelPreface.Write(_output.GetSpan(ChannelPreface.Size));
        _output.Advance(ChannelPreface.Size);
        _prefaceSent = true;
        _outputMark = _output.WrittenCount;
        if (version != ChannelPreface.Version)
        {
            throw new ChannelProtocolException($"The client speaks channel version {version}; this worker speaks version {ChannelPreface.Version} (its preface says so).");
        }

        await FlushAsync().ConfigureAwait(false);
    }

    private async ValueTask SendConnectionErrorAsync(string reason, string message)
    {
        try
        {
            // Answers of the batch that were whole stay; a half-written one goes.
            _output.Truncate(Math.Min(_outputMark, _output.WrittenCount));
            if (!_prefaceSent)
            {
                ChannelPreface.Write(_output.GetSpan(ChannelPreface.Size));
                _output.Advance(ChannelPreface.Size);
                _prefaceSent = true;
            }

            var headerAt = _output.WrittenCount;
            _output.GetSpan(ChannelFrameHeader.Size);
            _output.Advance(ChannelFrameHeader.Size);
            new ChannelError(reason, message).Write(_output);
            var length = _output.WrittenCount - headerAt - ChannelFrameHeader.Size;
            new ChannelFrameHeader(length, _currentRequestId, (byte)ChannelOp.ConnectionError, 0, ChannelOps.StatusConnectionError)
                .Write(_output.WrittenSpan[headerAt..]);
            using var bound = new CancellationTokenSource(LingerTime);
            var bytes = _output.WrittenMemory;
            while (!bytes.IsEmpty)
            {
                bytes = bytes[await _socket.SendAsync(bytes, SocketFlags.None, bound.Token).ConfigureAwait(false)..];
            }

            _output.Reset();
            await LingerCloseAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // Best effort: the peer may be gone already.
        }
    }

    /// <summary>
    /// Half-closes and reads what the peer still sends for a moment, so its unread bytes do not make the kernel
    /// reset the connection before the peer has read our last frame.
    /// </summary>
    private async ValueTask LingerCloseAsync()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
            using var bound = new CancellationTokenSource(LingerTime);
            var scratch = _input.GetReceiveMemory();
            long drained = 0;
            while (drained < 16 * 1024 * 1024)
            {
                var received = await _socket.ReceiveAsync(scratch, SocketFlags.None, bound.Token).ConfigureAwait(false);
                if (received == 0)
                {
                    break;
                }

                drained += received;
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    private async ValueTask FlushAsync()
    {
        await SendAllAsync(_output.WrittenMemory).ConfigureAwait(false);
        _output.Reset();
        _outputMark = 0;
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            var pending = _socket.SendAsync(bytes, SocketFlags.None, _io.Token);
            var sent = pending.IsCompleted ? pending.GetAwaiter().GetResult() : await TimedAsync(pending).ConfigureAwait(false);
            bytes = bytes[sent..];
        }
    }

    private ValueTask<int> ReceiveAsync(Memory<byte> destination, bool timed)
    {
        var pending = _socket.ReceiveAsync(destination, SocketFlags.None, _io.Token);
        return pending.IsCompleted || !timed ? pending : TimedAsync(pending);
    }

    private async ValueTask<int> TimedAsync(ValueTask<int> pending)
    {
        _io.CancelAfter(_options.FrameTimeout);
        try
        {
            return await pending.ConfigureAwait(false);
        }
        finally
        {
            _io.CancelAfter(Timeout.Infinite);
        }
    }
}
