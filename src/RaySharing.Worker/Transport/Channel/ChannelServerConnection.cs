using System.Buffers;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using RaySharing.Wire;
using RaySharing.Wire.Channel;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// One accepted channel socket, served by a thread of its own with blocking socket calls: reads the preface, then
/// frames; handles each in order; appends the answers to one output buffer and sends them in one write once no whole
/// frame is left in the input (the batch of a pipelining client goes out together). Bodies move between the socket
/// and the handler's memory directly. Blocking calls on a dedicated thread, not ReceiveAsync on the thread pool:
/// the kernel wakes this thread itself when a request arrives, with no hand-off between threads, which measured
/// 1.5 to 2 times the small calls a second on one connection (README, "Performance"). Handlers run on this thread;
/// every read and write they ask for completes before it returns, so their awaits do not leave it.
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
    private readonly FrameBuffer _input;
    private readonly PooledBuffer _output;
    private readonly ChannelRequest _request;
    private readonly ChannelResponse _response;
    private readonly int _frameTimeoutMs;
    private int _receiveTimeoutMs;
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
        _frameTimeoutMs = (int)Math.Clamp(options.FrameTimeout.TotalMilliseconds, 1, int.MaxValue);
        _input = new FrameBuffer(options.MaxPayloadBytes, options.ReceiveBufferBytes);
        _output = new PooledBuffer();
        _request = new ChannelRequest(this);
        _response = new ChannelResponse(this, _output);

        // A send that makes no progress for the frame timeout fails the connection; a receive is bounded only
        // within a frame (an idle connection waits for its next request as long as it likes).
        _socket.Blocking = true;
        _socket.SendTimeout = _frameTimeoutMs;
    }

    public ChannelConnectionState State { get; }

    /// <summary>Closes the socket at once (listener stop): the blocked read or write ends.</summary>
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

    /// <summary>Serves the connection until it closes; on the calling thread, which it blocks.</summary>
    public void Run()
    {
        ChannelLog.ConnectionOpened(_logger, State.Id, State.Remote);
        var why = "the peer closed it";
        try
        {
            ReadPreface();
            while (true)
            {
                while (_input.TryReadFrame(out var header, out var payload))
                {
                    Process(header, payload);
                    if (_closeAfterFlush)
                    {
                        Flush();
                        why = "its HELLO failed";
                        LingerClose();
                        return;
                    }
                }

                if (_output.WrittenCount > 0)
                {
                    Flush();
                }

                var partial = _input.Buffered > 0;
                var received = Receive(_input.GetReceiveMemory().Span, timed: partial);
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
            SendConnectionError(ex.Reason, ex.Message);
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
            why = "the listener stopped";
        }
        catch (Exception ex) when (IsStall(ex))
        {
            why = $"a frame, body or send stalled for longer than the frame timeout ({_options.FrameTimeout.TotalSeconds:0.###} s)";
            ChannelLog.ConnectionFailed(_logger, State.Id, State.Remote, why, null);
            SendConnectionError(ErrorReasons.Timeout, $"The channel connection is closed: {why}.");
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
        {
            why = ex.Message;
            ChannelLog.ConnectionFailed(_logger, State.Id, State.Remote, why, ex);
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
                _input.Dispose();
                _output.Dispose();
            }
        }
    }

    internal ValueTask ReadBodyAsync(ChannelRequest request, Memory<byte> destination, CancellationToken cancellationToken)
    {
        try
        {
            var taken = _input.Take(destination.Span);
            request.BodyRemaining -= taken;
            destination = destination[taken..];
            while (!destination.IsEmpty)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var received = Receive(destination.Span, timed: true);
                if (received == 0)
                {
                    throw new IOException($"The channel peer closed the connection with {request.BodyRemaining} byte(s) of a {request.BodyLength}-byte body still to come.");
                }

                request.BodyRemaining -= received;
                destination = destination[received..];
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
        {
            _transportFailed = true;
            throw;
        }

        return ValueTask.CompletedTask;
    }

    internal ValueTask SendBodyAsync(ReadOnlySequence<byte> body, CancellationToken cancellationToken)
    {
        try
        {
            Flush();
            foreach (var segment in body)
            {
                // In chunks, so the frame timeout bounds a stall rather than the whole body.
                for (var at = 0; at < segment.Length; at += BodyChunkBytes)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    SendAll(segment.Span.Slice(at, Math.Min(BodyChunkBytes, segment.Length - at)));
                }
            }
        }
        catch
        {
            // Once the header went out, the peer expects the whole body: the connection cannot go on.
            _transportFailed = true;
            throw;
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>A blocking socket call that timed out: the frame timeout passed with no progress.</summary>
    private static bool IsStall(Exception ex) => ex is SocketException { SocketErrorCode: SocketError.TimedOut or SocketError.WouldBlock };

    /// <summary>Waits for a handler's work, which completes on this thread (its reads and writes block); anything else is waited for.</summary>
    private static void Wait(ValueTask pending)
    {
        if (pending.IsCompletedSuccessfully)
        {
            return;
        }

        pending.AsTask().GetAwaiter().GetResult();
    }

    private void Process(ChannelFrameHeader header, ReadOnlyMemory<byte> payload)
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
            _response.Fail(ErrorReasons.Unimplemented, $"This worker's channel has no op {header.Op} (version {ChannelPreface.Version} knows ops 1 to {(byte)ChannelOp.Fetch}).");
        }
        else if (op == ChannelOp.Hello && State.Session is not null)
        {
            _response.Fail(ErrorReasons.InvalidRequest, "The channel connection is already bound to a session; HELLO is sent once per connection.");
        }
        else
        {
            Handle(op);
        }

        _response.Complete();
        if (_request.BodyRemaining > 0)
        {
            DiscardBody();
        }

        _outputMark = _output.WrittenCount;
        _currentRequestId = 0;
    }

    private void Handle(ChannelOp op)
    {
        try
        {
            Wait(_handler.HandleAsync(_request, _response, _stop));
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

    private void DiscardBody()
    {
        _request.BodyRemaining -= _input.Skip(_request.BodyRemaining);
        while (_request.BodyRemaining > 0)
        {
            // The input buffer is empty now: its memory serves as scratch without being committed.
            var scratch = _input.GetReceiveMemory().Span;
            var received = Receive(scratch[..(int)Math.Min(scratch.Length, _request.BodyRemaining)], timed: true);
            if (received == 0)
            {
                throw new IOException($"The channel peer closed the connection with {_request.BodyRemaining} byte(s) of a body still to come.");
            }

            _request.BodyRemaining -= received;
        }
    }

    private void ReadPreface()
    {
        while (_input.Buffered < ChannelPreface.Size)
        {
            var received = Receive(_input.GetReceiveMemory().Span, timed: true);
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

        Flush();
    }

    private void SendConnectionError(string reason, string message)
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
            _socket.SendTimeout = (int)LingerTime.TotalMilliseconds;
            SendAll(_output.WrittenSpan);
            _output.Reset();
            LingerClose();
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
        {
            // Best effort: the peer may be gone already.
        }
    }

    /// <summary>
    /// Half-closes and reads what the peer still sends for a moment, so its unread bytes do not make the kernel
    /// reset the connection before the peer has read our last frame.
    /// </summary>
    private void LingerClose()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
            _socket.ReceiveTimeout = (int)LingerTime.TotalMilliseconds;
            var scratch = _input.GetReceiveMemory().Span;
            var until = Environment.TickCount64 + (long)LingerTime.TotalMilliseconds;
            long drained = 0;
            while (drained < 16 * 1024 * 1024 && Environment.TickCount64 < until)
            {
                var received = _socket.Receive(scratch);
                if (received == 0)
                {
                    break;
                }

                drained += received;
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
        {
        }
    }

    private void Flush()
    {
        SendAll(_output.WrittenSpan);
        _output.Reset();
        _outputMark = 0;
    }

    private void SendAll(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[_socket.Send(bytes)..];
        }
    }

    /// <summary>A blocking receive; within a frame (<paramref name="timed"/>) it fails with TimedOut after the frame timeout.</summary>
    private int Receive(Span<byte> destination, bool timed)
    {
        var timeout = timed ? _frameTimeoutMs : 0;
        if (timeout != _receiveTimeoutMs)
        {
            _socket.ReceiveTimeout = timeout;
            _receiveTimeoutMs = timeout;
        }

        return _socket.Receive(destination);
    }
}
