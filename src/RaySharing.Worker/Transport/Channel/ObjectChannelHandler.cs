using System.Buffers.Binary;
using Google.Protobuf;
using RaySharing.Protocol.V1;
using RaySharing.Wire;
using RaySharing.Wire.Channel;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Services;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// The channel's ops (protos/CHANNEL.md): each means what the gRPC call of the same name means and fails with the
/// same reasons, through the same <see cref="ObjectOperations"/> and <see cref="OwnershipGraph"/> calls. A
/// connection acts for the session its HELLO proved; every op checks that session again, so a session that ended
/// fails its connection's next op with SESSION_EXPIRED.
/// </summary>
internal sealed class ObjectChannelHandler(OwnershipGraph graph, ObjectStore store, ObjectOperations operations, IServiceProvider services, WorkerOptions options) : IChannelHandler
{
    // Resolved on first use: the holder calls reach the cluster's membership, which needs the channel's port, whose host needs this handler.
    private readonly Lazy<HolderCalls> _holderCalls = new(() => (HolderCalls)services.GetService(typeof(HolderCalls))!);
    private readonly Lazy<Cluster.RemotePuts> _remotePuts = new(() => (Cluster.RemotePuts)services.GetService(typeof(Cluster.RemotePuts))!);

    /// <summary>A BULK_PUT body is read and checked in pieces of this size, each while it is still in the cache.</summary>
    private const int BodyPieceBytes = 1 << 20;


    public async ValueTask HandleAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        try
        {
            switch (request.Op)
            {
                case ChannelOp.Hello:
                    Hello(request);
                    break;
                case ChannelOp.Put:
                    await PutAsync(request, response, cancellationToken).ConfigureAwait(false);
                    break;
                case ChannelOp.Get:
                    Get(request, response);
                    break;
                case ChannelOp.Borrow:
                    Borrow(request, response);
                    break;
                case ChannelOp.Release:
                    Release(request, response);
                    break;
                case ChannelOp.Pin:
                    Pin(request, response);
                    break;
                case ChannelOp.Unpin:
                    graph.Unpin(Session(request), ReadIds(request, "object id to unpin"));
                    ChannelMessages.WriteEmpty(response.Payload);
                    break;
                case ChannelOp.BulkGet:
                    await BulkGetAsync(request, response, cancellationToken).ConfigureAwait(false);
                    break;
                case ChannelOp.BulkPut:
                    await BulkPutAsync(request, response, cancellationToken).ConfigureAwait(false);
                    break;
                case ChannelOp.HolderGet:
                    await HolderGetAsync(request, response, cancellationToken).ConfigureAwait(false);
                    break;
                case ChannelOp.Register:
                    await RegisterAsync(request, response, cancellationToken).ConfigureAwait(false);
                    break;
                case ChannelOp.Fetch:
                    await FetchAsync(request, response, cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    response.Fail(ErrorReasons.Unimplemented, $"This worker does not handle {request.Op} on the channel.");
                    break;
            }
        }
        catch (WorkerException ex) when (!response.BodyStarted)
        {
            response.Fail(ex.Reason, ex.Status.Detail, Detail(ex));
        }
        catch (Grpc.Core.RpcException ex) when (!response.BodyStarted && ex.Trailers.GetValue(WireHeaders.Reason) is { } reason)
        {
            // Another worker's answer to a call forwarded there (a holder of the cluster's): passed on as it came.
            response.Fail(reason, ex.Status.Detail, Detail(ex.Trailers));
        }
        catch (InvalidDataException ex) when (!response.BodyStarted)
        {
            response.Fail(ErrorReasons.InvalidRequest, $"{request.Op}: {ex.Message}");
        }
    }

    private void Hello(ChannelRequest request)
    {
        var (token, key) = ChannelMessages.ReadHello(request.Payload);
        var session = graph.AuthenticateChannel(token, key.Span);
        request.Connection.Session = session.Token;
    }

    private static ObjectId Session(ChannelRequest request) => (ObjectId)request.Connection.Session!;

    private async ValueTask PutAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        var fields = ChannelMessages.ReadPut(request.Payload, out var data);
        var codec = ObjectOperations.ValidatePut((Codec)fields.Codec, fields.TypeName, (ulong)data.Length);
        if (data.Length > options.MaxUnaryObjectBytes)
        {
            throw WorkerErrors.UnaryPutTooLarge((ulong)data.Length, options.MaxUnaryObjectBytes);
        }

        if (Owner(fields.Owner) is { } owner)
        {
            // A holder of another worker that this one was not told of yet (its session got the handle elsewhere, or
            // before this worker restarted): told now, as a gRPC put does. Nothing to wait for otherwise.
            await _remotePuts.Value.PrepareAsync(Session(request), owner, cancellationToken).ConfigureAwait(false);
        }

        var stored = operations.PutWhole(Session(request), Owner(fields.Owner), codec, fields.TypeName, fields.Checksum, data.Span);
        ChannelMessages.WriteEnvelope(response.Payload, stored.EnvelopeBytes);
    }

    private void Get(ChannelRequest request, ChannelResponse response)
    {
        var envelope = CallContextExtensions.DecodeEnvelope(ChannelMessages.ReadEnvelope(request.Payload));
        var (stored, pin) = operations.ResolveForRead(Session(request), envelope);
        using (pin)
        {
            if (stored.Bytes.Length > options.MaxUnaryObjectBytes)
            {
                throw WorkerErrors.ObjectTooLarge(stored.Id, stored.Bytes.Length, options.MaxUnaryObjectBytes);
            }

            ChannelMessages.WriteObjectHeader(response.Payload, Header(stored));
            // Copied into the batch's output while pinned: the answer goes out after this returns.
            var bytes = stored.Bytes.AsMemory().Span;
            bytes.CopyTo(response.Payload.GetSpan(bytes.Length));
            response.Payload.Advance(bytes.Length);
        }
    }

    private void Borrow(ChannelRequest request, ChannelResponse response)
    {
        var items = ChannelMessages.ReadList(request.Payload, "envelope");
        var envelopes = new RefEnvelope[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            envelopes[i] = CallContextExtensions.DecodeEnvelope(items[i]);
        }

        graph.Borrow(Session(request), envelopes);
        ChannelMessages.WriteEmpty(response.Payload);
    }

    private void Release(ChannelRequest request, ChannelResponse response)
    {
        graph.Release(Session(request), ReadIds(request, "object id to release"));
        ChannelMessages.WriteEmpty(response.Payload);
    }

    /// <summary>As gRPC's Pin: the session must map the worker's shared memory; the object stays put until unpinned or the session ends.</summary>
    private void Pin(ChannelRequest request, ChannelResponse response)
    {
        var envelope = CallContextExtensions.DecodeEnvelope(ChannelMessages.ReadEnvelope(request.Payload));
        var stored = graph.Pin(Session(request), envelope);
        ChannelMessages.WritePinned(response.Payload, Math.Max(stored.Bytes.Offset, 0), stored.Bytes.Length, Header(stored));
    }

    private static ObjectId[] ReadIds(ChannelRequest request, string what)
    {
        var items = ChannelMessages.ReadList(request.Payload, what);
        var ids = new ObjectId[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            ids[i] = ObjectId.TryFromBytes(items[i].Span, out var id)
                ? id
                : throw WorkerErrors.InvalidRequest($"An {what} must be {ObjectId.Length} bytes; got {items[i].Length}.");
        }

        return ids;
    }

    private async ValueTask BulkGetAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        var read = graph.TakeGetTicket(Session(request), ChannelMessages.ReadTicket(request.Payload));
        // The ticket's pin passes to this hold: the range stays until the last byte is on its way.
        using var pin = operations.Hold(read.Object.Bytes);
        ChannelMessages.WriteObjectHeader(response.Payload, Header(read.Object));
        await response.SendBodyAsync(read.Object.Bytes.AsSequence(), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask BulkPutAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        if (!request.HasBody)
        {
            throw WorkerErrors.InvalidRequest("BULK_PUT carries the object's bytes as a body.");
        }

        var session = Session(request);
        var create = graph.TakePutTicket(session, ChannelMessages.ReadTicket(request.Payload));
        var size = create.Bytes.Length;
        uint computed;
        uint declared;
        try
        {
            if (request.BodyLength != size + ChannelMessages.ChecksumTrailerBytes)
            {
                throw WorkerErrors.InvalidRequest($"The ticket is for {size} bytes, so the body is {size + ChannelMessages.ChecksumTrailerBytes} (the bytes, then their CRC-32); got {request.BodyLength}. Nothing was stored.");
            }

            // Straight into the object's range, checked piece by piece as each arrives: no staging copy, and no
            // second pass over the bytes at the end.
            var crc = new RunningCrc32();
            using (store.Arena.Access())
            {
                for (long at = 0; at < size; at += BodyPieceBytes)
                {
                    var length = (int)Math.Min(BodyPieceBytes, size - at);
                    var piece = create.Bytes.WritableMemory(at, length);
                    await request.ReadBodyAsync(piece, cancellationToken).ConfigureAwait(false);
                    crc.Append(piece.Span);
                }
            }

            var trailer = new byte[ChannelMessages.ChecksumTrailerBytes];
            await request.ReadBodyAsync(trailer, cancellationToken).ConfigureAwait(false);
            declared = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
            computed = crc.Current;
        }
        catch
        {
            create.Bytes.Free();
            throw;
        }

        var stored = graph.CommitTicket(session, create, declared, computed);
        ChannelMessages.WriteEnvelope(response.Payload, stored.EnvelopeBytes);
    }

    // ---- Holder calls: the gRPC service's, with the payloads of CHANNEL.md ----

    private async ValueTask HolderGetAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        var (ns, name) = ChannelMessages.ReadHolderGet(request.Payload);
        var reply = await _holderCalls.Value.GetAsync(Session(request), new GetHolderRequest { Namespace = ns, Name = name }, cancellationToken).ConfigureAwait(false);
        var info = reply.Holder;
        ChannelMessages.WriteHolderInfo(response.Payload, new ChannelHolderInfo(info.Namespace, info.Name, ObjectId.FromBytes(info.Incarnation.Span), (int)info.Lifetime,
            info.WorkerAddress, ObjectId.FromBytes(info.WorkerId.Span), info.OwnedObjects, info.Keys));
    }

    private async ValueTask RegisterAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        var register = ChannelMessages.ReadRegister(request.Payload);
        var call = new RegisterRequest { Holder = HolderRefOf(register.Holder), Key = register.Key };
        foreach (var envelope in register.Envelopes)
        {
            // Copied: the payload's memory is the connection's, reused once this op's response is written.
            call.Envelopes.Add(ByteString.CopyFrom(envelope.Span));
        }

        var reply = await _holderCalls.Value.RegisterAsync(Session(request), call, cancellationToken).ConfigureAwait(false);
        ChannelMessages.WriteCount(response.Payload, reply.Count);
    }

    private async ValueTask FetchAsync(ChannelRequest request, ChannelResponse response, CancellationToken cancellationToken)
    {
        var fetch = ChannelMessages.ReadFetch(request.Payload);
        var reply = await _holderCalls.Value.FetchAsync(Session(request), new FetchRequest
        {
            Holder = HolderRefOf(fetch.Holder),
            Key = fetch.Key,
            Start = fetch.Start,
            MaxCount = fetch.MaxCount,
            // Within what one frame carries, as the gRPC reply is within the message limit.
            MaxBytes = Math.Min(fetch.MaxBytes == 0 ? uint.MaxValue : fetch.MaxBytes, HolderCalls.FetchFrameBytes),
            ListVersion = fetch.ListVersion,
        }, cancellationToken).ConfigureAwait(false);
        ChannelMessages.WriteFetchPage(response.Payload, [.. reply.Envelopes.Select(e => e.Memory)], reply.Total, reply.ListVersion);
    }

    private static HolderRef HolderRefOf(ChannelHolder holder) => new()
    {
        Namespace = holder.Namespace,
        Name = holder.Name,
        Incarnation = holder.Incarnation is { } incarnation ? ByteString.CopyFrom(incarnation.ToByteArray()) : ByteString.Empty,
    };

    private static HolderAddress? Owner(ChannelHolder? owner) =>
        owner is { } holder ? new HolderAddress(holder.Namespace, holder.Name, holder.Incarnation) : null;

    private static ChannelObjectHeader Header(StoredObject stored) =>
        new((int)WireEnums.CodecToWire<Codec>(stored.Codec), stored.TypeName, stored.Checksum);

    /// <summary>The error's context under the trailer names of protos/ERRORS.md, not percent-encoded (CHANNEL.md, "Errors").</summary>
    /// <summary>The detail fields of another worker's error, from its gRPC trailers (names there are percent-encoded).</summary>
    private static Dictionary<string, string>? Detail(Grpc.Core.Metadata trailers)
    {
        Dictionary<string, string>? detail = null;
        foreach (var key in (string[])[WireHeaders.ObjectId, WireHeaders.HolderNamespace, WireHeaders.HolderName, WireHeaders.Incarnation, WireHeaders.WorkerId, WireHeaders.WorkerAddress])
        {
            if (trailers.GetValue(key) is { } value)
            {
                (detail ??= new(StringComparer.Ordinal))[key] = Uri.UnescapeDataString(value);
            }
        }

        return detail;
    }

    private static Dictionary<string, string>? Detail(WorkerException ex)
    {
        Dictionary<string, string>? detail = null;
        void Add(string key, string? value)
        {
            if (value is not null)
            {
                (detail ??= new(StringComparer.Ordinal))[key] = value;
            }
        }

        Add(WireHeaders.ObjectId, ex.ObjectId?.ToString());
        Add(WireHeaders.HolderNamespace, ex.HolderNamespace);
        Add(WireHeaders.HolderName, ex.HolderName);
        Add(WireHeaders.Incarnation, ex.Incarnation?.ToString());
        Add(WireHeaders.WorkerId, ex.WorkerId?.ToString());
        Add(WireHeaders.WorkerAddress, ex.WorkerAddress);
        return detail;
    }
}
