using System.IO.Hashing;
using Google.Protobuf;
using Grpc.Core;
using RaySharing.Wire;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Services;

[BindServiceMethod(typeof(StrictRequests), nameof(StrictRequests.Bind))]
internal sealed class ObjectsService(OwnershipGraph graph, ObjectStore store, WorkerOptions options) : Objects.ObjectsBase
{
    private static readonly Metadata AcceptedHeaders = [new(WireHeaders.PutAccepted, "1")];

    public override Task<PutReply> Put(PutRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var (header, codec) = ValidateHeader(request.Header);
        if (header.Size > (ulong)options.MaxUnaryObjectBytes)
        {
            throw WorkerErrors.UnaryPutTooLarge(header.Size, options.MaxUnaryObjectBytes);
        }

        // A wrong count is the sender's bug (gRPC delivers messages whole), not bytes damaged on the way.
        if ((ulong)request.Data.Length != header.Size)
        {
            throw WorkerErrors.InvalidRequest($"The put declared {header.Size} bytes but carried {request.Data.Length}; nothing was stored.");
        }

        var checksum = Crc32.HashToUInt32(request.Data.Span);
        if (checksum != header.Checksum)
        {
            throw WorkerErrors.ChecksumMismatch($"The put's bytes have checksum {checksum:x8} but the header declared {header.Checksum:x8}; nothing was stored.");
        }

        // ByteString is immutable, so its memory is adopted as the object's bytes without a copy.
        var data = new ObjectData(request.Data.Memory);
        return Task.FromResult(Commit(session, header.OwnerHolder?.ToAddress(), data, codec, header));
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
        var owner = graph.ResolvePutOwner(session, header.OwnerHolder?.ToAddress());
        var size = (long)header.Size;
        Reserve(size);
        var committed = false;
        try
        {
            // The go-ahead: clients send the header alone and wait for these headers before sending bytes, so a
            // refusal (thrown above) reaches them before any byte is in flight.
            await context.WriteResponseHeadersAsync(AcceptedHeaders).ConfigureAwait(false);
            var chunks = new List<ReadOnlyMemory<byte>>();
            var crc = new Crc32();
            long received = 0;
            var message = first;
            while (true)
            {
                if (message.Header is not null && !ReferenceEquals(message, first))
                {
                    throw WorkerErrors.InvalidRequest("Only the first message of a put stream may carry a header.");
                }

                if (!message.Data.IsEmpty)
                {
                    received += message.Data.Length;
                    if (received > size)
                    {
                        throw WorkerErrors.InvalidRequest($"The put declared {size} bytes but sent more; nothing was stored.");
                    }

                    crc.Append(message.Data.Span);
                    chunks.Add(message.Data.Memory);
                }

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

            var checksum = crc.GetCurrentHashAsUInt32();
            if (checksum != header.Checksum)
            {
                throw WorkerErrors.ChecksumMismatch($"The put's bytes have checksum {checksum:x8} but the header declared {header.Checksum:x8}; nothing was stored.");
            }

            var pinned = owner.Kind == OwnerKind.Holder ? new HolderAddress(owner.Namespace, owner.Name, owner.Incarnation) : (HolderAddress?)null;
            var stored = graph.CommitPut(session, pinned, new ObjectData([.. chunks]), codec, header.TypeName, header.Checksum);
            committed = true;
            return new PutReply { Envelope = UnsafeByteOperations.UnsafeWrap(stored.EnvelopeBytes) };
        }
        finally
        {
            if (!committed)
            {
                store.Release(size);
            }
        }
    }

    public override Task<GetReply> Get(GetRequest request, ServerCallContext context)
    {
        var envelope = request.Envelope.DecodeEnvelope();
        var stored = graph.Resolve(context.SessionToken(), envelope);
        if (stored.Data.Length > options.MaxUnaryObjectBytes)
        {
            throw WorkerErrors.ObjectTooLarge(stored.Id, stored.Data.Length, options.MaxUnaryObjectBytes);
        }

        var reply = NewHeaderReply(stored);
        reply.Data = UnsafeByteOperations.UnsafeWrap(stored.Data.ToContiguous());
        return Task.FromResult(reply);
    }

    public override async Task GetStream(GetRequest request, IServerStreamWriter<GetReply> responseStream, ServerCallContext context)
    {
        var envelope = request.Envelope.DecodeEnvelope();
        var stored = graph.Resolve(context.SessionToken(), envelope);
        var chunkBytes = request.ChunkBytes == 0 ? options.StreamChunkBytes : (int)Math.Clamp(request.ChunkBytes, OptionLimits.MinChunkBytes, (uint)options.MaxStreamChunkBytes);
        var reply = NewHeaderReply(stored);
        var sentHeader = false;
        // A reader that stops reading must not pin the object's buffers forever (they may already be freed).
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        foreach (var slice in stored.Data.Slices(chunkBytes))
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

    public override Task<BorrowReply> Borrow(BorrowRequest request, ServerCallContext context)
    {
        graph.Borrow(context.SessionToken(), request.Envelopes.DecodeEnvelopes());
        return Task.FromResult(new BorrowReply());
    }

    public override Task<ReleaseReply> Release(ReleaseRequest request, ServerCallContext context)
    {
        var session = context.SessionToken();
        var ids = new ObjectId[request.ObjectIds.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = request.ObjectIds[i].OptionalId("object id") ?? throw WorkerErrors.InvalidRequest("An object id to release is empty.");
        }

        graph.Release(session, ids);
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
        });
    }

    private PutReply Commit(ObjectId session, HolderAddress? owner, ObjectData data, ObjectCodec codec, PutHeader header)
    {
        Reserve(data.Length);
        try
        {
            var stored = graph.CommitPut(session, owner, data, codec, header.TypeName, header.Checksum);
            return new PutReply { Envelope = UnsafeByteOperations.UnsafeWrap(stored.EnvelopeBytes) };
        }
        catch
        {
            store.Release(data.Length);
            throw;
        }
    }

    private void Reserve(long size)
    {
        if (!store.TryReserve(size))
        {
            throw WorkerErrors.StoreFull(size, store.UsedBytes, store.CapacityBytes);
        }
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

    private static (PutHeader Header, ObjectCodec Codec) ValidateHeader(PutHeader? header)
    {
        if (header is null)
        {
            throw WorkerErrors.InvalidRequest("The put has no header.");
        }

        if (!WireEnums.TryCodecFromWire(header.Codec, out var codec))
        {
            throw WorkerErrors.InvalidRequest($"Codec {header.Codec} is not known; use XLANG, RAW or ARROW.");
        }

        if (System.Text.Encoding.UTF8.GetByteCount(header.TypeName) > EnvelopeCodec.MaxStringBytes)
        {
            throw WorkerErrors.InvalidRequest($"The type name is longer than {EnvelopeCodec.MaxStringBytes} bytes.");
        }

        if (header.Size > long.MaxValue)
        {
            throw WorkerErrors.InvalidRequest($"Size {header.Size} is out of range.");
        }

        return (header, codec);
    }

    private static GetReply NewHeaderReply(StoredObject stored) => new()
    {
        Size = (ulong)stored.Data.Length,
        Codec = WireEnums.CodecToWire<Codec>(stored.Codec),
        TypeName = stored.TypeName,
        Checksum = stored.Checksum,
    };
}
