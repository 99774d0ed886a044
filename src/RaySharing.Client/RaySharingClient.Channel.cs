using System.Buffers;
using System.Buffers.Binary;
using Google.Protobuf;
using RaySharing.Internal;
using RaySharing.Internal.Channel;
using RaySharing.Protocol.V1;
using RaySharing.Wire;
using RaySharing.Wire.Channel;

namespace RaySharing;

/// <summary>The binary channel (protos/CHANNEL.md): small calls over one multiplexed connection, bulk bytes as bodies.</summary>
public sealed partial class RaySharingClient
{
    /// <summary>Bulk bodies are sent and received in pieces of this size, each checked while it is in the cache.</summary>
    private const int BodyPieceBytes = 1 << 20;

    /// <summary>
    /// Whether this client's session uses the worker's binary channel (<see cref="RaySharingClientOptions.UseChannel"/>,
    /// and the worker serves one this process can reach). Decided when the session opens.
    /// </summary>
    public bool UsesChannel => _session.Channel is not null;

    /// <summary>Whether a small call of <paramref name="size"/> bytes of object goes over the session's channel as one frame.</summary>
    private bool FitsChannelFrame(ClientSession session, long size) =>
        session.Channel is { } channel && size <= MaxUnaryObjectBytes && size <= channel.MaxPayloadBytes - 64 * 1024;

    /// <summary>
    /// Connects the session to the worker's channel and proves it with a HELLO: over the Unix socket when the session
    /// is on the worker's host, else (or if that fails) over TCP. Null, logged, when the channel cannot be used.
    /// </summary>
    private async Task<SessionChannel?> OpenChannelAsync(ClientSession session, ChannelOffer offer, ObjectId token, CancellationToken cancellationToken)
    {
        if (!_options.UseChannel)
        {
            return null;
        }

        var hello = ChannelMessages.Hello(token, offer.Key.Span);
        var payloadLimit = offer.MaxPayloadBytes == 0 ? ChannelFrameHeader.DefaultMaxPayloadBytes : (int)Math.Min(offer.MaxPayloadBytes, int.MaxValue);
        List<ChannelEndpoint> endpoints = [];
        if (session.Arena is not null && offer.UnixSocketPath.Length > 0)
        {
            endpoints.Add(ChannelEndpoint.Unix(offer.UnixSocketPath));
        }

        if (offer.Port is > 0 and <= 65535 && offer.Host.Length > 0)
        {
            endpoints.Add(ChannelEndpoint.Tcp(offer.Host, (int)offer.Port));
        }

        foreach (var endpoint in endpoints)
        {
            var channel = new SessionChannel(endpoint, hello, payloadLimit);
            try
            {
                using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                bound.CancelAfter(_options.ConnectTimeout);
                await channel.ConnectAsync(bound.Token).ConfigureAwait(false);
                ClientLog.ChannelOpened(_logger, session.Id, endpoint.ToString());
                return channel;
            }
            catch (Exception ex) when (ex is WorkerUnavailableException or ChannelFailure or ChannelProtocolException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                ClientLog.ChannelUnavailable(_logger, session.Id, endpoint.ToString(), ex.Message);
                await channel.DisposeAsync().ConfigureAwait(false);
            }
        }

        return null;
    }

    /// <summary>
    /// One small call over the channel, bounded by <see cref="RaySharingClientOptions.CallTimeout"/>; a failed reply
    /// becomes the exception its reason maps to, as for gRPC. The ok reply is the caller's to dispose.
    /// </summary>
    private async ValueTask<ChannelReply> ChannelCallAsync(ClientSession session, SessionChannel channel, string operation, ChannelOp op, ReadOnlyMemory<byte> payload, CallSubject subject, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var deadline = _deadlines.TokenFor(_options.CallTimeout);
        using var linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline) : null;
        ChannelReply reply;
        try
        {
            reply = await channel.CallAsync(op, payload, linked?.Token ?? deadline).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsCallFailure(ex, cancellationToken, deadline))
        {
            throw CallFailure(ex, session, operation, subject, cancellationToken);
        }

        if (reply.IsOk)
        {
            return reply;
        }

        using (reply)
        {
            throw Observe(ExceptionFactory.FromChannel(ReadError(reply, operation), operation, _address, session.Id, subject), session);
        }
    }

    /// <summary>Whether a channel call's exception is one <see cref="CallFailure"/> turns into the client's: cancellation, deadline, refusal, disposal.</summary>
    private bool IsCallFailure(Exception ex, CancellationToken cancellationToken, CancellationToken deadline) => ex switch
    {
        OperationCanceledException => cancellationToken.IsCancellationRequested || deadline.IsCancellationRequested,
        ChannelFailure => true,
        ObjectDisposedException => Volatile.Read(ref _disposed) != 0,
        _ => false,
    };

    /// <summary>What a channel call's failure (<see cref="IsCallFailure"/>) means to the caller, as a gRPC call's would.</summary>
    private Exception CallFailure(Exception ex, ClientSession session, string operation, CallSubject subject, CancellationToken cancellationToken) => ex switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => new OperationCanceledException($"{operation} was canceled.", ex, cancellationToken),
        OperationCanceledException => ExceptionFactory.Deadline(operation, _address, _options.CallTimeout, subject, requestSent: null, ex),
        ChannelFailure failure => Observe(ExceptionFactory.FromChannel(failure.Error, operation, _address, session.Id, subject), session),
        _ => ExceptionFactory.Disposed(),
    };

    private ChannelError ReadError(in ChannelReply reply, string operation)
    {
        try
        {
            return reply.ReadError();
        }
        catch (ChannelProtocolException ex)
        {
            throw ExceptionFactory.ConnectionLost(operation, _address, ex);
        }
    }

    /// <summary>A put whose bytes fit one channel frame.</summary>
    private async Task<TRef> PutOverChannelAsync<TRef>(ClientSession session, SessionChannel channel, PutHeader header, ReadOnlyMemory<byte> data, RefFactory<TRef> create, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        var fields = new ChannelPutFields(ChannelOwner(header.OwnerHolder), (int)header.Codec, header.TypeName, Checksums.Of(data.Span));
        using var payload = new PooledBuffer();
        ChannelMessages.WritePut(payload, fields, data.Span);
        using var reply = await ChannelCallAsync(session, channel, "Put", ChannelOp.Put, payload.WrittenMemory, PutSubject(header), cancellationToken).ConfigureAwait(false);
        return AdoptEnvelope(ReadReply(reply, "Put", static p => ChannelMessages.ReadEnvelope(p).ToArray()), create, session);
    }

    /// <summary>A get whose bytes fit one channel frame, handed to <paramref name="sink"/> once checked (or returned when the sink is null).</summary>
    private async Task<byte[]?> GetOverChannelAsync(ClientSession session, SessionChannel channel, ObjectRef objectRef, GetSink? sink, CancellationToken cancellationToken)
    {
        var envelope = objectRef.Envelope;
        using var payload = new PooledBuffer();
        ChannelMessages.WriteEnvelope(payload, objectRef.EnvelopeBytes);
        using var reply = await ChannelCallAsync(session, channel, "Get", ChannelOp.Get, payload.WrittenMemory, CallSubject.Object(envelope.ObjectId), cancellationToken).ConfigureAwait(false);
        ReadOnlyMemory<byte> data = default;
        ReadReply(reply, "Get", p => ChannelMessages.ReadObjectHeader(p, out data));
        if (data.Length != envelope.Size)
        {
            throw ExceptionFactory.Corrupted(envelope, $"{data.Length} bytes arrived, the envelope says {envelope.Size}");
        }

        // Copied out of the receive buffer and checked in one pass.
        var crc = new RunningCrc32();
        byte[]? array = null;
        if (sink is null)
        {
            array = GC.AllocateUninitializedArray<byte>(data.Length);
            crc.CopyAndAppend(data.Span, array);
        }
        else
        {
            await sink.WriteCheckedAsync(data, crc, cancellationToken).ConfigureAwait(false);
        }

        Verify(envelope, data.Length, crc.Current);
        return array;
    }

    /// <summary>Pins an object over the channel (the session maps the worker's arena); where its bytes are.</summary>
    private async Task<(long Offset, long Size)> PinOverChannelAsync(ClientSession session, SessionChannel channel, ObjectRef objectRef, CancellationToken cancellationToken)
    {
        using var payload = new PooledBuffer();
        ChannelMessages.WriteEnvelope(payload, objectRef.EnvelopeBytes);
        using var reply = await ChannelCallAsync(session, channel, "Pin", ChannelOp.Pin, payload.WrittenMemory, CallSubject.Object(objectRef.Id), cancellationToken).ConfigureAwait(false);
        var (offset, size, _) = ReadReply(reply, "Pin", static p => ChannelMessages.ReadPinned(p));
        return (offset, size);
    }

    /// <summary>Borrows, releases or unpins over the channel: one list of envelopes or ids.</summary>
    private async Task ListCallOverChannelAsync(ClientSession session, SessionChannel channel, string operation, ChannelOp op, IReadOnlyList<ReadOnlyMemory<byte>> items, CallSubject subject, CancellationToken cancellationToken)
    {
        using var payload = new PooledBuffer();
        ChannelMessages.WriteList(payload, items);
        using var reply = await ChannelCallAsync(session, channel, operation, op, payload.WrittenMemory, subject, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A get of any size as a channel body: a ticket from the worker (gRPC), then the bytes straight from the
    /// worker's store into the sink's memory, checked piece by piece.
    /// </summary>
    private async Task GetBulkAsync(ClientSession session, SessionChannel channel, ObjectRef objectRef, GetSink sink, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var envelope = objectRef.Envelope;
        var subject = CallSubject.Object(envelope.ObjectId);
        var scope = BeginCall(cancellationToken, session.Headers);
        var ticket = await UnaryAsync("IssueGetTicket", _objects.IssueGetTicketAsync(new IssueGetTicketRequest { Envelope = UnsafeByteOperations.UnsafeWrap(objectRef.EnvelopeBytes) }, scope.Options), scope, cancellationToken, subject).ConfigureAwait(false);
        await BulkExchangeAsync(session, channel, "BulkGet", subject, async (connection, idle, ct) =>
        {
            using var reply = await connection.ExchangeAsync(ChannelOp.BulkGet, ticket.Ticket.Memory, cancellationToken: ct).ConfigureAwait(false);
            ThrowIfFailed(session, reply, "BulkGet", subject);
            if (reply.BodyLength != envelope.Size)
            {
                throw ExceptionFactory.Corrupted(envelope, $"the worker sent {reply.BodyLength} bytes where the envelope promises {envelope.Size}");
            }

            var crc = new RunningCrc32();
            long received = 0;
            while (received < envelope.Size)
            {
                var memory = sink.GetMemory((int)Math.Min(BodyPieceBytes, envelope.Size - received));
                idle.CancelAfter(_options.StreamIdleTimeout);
                await connection.ReadBodyAsync(memory, cancellationToken: ct).ConfigureAwait(false);
                crc.Append(memory.Span);
                await sink.AdvanceAsync(memory.Length, ct).ConfigureAwait(false);
                received += memory.Length;
                progress?.Report(received);
            }

            Verify(envelope, received, crc.Current);
            return true;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A put of any size as a channel body: a ticket (gRPC) that reserves the room, then the bytes from the source
    /// straight to the socket with their CRC-32 last, computed on the way.
    /// </summary>
    private async Task<TRef> PutBulkAsync<TRef>(ClientSession session, SessionChannel channel, PutHeader header, PutSource source, RefFactory<TRef> create, IProgress<long>? progress, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        var subject = PutSubject(header);
        var scope = BeginCall(cancellationToken, session.Headers);
        var ticket = await UnaryAsync("IssuePutTicket", _objects.IssuePutTicketAsync(new IssuePutTicketRequest { Header = header }, scope.Options), scope, cancellationToken, subject).ConfigureAwait(false);
        var envelope = await BulkExchangeAsync(session, channel, "BulkPut", subject, async (connection, idle, ct) =>
        {
            using var reply = await connection.ExchangeAsync(ChannelOp.BulkPut, ticket.Ticket.Memory, source.Length + ChannelMessages.ChecksumTrailerBytes, async (send, sendToken) =>
            {
                var crc = new RunningCrc32();
                long sent = 0;
                await foreach (var chunk in source.ChunksAsync(BodyPieceBytes, sendToken).ConfigureAwait(false))
                {
                    crc.Append(chunk.Span);
                    idle.CancelAfter(_options.StreamIdleTimeout);
                    await send(chunk, sendToken).ConfigureAwait(false);
                    sent += chunk.Length;
                    progress?.Report(sent);
                }

                var trailer = new byte[ChannelMessages.ChecksumTrailerBytes];
                BinaryPrimitives.WriteUInt32LittleEndian(trailer, crc.Current);
                idle.CancelAfter(_options.StreamIdleTimeout);
                await send(trailer, sendToken).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
            ThrowIfFailed(session, reply, "BulkPut", subject);
            return ReadReply(reply, "BulkPut", static p => ChannelMessages.ReadEnvelope(p).ToArray());
        }, cancellationToken).ConfigureAwait(false);
        return AdoptEnvelope(envelope, create, session);
    }

    /// <summary>
    /// Runs one bulk exchange on a pooled body connection bound to the session, under an idle bound that each piece
    /// of the body renews (<see cref="RaySharingClientOptions.StreamIdleTimeout"/>). A connection left mid-body by a
    /// failure is closed, not pooled; the worker then drops the transfer.
    /// </summary>
    private async Task<T> BulkExchangeAsync<T>(ClientSession session, SessionChannel channel, string operation, CallSubject subject, Func<ChannelBodyConnection, CancellationTokenSource, CancellationToken, Task<T>> exchange, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        idle.CancelAfter(_options.StreamIdleTimeout);
        ChannelBodyConnection? connection = null;
        try
        {
            connection = await channel.RentAsync(idle.Token).ConfigureAwait(false);
            return await exchange(connection, idle, idle.Token).ConfigureAwait(false);
        }
        catch (ChannelFailure failure)
        {
            throw Observe(ExceptionFactory.FromChannel(failure.Error, operation, _address, session.Id, subject), session);
        }
        catch (Exception ex) when (ex is OperationCanceledException or WorkerUnavailableException)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException($"{operation} was canceled.", ex, cancellationToken);
            }

            if (_stopping.IsCancellationRequested)
            {
                throw ExceptionFactory.Disposed();
            }

            if (idle.IsCancellationRequested)
            {
                throw ExceptionFactory.StreamIdle(operation, _address, _options.StreamIdleTimeout, subject, requestSent: null, ex);
            }

            throw;
        }
        finally
        {
            if (connection is not null)
            {
                await channel.ReturnAsync(connection).ConfigureAwait(false);
            }
        }
    }

    private void ThrowIfFailed(ClientSession session, in ChannelReply reply, string operation, CallSubject subject)
    {
        if (!reply.IsOk)
        {
            throw Observe(ExceptionFactory.FromChannel(ReadError(reply, operation), operation, _address, session.Id, subject), session);
        }
    }

    /// <summary>Reads an ok reply's payload; a payload of the wrong shape means a broken worker.</summary>
    private T ReadReply<T>(in ChannelReply reply, string operation, Func<ReadOnlyMemory<byte>, T> read)
    {
        try
        {
            return read(reply.Payload);
        }
        catch (InvalidDataException ex)
        {
            throw ExceptionFactory.ConnectionLost(operation, _address, ex);
        }
    }

    // ---- Holder calls over the channel (ops HOLDER_GET, REGISTER, FETCH): the same requests and replies as gRPC's ----

    private async Task<HolderInfo> GetHolderOverChannelAsync(ClientSession session, SessionChannel channel, GetHolderRequest request, CallSubject subject, CancellationToken cancellationToken)
    {
        using var payload = new PooledBuffer();
        ChannelMessages.WriteHolderGet(payload, request.Namespace, request.Name);
        var info = await HolderCallAsync(session, channel, "GetHolder", ChannelOp.HolderGet, payload.WrittenMemory, subject, static p => ChannelMessages.ReadHolderInfo(p), cancellationToken).ConfigureAwait(false);
        return new HolderInfo
        {
            Namespace = info.Namespace,
            Name = info.Name,
            Incarnation = ByteString.CopyFrom(info.Incarnation.ToByteArray()),
            Lifetime = (Protocol.V1.HolderLifetime)info.Lifetime,
            WorkerAddress = info.WorkerAddress,
            WorkerId = ByteString.CopyFrom(info.WorkerId.ToByteArray()),
            OwnedObjects = info.OwnedObjects,
            Keys = info.Keys,
        };
    }

    private async Task<uint> RegisterOverChannelAsync(ClientSession session, SessionChannel channel, RegisterRequest request, CallSubject subject, CancellationToken cancellationToken)
    {
        using var payload = new PooledBuffer();
        ChannelMessages.WriteRegister(payload, ChannelOwner(request.Holder)!.Value, request.Key, [.. request.Envelopes.Select(e => e.Memory)]);
        return await HolderCallAsync(session, channel, "Register", ChannelOp.Register, payload.WrittenMemory, subject, static p => ChannelMessages.ReadCount(p), cancellationToken).ConfigureAwait(false);
    }

    private async Task<FetchReply> FetchOverChannelAsync(ClientSession session, SessionChannel channel, FetchRequest request, CallSubject subject, CancellationToken cancellationToken)
    {
        using var payload = new PooledBuffer();
        ChannelMessages.WriteFetch(payload, new ChannelFetch(ChannelOwner(request.Holder)!.Value, request.Key, request.Start, request.MaxCount,
            // A page fits one frame of the channel, as a gRPC page fits one message.
            Math.Min(request.MaxBytes, (uint)(channel.MaxPayloadBytes - (64 << 10))), request.ListVersion));
        return await HolderCallAsync(session, channel, "Fetch", ChannelOp.Fetch, payload.WrittenMemory, subject, static p =>
        {
            var page = ChannelMessages.ReadFetchPage(p);
            var fetched = new FetchReply { Total = page.Total, ListVersion = page.ListVersion };
            // Copied out of the reply's pooled buffer, which goes back when the reply is disposed.
            fetched.Envelopes.AddRange(page.Envelopes.Select(e => ByteString.CopyFrom(e.Span)));
            return fetched;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// One holder call over the channel, bounded by <see cref="RaySharingClientOptions.CallTimeout"/>. Holder calls may wait
    /// on another worker of a cluster (forwarded) or on its directory, and a connection answers its calls in order: each goes
    /// on a connection of its own from the session's pool, so a slow one never holds up the small calls multiplexed on the
    /// call connection. The ok reply is read by <paramref name="read"/> before the connection goes back to the pool.
    /// </summary>
    private async Task<T> HolderCallAsync<T>(ClientSession session, SessionChannel channel, string operation, ChannelOp op, ReadOnlyMemory<byte> payload,
        CallSubject subject, Func<ReadOnlyMemory<byte>, T> read, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var deadline = _deadlines.TokenFor(_options.CallTimeout);
        using var linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline) : null;
        ChannelBodyConnection? connection = null;
        var reusable = false;
        try
        {
            connection = await channel.RentAsync(linked?.Token ?? deadline).ConfigureAwait(false);
            using var reply = await connection.ExchangeAsync(op, payload, cancellationToken: linked?.Token ?? deadline).ConfigureAwait(false);
            // A whole exchange, ok or failed: the connection can serve another call.
            reusable = true;
            if (!reply.IsOk)
            {
                throw Observe(ExceptionFactory.FromChannel(ReadError(reply, operation), operation, _address, session.Id, subject), session);
            }

            return ReadReply(reply, operation, read);
        }
        catch (Exception ex) when (IsCallFailure(ex, cancellationToken, deadline))
        {
            throw CallFailure(ex, session, operation, subject, cancellationToken);
        }
        finally
        {
            if (connection is not null)
            {
                if (reusable)
                {
                    await channel.ReturnAsync(connection).ConfigureAwait(false);
                }
                else
                {
                    // Its answer may still come: never handed to another call.
                    await connection.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
    }

    private static ChannelHolder? ChannelOwner(HolderRef? holder) =>
        holder is null ? null : new ChannelHolder(holder.Namespace, holder.Name, holder.Incarnation.IsEmpty ? null : ObjectId.FromBytes(holder.Incarnation.Span));
}
