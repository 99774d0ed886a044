using Google.Protobuf;
using Grpc.Core;
using RaySharing.Wire;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Cluster;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Services;

[BindServiceMethod(typeof(StrictRequests), nameof(StrictRequests.Bind))]
internal sealed class ObjectsService(OwnershipGraph graph, ObjectStore store, ObjectOperations operations, RemoteObjects remote, RemotePuts remotePuts, WorkerOptions options) : Objects.ObjectsBase
{
    private static readonly Metadata AcceptedHeaders = [new(WireHeaders.PutAccepted, "1")];

    public override async Task<PutReply> Put(PutRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var (header, codec) = ValidateHeader(request.Header);
        if (header.Size > (ulong)options.MaxUnaryObjectBytes)
        {
            throw WorkerErrors.UnaryPutTooLarge(header.Size, options.MaxUnaryObjectBytes);
        }

        if (header.ChecksumFollows)
        {
            throw WorkerErrors.InvalidRequest("A unary put carries its checksum in the header; checksum_follows is for PutStream.");
        }

        // A wrong count is the sender's bug (gRPC delivers messages whole), not bytes damaged on the way.
        if ((ulong)request.Data.Length != header.Size)
        {
            throw WorkerErrors.InvalidRequest($"The put declared {header.Size} bytes but carried {request.Data.Length}; nothing was stored.");
        }

        var owner = header.OwnerHolder?.ToAddress();
        await remotePuts.PrepareAsync(session, owner, context.CancellationToken).ConfigureAwait(false);
        var stored = operations.PutWhole(session, owner, codec, header.TypeName, header.Checksum, request.Data.Span);
        return new PutReply { Envelope = UnsafeByteOperations.UnsafeWrap(stored.EnvelopeBytes) };
    }

    public override async Task<PutReply> PutStream(IAsyncStreamReader<PutRequest> requestStream, ServerCallContext context)
    {
        var session = context.SessionToken();
        if (!await NextAsync(requestStream, context).ConfigureAwait(false))
        {
            throw WorkerErrors.InvalidRequest("The put stream ended before its header.");
        }

        var first = requestStream.Current;
        var (header, codec) = ValidateHeader(first.Header);
        await remotePuts.PrepareAsync(session, header.OwnerHolder?.ToAddress(), context.CancellationToken).ConfigureAwait(false);
        var owner = graph.ResolvePutOwner(session, header.OwnerHolder?.ToAddress());
        var size = (long)header.Size;
        var bytes = store.Reserve(size);
        var committed = false;
        try
        {
            // The go-ahead: clients send the header alone and wait for these headers before sending bytes, so a
            // refusal (thrown above) reaches them before any byte is in flight.
            await context.WriteResponseHeadersAsync(AcceptedHeaders).ConfigureAwait(false);
            var crc = new RunningCrc32();
            long received = 0;
            uint? trailingChecksum = null;
            var message = first;
            while (true)
            {
                if (message.Header is not null && !ReferenceEquals(message, first))
                {
                    throw WorkerErrors.InvalidRequest("Only the first message of a put stream may carry a header.");
                }

                if (!message.Data.IsEmpty)
                {
                    if (message.Data.Length > size - received)
                    {
                        throw WorkerErrors.InvalidRequest($"The put declared {size} bytes but sent more; nothing was stored.");
                    }

                    using (store.Arena.Access())
                    {
                        crc.CopyAndAppend(message.Data.Span, bytes.Writable(received, message.Data.Length));
                    }

                    received += message.Data.Length;
                }

                trailingChecksum = message.HasChecksum ? message.Checksum : null;
                if (!await NextAsync(requestStream, context).ConfigureAwait(false))
                {
                    break;
                }

                message = requestStream.Current;
            }

            if (received != size)
            {
                throw WorkerErrors.InvalidRequest($"The put declared {size} bytes but sent {received}; nothing was stored.");
            }

            var declared = header.ChecksumFollows
                ? trailingChecksum ?? throw WorkerErrors.InvalidRequest("The put's header said its checksum follows, but the last message carried none; nothing was stored.")
                : header.Checksum;
            var checksum = crc.Current;
            if (checksum != declared)
            {
                throw WorkerErrors.ChecksumMismatch($"The put's bytes have checksum {checksum:x8} but the sender declared {declared:x8}; nothing was stored.");
            }

            var pinned = owner.Kind == OwnerKind.Holder ? new HolderAddress(owner.Namespace, owner.Name, owner.Incarnation) : (HolderAddress?)null;
            var stored = graph.CommitPut(session, pinned, bytes, codec, header.TypeName, declared);
            committed = true;
            return new PutReply { Envelope = UnsafeByteOperations.UnsafeWrap(stored.EnvelopeBytes) };
        }
        finally
        {
            if (!committed)
            {
                bytes.Free();
            }
        }
    }

    public override async Task<GetReply> Get(GetRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var envelope = request.Envelope.DecodeEnvelope();
        if (remote.IsElsewhere(envelope))
        {
            graph.RequireSession(session);
            return await remote.CallAsync(envelope, (peer, o) => peer.Objects.GetAsync(request, o), context.CancellationToken).ConfigureAwait(false);
        }

        var (stored, pin) = operations.ResolveForRead(session, envelope);
        using (pin)
        {
            if (stored.Bytes.Length > options.MaxUnaryObjectBytes)
            {
                throw WorkerErrors.ObjectTooLarge(stored.Id, stored.Bytes.Length, options.MaxUnaryObjectBytes);
            }

            var reply = NewHeaderReply(stored);
            // Copied: the reply is serialized after this returns, when nothing would hold the range any more.
            reply.Data = ByteString.CopyFrom(stored.Bytes.AsMemory().Span);
            return reply;
        }
    }

    public override async Task GetStream(GetRequest request, IServerStreamWriter<GetReply> responseStream, ServerCallContext context)
    {
        var session = context.SessionToken();
        var envelope = request.Envelope.DecodeEnvelope();
        if (remote.IsElsewhere(envelope))
        {
            // Relayed from the worker that stores the bytes, which checks the get as its own.
            graph.RequireSession(session);
            await remote.RelayStreamAsync(envelope, request, responseStream, options.StreamIdleTimeout, context.CancellationToken).ConfigureAwait(false);
            return;
        }

        var (stored, pin) = operations.ResolveForRead(session, envelope);
        // Each write serializes its chunk into the stream before it completes, so the pin can end with the loop.
        using var held = pin;
        var chunkBytes = request.ChunkBytes == 0 ? options.StreamChunkBytes : (int)Math.Clamp(request.ChunkBytes, OptionLimits.MinChunkBytes, (uint)options.MaxStreamChunkBytes);
        var reply = NewHeaderReply(stored);
        var sentHeader = false;
        // A reader that stops reading must not pin the object's range forever.
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        foreach (var slice in stored.Bytes.Slices(chunkBytes))
        {
            reply ??= new GetReply();
            reply.Data = UnsafeByteOperations.UnsafeWrap(slice);
            idle.CancelAfter(options.StreamIdleTimeout);
            await responseStream.WriteAsync(reply, idle.Token).ConfigureAwait(false);
            reply = null;
            sentHeader = true;
        }

        if (!sentHeader)
        {
            await responseStream.WriteAsync(NewHeaderReply(stored), context.CancellationToken).ConfigureAwait(false);
        }
    }

    public override async Task<BorrowReply> Borrow(BorrowRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var envelopes = request.Envelopes.DecodeEnvelopes();
        var elsewhere = Enumerable.Range(0, envelopes.Length).Where(i => remote.IsElsewhere(envelopes[i])).ToList();
        if (elsewhere.Count == 0)
        {
            graph.Borrow(session, envelopes);
            return new BorrowReply();
        }

        // Borrowed where their bytes are, for this session; then the local ones. A failure of either borrows nothing.
        var state = graph.RequireSession(session);
        await remote.BorrowAsync(state, elsewhere.Select(i => envelopes[i]).ToList(), i => request.Envelopes[elsewhere[i]], context.CancellationToken).ConfigureAwait(false);
        try
        {
            graph.Borrow(session, envelopes.Where(e => !remote.IsElsewhere(e)).ToList());
        }
        catch
        {
            graph.Release(session, elsewhere.Select(i => envelopes[i].ObjectId));
            throw;
        }

        return new BorrowReply();
    }

    public override Task<ReleaseReply> Release(ReleaseRequest request, ServerCallContext context)
    {
        graph.Release(context.SessionToken(), ObjectIds(request.ObjectIds, "object id to release"));
        return Task.FromResult(new ReleaseReply());
    }

    public override Task<StatsReply> Stats(StatsRequest request, ServerCallContext context)
    {
        graph.RequireSession(context.SessionToken());
        var stats = graph.Stats();
        return Task.FromResult(new StatsReply
        {
            UsedBytes = (ulong)stats.UsedBytes,
            CapacityBytes = (ulong)stats.CapacityBytes,
            Objects = (ulong)stats.Objects,
            Sessions = (uint)stats.Sessions,
            Holders = (uint)stats.Holders,
            SpilledBytes = (ulong)stats.SpilledBytes,
            SpillCapacityBytes = (ulong)stats.SpillCapacityBytes,
        });
    }

    public override async Task<CreateReply> Create(CreateRequest request, ServerCallContext context)
    {
        var (header, codec) = ValidateHeader(request.Header);
        await remotePuts.PrepareAsync(context.SessionToken(), header.OwnerHolder?.ToAddress(), context.CancellationToken).ConfigureAwait(false);
        var (handle, offset) = graph.CreateInArena(context.SessionToken(), header.OwnerHolder?.ToAddress(), codec, header.TypeName, (long)header.Size, options.StreamIdleTimeout);
        return new CreateReply { Handle = UnsafeByteOperations.UnsafeWrap(handle.ToByteArray()), Offset = (ulong)offset };
    }

    public override Task<PutReply> Seal(SealRequest request, ServerCallContext context)
    {
        var stored = graph.Seal(context.SessionToken(), Handle(request.Handle), request.Checksum);
        return Task.FromResult(new PutReply { Envelope = UnsafeByteOperations.UnsafeWrap(stored.EnvelopeBytes) });
    }

    public override Task<AbortReply> Abort(AbortRequest request, ServerCallContext context)
    {
        graph.AbortCreate(context.SessionToken(), Handle(request.Handle));
        return Task.FromResult(new AbortReply());
    }

    public override Task<PinReply> Pin(PinRequest request, ServerCallContext context)
    {
        var stored = graph.Pin(context.SessionToken(), request.Envelope.DecodeEnvelope());
        return Task.FromResult(new PinReply
        {
            Offset = stored.Bytes.Offset < 0 ? 0 : (ulong)stored.Bytes.Offset,
            Size = (ulong)stored.Bytes.Length,
            Codec = WireEnums.CodecToWire<Codec>(stored.Codec),
            TypeName = stored.TypeName,
            Checksum = stored.Checksum,
        });
    }

    public override Task<UnpinReply> Unpin(UnpinRequest request, ServerCallContext context)
    {
        graph.Unpin(context.SessionToken(), ObjectIds(request.ObjectIds, "object id to unpin"));
        return Task.FromResult(new UnpinReply());
    }

    public override Task<IssueGetTicketReply> IssueGetTicket(IssueGetTicketRequest request, ServerCallContext context)
    {
        var (ticket, stored) = graph.IssueGetTicket(context.SessionToken(), request.Envelope.DecodeEnvelope(), options.StreamIdleTimeout);
        return Task.FromResult(new IssueGetTicketReply
        {
            Ticket = UnsafeByteOperations.UnsafeWrap(ticket.ToByteArray()),
            Size = (ulong)stored.Bytes.Length,
            Codec = WireEnums.CodecToWire<Codec>(stored.Codec),
            TypeName = stored.TypeName,
            Checksum = stored.Checksum,
        });
    }

    public override async Task<IssuePutTicketReply> IssuePutTicket(IssuePutTicketRequest request, ServerCallContext context)
    {
        var (header, codec) = ValidateHeader(request.Header);
        await remotePuts.PrepareAsync(context.SessionToken(), header.OwnerHolder?.ToAddress(), context.CancellationToken).ConfigureAwait(false);
        var ticket = graph.IssuePutTicket(context.SessionToken(), header.OwnerHolder?.ToAddress(), codec, header.TypeName, (long)header.Size, options.StreamIdleTimeout);
        return new IssuePutTicketReply { Ticket = UnsafeByteOperations.UnsafeWrap(ticket.ToByteArray()) };
    }

    private static ObjectId Handle(ByteString handle) =>
        handle.OptionalId("handle") ?? throw WorkerErrors.InvalidRequest("The handle is empty.");

    private static ObjectId[] ObjectIds(Google.Protobuf.Collections.RepeatedField<ByteString> ids, string what)
    {
        var result = new ObjectId[ids.Count];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = ids[i].OptionalId(what) ?? throw WorkerErrors.InvalidRequest($"An {what} is empty.");
        }

        return result;
    }

    private async Task<bool> NextAsync(IAsyncStreamReader<PutRequest> stream, ServerCallContext context)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        idle.CancelAfter(options.StreamIdleTimeout);
        try
        {
            return await stream.MoveNext(idle.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or RpcException && idle.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw WorkerErrors.StreamIdle(options.StreamIdleTimeout);
        }
    }

    private static (PutHeader Header, ObjectCodec Codec) ValidateHeader(PutHeader? header) =>
        header is null
            ? throw WorkerErrors.InvalidRequest("The put has no header.")
            : (header, ObjectOperations.ValidatePut(header.Codec, header.TypeName, header.Size));

    private static GetReply NewHeaderReply(StoredObject stored) => new()
    {
        Size = (ulong)stored.Bytes.Length,
        Codec = WireEnums.CodecToWire<Codec>(stored.Codec),
        TypeName = stored.TypeName,
        Checksum = stored.Checksum,
    };
}
