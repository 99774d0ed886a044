using System.Buffers;
using RaySharing.Wire;
using RaySharing.Wire.Channel;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// The answer to one request, written into the connection's output buffer (sent with the other answers of the
/// batch). Ok with an empty payload unless the handler writes one, fails, or sends a body. Reused for the
/// connection's next request.
/// </summary>
internal sealed class ChannelResponse
{
    private readonly ChannelServerConnection _connection;
    private readonly PooledBuffer _output;
    private int _headerAt;
    private uint _requestId;
    private byte _op;
    private ushort _status;
    private State _state;

    internal ChannelResponse(ChannelServerConnection connection, PooledBuffer output)
    {
        _connection = connection;
        _output = output;
    }

    private enum State
    {
        Open,
        BodySending,
        Done,
    }

    /// <summary>Where the ok payload goes, written in place in the output buffer.</summary>
    /// <exception cref="InvalidOperationException">The response failed or its body was sent.</exception>
    public IBufferWriter<byte> Payload => _state == State.Open && _status == ChannelOps.StatusOk
        ? _output
        : throw new InvalidOperationException("The channel response is already failed or sent; its payload can no longer be written.");

    /// <summary>Whether <see cref="Fail"/> was called.</summary>
    public bool IsFailed => _status != ChannelOps.StatusOk;

    /// <summary>Whether the body's bytes began to go out; after that a failure can only close the connection.</summary>
    internal bool BodyStarted => _state != State.Open;

    /// <summary>Replaces any payload written with an error (reason from protos/ERRORS.md).</summary>
    public void Fail(string reason, string message, IReadOnlyDictionary<string, string>? detail = null)
    {
        if (_state != State.Open)
        {
            throw new InvalidOperationException("The channel response's body was already sent; it can no longer fail.");
        }

        _output.Truncate(_headerAt + ChannelFrameHeader.Size);
        new ChannelError(reason, message, detail).Write(_output);
        _status = ChannelOps.StatusFailed;
    }

    /// <summary>
    /// Sends the response with a BODY: the header and the payload written so far (metadata), then each segment of
    /// <paramref name="body"/> straight from its memory to the socket, after the earlier answers of the batch.
    /// </summary>
    /// <exception cref="IOException">The socket failed or stalled; the connection closes.</exception>
    public async ValueTask SendBodyAsync(ReadOnlySequence<byte> body, CancellationToken cancellationToken = default)
    {
        if (_state != State.Open || IsFailed)
        {
            throw new InvalidOperationException("A failed or already sent channel response cannot carry a body.");
        }

        // The body length leads the payload: move the metadata written so far up by 8 bytes.
        var payloadAt = _headerAt + ChannelFrameHeader.Size;
        var metadata = _output.WrittenCount - payloadAt;
        _output.GetSpan(ChannelFrameHeader.BodyLengthSize);
        _output.Advance(ChannelFrameHeader.BodyLengthSize);
        var written = _output.WrittenSpan;
        written.Slice(payloadAt, metadata).CopyTo(written[(payloadAt + ChannelFrameHeader.BodyLengthSize)..]);
        ChannelFrameHeader.WriteBodyLength(written[payloadAt..], body.Length);
        WriteHeader(ChannelOps.FlagBody);
        _state = State.BodySending;
        await _connection.SendBodyAsync(body, cancellationToken).ConfigureAwait(false);
        _state = State.Done;
    }

    internal void Begin(uint requestId, byte requestOp)
    {
        _requestId = requestId;
        _op = (byte)(requestOp | ChannelOps.ResponseBit);
        _status = ChannelOps.StatusOk;
        _state = State.Open;
        _headerAt = _output.WrittenCount;
        _output.GetSpan(ChannelFrameHeader.Size);
        _output.Advance(ChannelFrameHeader.Size);
    }

    /// <summary>Fills in the header once the handler is done (a body response did so before its body).</summary>
    internal void Complete()
    {
        if (_state == State.Open)
        {
            WriteHeader(0);
            _state = State.Done;
        }
    }

    /// <summary>Turns a handler's exception into INTERNAL_ERROR, unless the body had begun (then the caller closes).</summary>
    internal void FailInternal(string message) => Fail(ErrorReasons.InternalError, message);

    private void WriteHeader(byte flags)
    {
        var length = _output.WrittenCount - _headerAt - ChannelFrameHeader.Size;
        new ChannelFrameHeader(length, _requestId, _op, flags, _status).Write(_output.WrittenSpan[_headerAt..]);
    }
}
