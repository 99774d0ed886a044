using System.Buffers;
using System.Net.Sockets;
using RaySharing.Wire.Channel;

namespace RaySharing.Internal.Channel;

/// <summary>
/// A channel connection for bulk transfers (protos/CHANNEL.md, "Bodies"): one exchange at a time, the body
/// going from the caller's memory to the socket and from the socket into the caller's destination with no
/// copy of ours in between. Kept apart from the call connection so a big body never delays small calls. Any
/// failure or cancellation in the middle of a body breaks the connection (the stream cannot be resumed).
/// </summary>
internal sealed class ChannelBodyConnection : IAsyncDisposable
{
    private const int ChunkBytes = 4 * 1024 * 1024;
    private const int StreamBufferBytes = 1024 * 1024;

    private readonly Socket _socket;
    private readonly FrameBuffer _input;
    private readonly byte[] _header = new byte[ChannelFrameHeader.Size + ChannelFrameHeader.BodyLengthSize];
    private readonly SemaphoreSlim _exclusive = new(1, 1);
    private uint _nextId;
    private long _bodyRemaining;
    private bool _broken;

    private ChannelBodyConnection(Socket socket, ChannelEndpoint endpoint, int maxPayloadBytes)
    {
        _socket = socket;
        Endpoint = endpoint;
        _input = new FrameBuffer(maxPayloadBytes);
    }

    public ChannelEndpoint Endpoint { get; }

    /// <summary>Whether the connection can take no more exchanges (failed, canceled mid-body, or disposed).</summary>
    public bool IsBroken => Volatile.Read(ref _broken);

    /// <summary>Body bytes of the last response not read yet; the next exchange needs it at 0.</summary>
    public long BodyRemaining => _bodyRemaining;

    public static async Task<ChannelBodyConnection> ConnectAsync(ChannelEndpoint endpoint, int maxPayloadBytes = ChannelFrameHeader.DefaultMaxPayloadBytes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        Socket socket;
        try
        {
            socket = await endpoint.ConnectAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelUnavailableException ex)
        {
            throw SessionChannel.Unavailable(ex);
        }

        return new ChannelBodyConnection(socket, endpoint, maxPayloadBytes);
    }

    /// <summary>
    /// Sends a request (or, with a null <paramref name="body"/>, a request without body) and reads its response's
    /// header and payload. A response body, if any, is then read with one of the <c>ReadBody</c> methods.
    /// </summary>
    /// <exception cref="WorkerUnavailableException">The connection broke; it is unusable now.</exception>
    public Task<ChannelReply> ExchangeAsync(ChannelOp op, ReadOnlyMemory<byte> payload, ReadOnlySequence<byte>? body = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default) =>
        RunAsync(op, payload, body?.Length ?? -1, async ct =>
        {
            if (body is { } sequence)
            {
                long sent = 0;
                foreach (var segment in sequence)
                {
                    for (var at = 0; at < segment.Length; at += ChunkBytes)
                    {
                        var chunk = segment.Slice(at, Math.Min(ChunkBytes, segment.Length - at));
                        await SendAllAsync(chunk, ct).ConfigureAwait(false);
                        sent += chunk.Length;
                        progress?.Report(sent);
                    }
                }
            }
        }, cancellationToken);

    /// <summary>Sends a request whose body is the next <paramref name="length"/> bytes of <paramref name="body"/>, and reads the response's header and payload.</summary>
    /// <exception cref="EndOfStreamException">The stream ended before <paramref name="length"/> bytes; the connection is broken.</exception>
    public Task<ChannelReply> ExchangeAsync(ChannelOp op, ReadOnlyMemory<byte> payload, Stream body, long length, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return RunAsync(op, payload, length, async ct =>
        {
            // A stream has no memory of its own to send from: one pooled buffer, the least a stream allows.
            var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(StreamBufferBytes, Math.Max(length, 1)));
            try
            {
                long sent = 0;
                while (sent < length)
                {
                    var read = await body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - sent)), ct).ConfigureAwait(false);
                    if (read == 0)
                    {
                        throw new EndOfStreamException($"The body stream ended after {sent} of its {length} bytes.");
                    }

                    await SendAllAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                    sent += read;
                    progress?.Report(sent);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }, cancellationToken);
    }

    /// <summary>
    /// Sends a request whose body of <paramref name="bodyLength"/> bytes <paramref name="writeBody"/> writes, through
    /// the send function it is given, and reads the response's header and payload.
    /// </summary>
    public Task<ChannelReply> ExchangeAsync(ChannelOp op, ReadOnlyMemory<byte> payload, long bodyLength, Func<Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>, CancellationToken, Task> writeBody, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(writeBody);
        ArgumentOutOfRangeException.ThrowIfNegative(bodyLength);
        return RunAsync(op, payload, bodyLength, ct => writeBody(SendAllAsync, ct), cancellationToken);
    }

    /// <summary>Reads the next <paramref name="destination"/>.Length bytes of the response body straight into it.</summary>
    public async ValueTask ReadBodyAsync(Memory<byte> destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(destination.Length, _bodyRemaining, nameof(destination));
        await GuardAsync(async ct =>
        {
            var done = 0L;
            var taken = _input.Take(destination.Span);
            _bodyRemaining -= taken;
            done += taken;
            var rest = destination[taken..];
            while (!rest.IsEmpty)
            {
                var received = await ReceiveAsync(rest[..Math.Min(rest.Length, ChunkBytes)], ct).ConfigureAwait(false);
                _bodyRemaining -= received;
                done += received;
                rest = rest[received..];
                progress?.Report(done);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the rest of the response body into <paramref name="destination"/>, in pieces of the writer's own memory.</summary>
    public async Task ReadBodyAsync(IBufferWriter<byte> destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        await GuardAsync(async ct =>
        {
            var done = 0L;
            while (_bodyRemaining > 0)
            {
                var memory = destination.GetMemory((int)Math.Min(_bodyRemaining, ChunkBytes));
                memory = memory[..(int)Math.Min(memory.Length, _bodyRemaining)];
                var count = _input.Take(memory.Span);
                if (count == 0)
                {
                    count = await ReceiveAsync(memory, ct).ConfigureAwait(false);
                }

                destination.Advance(count);
                _bodyRemaining -= count;
                done += count;
                progress?.Report(done);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Copies the rest of the response body to <paramref name="destination"/>, through one pooled buffer.</summary>
    public async Task ReadBodyAsync(Stream destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        await GuardAsync(async ct =>
        {
            var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(StreamBufferBytes, Math.Max(_bodyRemaining, 1)));
            try
            {
                var done = 0L;
                while (_bodyRemaining > 0)
                {
                    var memory = buffer.AsMemory(0, (int)Math.Min(buffer.Length, _bodyRemaining));
                    var count = _input.Take(memory.Span);
                    if (count == 0)
                    {
                        count = await ReceiveAsync(memory, ct).ConfigureAwait(false);
                    }

                    await destination.WriteAsync(buffer.AsMemory(0, count), ct).ConfigureAwait(false);
                    _bodyRemaining -= count;
                    done += count;
                    progress?.Report(done);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync()
    {
        Break();

        // An exchange under way may still be receiving into the input buffer: then it goes to the GC, not the pool.
        if (_exclusive.Wait(0))
        {
            _input.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private async Task<ChannelReply> RunAsync(ChannelOp op, ReadOnlyMemory<byte> payload, long bodyLength, Func<CancellationToken, Task> sendBody, CancellationToken cancellationToken)
    {
        ThrowIfBroken();
        if (!await _exclusive.WaitAsync(0, CancellationToken.None).ConfigureAwait(false))
        {
            throw new InvalidOperationException("A body connection carries one exchange at a time.");
        }

        try
        {
            ThrowIfBroken();
            if (_bodyRemaining > 0)
            {
                throw new InvalidOperationException($"The last response's body has {_bodyRemaining} unread byte(s); read it before the next exchange.");
            }

            ChannelReply reply = default;
            await GuardAsync(async ct =>
            {
                var hasBody = bodyLength >= 0;
                var prefix = hasBody ? ChannelFrameHeader.BodyLengthSize : 0;
                var id = unchecked(++_nextId == 0 ? ++_nextId : _nextId);
                new ChannelFrameHeader(prefix + payload.Length, id, (byte)op, hasBody ? ChannelOps.FlagBody : (byte)0, ChannelOps.StatusOk).Write(_header);
                if (hasBody)
                {
                    ChannelFrameHeader.WriteBodyLength(_header.AsSpan(ChannelFrameHeader.Size), bodyLength);
                }

                await SendAllAsync(_header.AsMemory(0, ChannelFrameHeader.Size + prefix), ct).ConfigureAwait(false);
                await SendAllAsync(payload, ct).ConfigureAwait(false);
                await sendBody(ct).ConfigureAwait(false);
                reply = await ReadReplyAsync(id, ct).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            return reply;
        }
        finally
        {
            _exclusive.Release();
        }
    }

    private async Task<ChannelReply> ReadReplyAsync(uint id, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_input.TryReadFrame(out var header, out var payload))
            {
                if (header.Op == (byte)ChannelOp.ConnectionError)
                {
                    var error = ChannelError.Read(payload.ToArray());
                    throw new ChannelProtocolException($"The worker closed the channel: {error.Reason}: {error.Message}", error.Reason);
                }

                if (!header.IsResponse || header.RequestId != id)
                {
                    throw new ChannelProtocolException($"The worker answered request {header.RequestId} (op 0x{header.Op:x2}) where request {id} was due.");
                }

                var bodyLength = header.HasBody ? ChannelFrameHeader.ReadBodyLength(payload.Span) : 0;
                var reply = ChannelReply.Copy(header, payload.Span[(header.HasBody ? ChannelFrameHeader.BodyLengthSize : 0)..], bodyLength);
                _bodyRemaining = bodyLength;
                return reply;
            }

            var received = await ReceiveAsync(_input.GetReceiveMemory(), cancellationToken).ConfigureAwait(false);
            _input.Commit(received);
        }
    }

    private async Task GuardAsync(Func<CancellationToken, Task> exchange, CancellationToken cancellationToken)
    {
        ThrowIfBroken();
        try
        {
            await exchange(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Half an exchange leaves the byte stream at an unknown place: nothing more may go over it.
            Break();
            if (ex is SocketException or IOException or ObjectDisposedException or ChannelProtocolException)
            {
                throw new WorkerUnavailableException($"The body connection to the worker at {Endpoint} broke: {ex.Message.TrimEnd('.')}. The transfer did not complete; try it again on a new connection.", Endpoint.ToString(), ex);
            }

            throw;
        }
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[await _socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false)..];
        }
    }

    private async ValueTask<int> ReceiveAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        var received = await _socket.ReceiveAsync(destination, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        return received > 0 ? received : throw new IOException(_bodyRemaining > 0
            ? $"The worker closed the connection with {_bodyRemaining} body byte(s) still to come."
            : "The worker closed the connection.");
    }

    private void ThrowIfBroken()
    {
        if (IsBroken)
        {
            throw new WorkerUnavailableException($"The body connection to {Endpoint} is broken; take another.", Endpoint.ToString());
        }
    }

    private void Break()
    {
        Volatile.Write(ref _broken, true);
        _socket.Dispose();
    }
}
