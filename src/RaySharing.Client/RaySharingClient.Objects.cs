using System.Runtime.ExceptionServices;
using System.Buffers;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Grpc.Core;
using MessagePack;
using RaySharing.Internal;
using RaySharing.Wire;
using RaySharing.Protocol.V1;

namespace RaySharing;

public sealed partial class RaySharingClient
{
    /// <summary>
    /// Puts a value. With a holder as <paramref name="owner"/> the object outlives this session: it lives
    /// while registered under one of the holder's keys or borrowed by a live session, and dies with the
    /// holder. Without an owner this session owns it and it dies with the session. The returned ref is a
    /// borrow; the put is acknowledged only after the bytes are sealed and the owner has recorded it.
    /// </summary>
    /// <remarks>
    /// <c>byte[]</c> and <c>ReadOnlyMemory&lt;byte&gt;</c> values are stored as RAW bytes; everything else
    /// as XLANG (MessagePack with <see cref="RaySharingClientOptions.SerializerOptions"/>) tagged with the
    /// type's name, so a typed get of another type fails with <see cref="TypeMismatchException"/>.
    /// </remarks>
    /// <exception cref="OwnerDiedException">The holder is dead.</exception>
    /// <exception cref="ObjectStoreFullException">The worker's store has no room.</exception>
    public Task<ObjectRef<T>> PutAsync<T>(T value, ObjectHolder? owner = null, CancellationToken cancellationToken = default) => value switch
    {
        byte[] bytes => PutCoreAsync(bytes, ObjectCodec.Raw, string.Empty, owner, RefFactories<T>.Typed, cancellationToken),
        ReadOnlyMemory<byte> memory => PutCoreAsync(memory, ObjectCodec.Raw, string.Empty, owner, RefFactories<T>.Typed, cancellationToken),
        _ => PutCoreAsync(Serialize(value), ObjectCodec.Xlang, TypeNames.Of<T>(), owner, RefFactories<T>.Typed, cancellationToken),
    };

    /// <summary>
    /// Puts bytes that are already encoded: RAW bytes (the default), an ARROW IPC stream, or an XLANG
    /// MessagePack document. The bytes are sent without being copied.
    /// </summary>
    /// <param name="data">The object's bytes, of any size.</param>
    /// <param name="codec">How the bytes are to be read.</param>
    /// <param name="typeName">The type name to record; empty for untyped.</param>
    /// <param name="owner">The owning holder; null for this session.</param>
    /// <param name="cancellationToken">Cancels the put; nothing is stored then.</param>
    public Task<ObjectRef> PutEncodedAsync(ReadOnlyMemory<byte> data, ObjectCodec codec = ObjectCodec.Raw, string typeName = "", ObjectHolder? owner = null, CancellationToken cancellationToken = default) =>
        PutCoreAsync(data, codec, typeName, owner, RefFactories<object>.Untyped, cancellationToken);

    private Task<TRef> PutCoreAsync<TRef>(ReadOnlyMemory<byte> data, ObjectCodec codec, string typeName, ObjectHolder? owner, RefFactory<TRef> create, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        var header = NewPutHeader(data.Length, codec, typeName, owner);
        var session = _session;
        if (session.Channel is { } channel && FitsChannelFrame(session, data.Length))
        {
            return PutOverChannelAsync(session, channel, header, data, create, cancellationToken);
        }

        if (session.Arena is not null && data.Length >= SharedMemoryMinBytes)
        {
            return PutInArenaAsync(header, new MemorySource(new ReadOnlySequence<byte>(data)), create, progress: null, cancellationToken);
        }

        if (session.Channel is not null)
        {
            return PutOverNetworkAsync(header, new MemorySource(new ReadOnlySequence<byte>(data)), create, progress: null, cancellationToken);
        }

        header.Checksum = Checksums.Of(data.Span);
        return data.Length <= MaxUnaryObjectBytes
            ? PutUnaryAsync(header, data, create, cancellationToken)
            : PutStreamAsync(header, new MemorySource(new ReadOnlySequence<byte>(data)), create, progress: null, cancellationToken);
    }

    /// <summary>Gets the object as <typeparamref name="T"/>, pulling the bytes straight from the worker that stores them.</summary>
    /// <exception cref="OwnerDiedException">The object's owner died; the object went with it.</exception>
    /// <exception cref="ObjectFreedException">The object was released by reference counting.</exception>
    /// <exception cref="ObjectNotFoundException">The worker does not know the object.</exception>
    /// <exception cref="TypeMismatchException">The object is not a <typeparamref name="T"/> (codec, type name, or its bytes do not decode).</exception>
    /// <exception cref="ChecksumMismatchException">The bytes arrived corrupted.</exception>
    public Task<T> GetAsync<T>(ObjectRef<T> objectRef, CancellationToken cancellationToken = default) =>
        GetAsync<T>((ObjectRef)objectRef, cancellationToken);

    /// <summary>Gets the object behind an untyped ref as <typeparamref name="T"/>; see <see cref="GetAsync{T}(ObjectRef{T}, CancellationToken)"/>.</summary>
    public async Task<T> GetAsync<T>(ObjectRef objectRef, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(objectRef);
        var envelope = objectRef.Envelope;
        var requested = TypeNames.Of<T>();
        var asBytes = typeof(T) == typeof(byte[]) || typeof(T) == typeof(ReadOnlyMemory<byte>);
        // Checked before any byte moves: a mismatch costs no transfer.
        if (asBytes && envelope.Codec == ObjectCodec.Xlang)
        {
            throw ExceptionFactory.TypeMismatch(envelope, requested, "an XLANG value is read as its type; use GetBytesAsync for its encoded bytes");
        }

        if (!asBytes && envelope.Codec != ObjectCodec.Xlang)
        {
            throw ExceptionFactory.TypeMismatch(envelope, requested, $"{CodecNames.ToName(envelope.Codec)} objects hold bytes; read them as byte[]");
        }

        if (!asBytes && typeof(T) != typeof(object) && envelope.TypeName.Length != 0 && envelope.TypeName != requested)
        {
            throw ExceptionFactory.TypeMismatch(envelope, requested, "it was put as another type (read it as object for a dynamic view)");
        }

        var bytes = await GetBytesCoreAsync(objectRef, cancellationToken).ConfigureAwait(false);
        if (typeof(T) == typeof(byte[]))
        {
            return (T)(object)bytes;
        }

        if (typeof(T) == typeof(ReadOnlyMemory<byte>))
        {
            return (T)(object)new ReadOnlyMemory<byte>(bytes);
        }

        try
        {
            return MessagePackSerializer.Deserialize<T>(bytes, _options.SerializerOptions, cancellationToken);
        }
        catch (MessagePackSerializationException ex)
        {
            throw ExceptionFactory.TypeMismatch(envelope, requested, $"its bytes do not decode as that type ({ex.InnerException?.Message ?? ex.Message})", ex);
        }
    }

    /// <summary>Gets the object's bytes as stored, whatever its codec (the MessagePack document of an XLANG value).</summary>
    public Task<byte[]> GetBytesAsync(ObjectRef objectRef, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(objectRef);
        return GetBytesCoreAsync(objectRef, cancellationToken);
    }

    /// <summary>
    /// Rebuilds a ref from envelope bytes made by <see cref="ObjectRef.ToEnvelopeBytes"/> in any process
    /// or language, and registers this session as a borrower, so the object stays alive while the new
    /// ref is held.
    /// </summary>
    /// <exception cref="InvalidEnvelopeException">The bytes are not a valid envelope.</exception>
    /// <exception cref="OwnerDiedException">The object's owner died.</exception>
    /// <exception cref="ObjectFreedException">The object was already freed.</exception>
    public async Task<ObjectRef> BorrowFromEnvelopeAsync(ReadOnlyMemory<byte> envelopeBytes, CancellationToken cancellationToken = default)
    {
        RefEnvelope envelope;
        try
        {
            envelope = EnvelopeCodec.Decode(envelopeBytes);
        }
        catch (EnvelopeFormatException ex)
        {
            throw ExceptionFactory.InvalidEnvelope(ex);
        }

        var copy = envelopeBytes.ToArray();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        if (session.Channel is { } channel && !IsElsewhere(session, envelope))
        {
            await ListCallOverChannelAsync(session, channel, "Borrow", Wire.Channel.ChannelOp.Borrow, [copy], CallSubject.Object(envelope.ObjectId), cancellationToken).ConfigureAwait(false);
        }
        else
        {
            var request = new BorrowRequest();
            request.Envelopes.Add(UnsafeByteOperations.UnsafeWrap(copy));
            var scope = BeginCall(cancellationToken, session.Headers);
            await UnaryAsync("Borrow", _objects.BorrowAsync(request, scope.Options), scope, cancellationToken, CallSubject.Object(envelope.ObjectId)).ConfigureAwait(false);
        }

        return new ObjectRef(this, envelope.ObjectId, copy, envelope, origin: null) { Session = session };
    }

    /// <summary>Like <see cref="BorrowFromEnvelopeAsync(ReadOnlyMemory{byte}, CancellationToken)"/>, typed as <typeparamref name="T"/>.</summary>
    public async Task<ObjectRef<T>> BorrowFromEnvelopeAsync<T>(ReadOnlyMemory<byte> envelopeBytes, CancellationToken cancellationToken = default) =>
        (await BorrowFromEnvelopeAsync(envelopeBytes, cancellationToken).ConfigureAwait(false)).As<T>();

    /// <summary>
    /// Releases many refs in one call (disposing each does the same, one call each). Refs already
    /// released are skipped. Objects neither registered nor borrowed any more are freed.
    /// </summary>
    public async Task ReleaseAsync(IEnumerable<ObjectRef> refs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(refs);
        var request = new ReleaseRequest();
        foreach (var objectRef in refs)
        {
            ArgumentNullException.ThrowIfNull(objectRef, nameof(refs));
            if (!ReferenceEquals(objectRef.Client, this))
            {
                // Its borrow belongs to another session: releasing it here would drop this session's.
                throw new ArgumentException($"{objectRef} was obtained through another client; release it through that client.", nameof(refs));
            }
        }

        var session = _session;
        foreach (var objectRef in refs)
        {
            // A ref of an ended session has no borrow left to release; releasing its id in this session would drop
            // this session's own borrow of the same object.
            if (objectRef.TryMarkReleased() && ReferenceEquals(objectRef.Session, session))
            {
                request.ObjectIds.Add(UnsafeByteOperations.UnsafeWrap(objectRef.Id.ToByteArray()));
                // In calls of bounded size, so any number of refs (a fetch of millions) can be released.
                if (request.ObjectIds.Count == ReleaseBatch)
                {
                    await SendReleaseAsync(request, cancellationToken).ConfigureAwait(false);
                    request = new ReleaseRequest();
                }
            }
        }

        if (request.ObjectIds.Count > 0)
        {
            await SendReleaseAsync(request, cancellationToken).ConfigureAwait(false);
        }
    }

    private const int ReleaseBatch = 65_536;

    private async Task SendReleaseAsync(ReleaseRequest request, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        if (session.Channel is { } channel)
        {
            var ids = new ReadOnlyMemory<byte>[request.ObjectIds.Count];
            for (var i = 0; i < ids.Length; i++)
            {
                ids[i] = request.ObjectIds[i].Memory;
            }

            await ListCallOverChannelAsync(session, channel, "Release", Wire.Channel.ChannelOp.Release, ids, default, cancellationToken).ConfigureAwait(false);
            return;
        }

        var scope = BeginCall(cancellationToken, session.Headers);
        await UnaryAsync("Release", _objects.ReleaseAsync(request, scope.Options), scope, cancellationToken).ConfigureAwait(false);
    }

    internal async ValueTask ReleaseIdsQuietlyAsync(ClientSession session, ObjectId[] ids)
    {
        // Nothing to release once the client is disposed, or once the borrow's session has ended.
        if (Volatile.Read(ref _disposed) != 0 || !ReferenceEquals(session, _session))
        {
            return;
        }

        var request = new ReleaseRequest();
        foreach (var id in ids)
        {
            request.ObjectIds.Add(UnsafeByteOperations.UnsafeWrap(id.ToByteArray()));
        }

        try
        {
            await SendReleaseAsync(request, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RaySharingException or TimeoutException or ObjectDisposedException)
        {
            // Disposal must not throw; the worker drops this session's borrows when the session ends.
            ClientLog.ReleaseFailed(_logger, ids.Length, ex);
        }
    }

    private ObjectRef AdoptBorrowed(ByteString envelopeBytes) => AdoptBorrowed(envelopeBytes, RefFactories<object>.Untyped);

    private TRef AdoptBorrowed<TRef>(ByteString envelopeBytes, RefFactory<TRef> create)
        where TRef : ObjectRef => AdoptBorrowed(envelopeBytes, create, _session);

    /// <summary>A ref for an envelope a reply carried, whose borrow belongs to <paramref name="session"/>.</summary>
    internal TRef AdoptBorrowed<TRef>(ByteString envelopeBytes, RefFactory<TRef> create, ClientSession session)
        where TRef : ObjectRef
    {
        return AdoptEnvelope(AdoptArray(envelopeBytes), create, session);
    }

    /// <summary>A ref for envelope bytes a reply carried (owned by the caller now), whose borrow belongs to <paramref name="session"/>.</summary>
    internal TRef AdoptEnvelope<TRef>(byte[] bytes, RefFactory<TRef> create, ClientSession session)
        where TRef : ObjectRef
    {
        ObjectId id;
        try
        {
            // Only the id now; the rest is decoded if and when the ref is read.
            id = EnvelopeCodec.PeekObjectId(bytes);
        }
        catch (EnvelopeFormatException ex)
        {
            throw ExceptionFactory.InvalidEnvelope(ex);
        }

        var objectRef = create(this, id, bytes);
        objectRef.Session = session;
        return objectRef;
    }

    /// <summary>
    /// The bytes of a ByteString parsed from a reply. Such a ByteString owns an exact-size array that
    /// nothing else sees, so it is adopted instead of copied.
    /// </summary>
    private static byte[] AdoptArray(ByteString bytes) =>
        MemoryMarshal.TryGetArray(bytes.Memory, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : bytes.ToByteArray();

    private byte[] Serialize<T>(T value)
    {
        try
        {
            return MessagePackSerializer.Serialize(value, _options.SerializerOptions);
        }
        catch (MessagePackSerializationException ex)
        {
            throw new ArgumentException($"A {TypeNames.Of<T>()} cannot be serialized as MessagePack: {ex.InnerException?.Message ?? ex.Message}", nameof(value), ex);
        }
    }

    private async Task<TRef> PutUnaryAsync<TRef>(PutHeader header, ReadOnlyMemory<byte> data, RefFactory<TRef> create, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        // The call is awaited here rather than through UnaryAsync: puts are the hottest path, and one
        // async state machine fewer per put is measurable.
        var scope = BeginCall(cancellationToken);
        using var call = _objects.PutAsync(new PutRequest { Header = header, Data = UnsafeByteOperations.UnsafeWrap(data) }, scope.Options);
        using var armed = scope.Arm(call);
        PutReply reply;
        var session = scope.Session!;
        try
        {
            reply = await call.ResponseAsync.ConfigureAwait(false);
        }
        catch (RpcException ex)
        {
            throw UnaryFailure(ex, "Put", call, scope, cancellationToken, PutSubject(header));
        }

        return AdoptBorrowed(reply.Envelope, create, session);
    }

    /// <summary>
    /// A put over gRPC streaming, chunk by chunk from <paramref name="source"/>. When the header says the checksum
    /// follows (a stream source, read once), it is computed on the way and sent in the last message.
    /// </summary>
    private async Task<TRef> PutStreamAsync<TRef>(PutHeader header, PutSource source, RefFactory<TRef> create, IProgress<long>? progress, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        using var call = _objects.PutStream(new CallOptions(session.Headers, cancellationToken: idle.Token));
        var stored = false;
        var accepted = false;
        ExceptionDispatchInfo? sourceFailure = null;
        try
        {
            try
            {
                // The header travels alone and the worker answers it with its response headers once it has
                // reserved room for the whole object: a refusal (store full, owner dead) then arrives before
                // any byte is sent, as a status rather than as a write cut off under a stream in flight.
                idle.CancelAfter(_options.StreamIdleTimeout);
                await call.RequestStream.WriteAsync(new PutRequest { Header = header }, idle.Token).ConfigureAwait(false);
                var headers = await call.ResponseHeadersAsync.WaitAsync(idle.Token).ConfigureAwait(false);
                // A refusal is a trailers-only response, whose headers arrive too, without the go-ahead.
                accepted = headers.GetValue(WireHeaders.PutAccepted) is not null;
                var crc = header.ChecksumFollows ? new RunningCrc32() : null;
                long sent = 0;
                if (accepted)
                {
                    await using var chunks = source.ChunksAsync(_options.ChunkBytes, idle.Token).GetAsyncEnumerator(idle.Token);
                    while (!HasEnded(call))
                    {
                        try
                        {
                            if (!await chunks.MoveNextAsync().ConfigureAwait(false))
                            {
                                break;
                            }
                        }
                        catch (Exception ex) when (!idle.IsCancellationRequested)
                        {
                            // The caller's source failed (a short stream, an I/O error): its exception is the caller's to see.
                            sourceFailure = ExceptionDispatchInfo.Capture(ex);
                            break;
                        }

                        var chunk = chunks.Current;
                        crc?.Append(chunk.Span);
                        idle.CancelAfter(_options.StreamIdleTimeout);
                        // The write serializes the message before it completes, so a stream source may reuse its buffer after it.
                        await call.RequestStream.WriteAsync(new PutRequest { Data = UnsafeByteOperations.UnsafeWrap(chunk) }, idle.Token).ConfigureAwait(false);
                        sent += chunk.Length;
                        progress?.Report(sent);
                    }
                }

                if (accepted && sourceFailure is null && !HasEnded(call))
                {
                    idle.CancelAfter(_options.StreamIdleTimeout);
                    if (crc is not null)
                    {
                        await call.RequestStream.WriteAsync(new PutRequest { Checksum = crc.Current }, idle.Token).ConfigureAwait(false);
                    }

                    await call.RequestStream.CompleteAsync().ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
                // Whatever a write or the handshake saw (a reset stream, an ended call, the idle timeout), the
                // call's status says why: the worker's reason, or the timeout or cancellation read below.
            }

            // The call is reset in the finally below, so the worker stores nothing.
            sourceFailure?.Throw();

            idle.CancelAfter(_options.StreamIdleTimeout);
            var reply = await call.ResponseAsync.WaitAsync(idle.Token).ConfigureAwait(false);
            stored = true;
            return AdoptBorrowed(reply.Envelope, create, session);
        }
        catch (Exception ex) when (sourceFailure is null && StreamFailure(ex, "PutStream", idle, cancellationToken, PutSubject(header), accepted, session) is { } mapped)
        {
            throw mapped;
        }
        finally
        {
            if (!stored)
            {
                // A refused or failed put ends its request with a reset, never with a graceful end of stream: a
                // DATA frame on a stream the worker already closed makes Kestrel close the whole connection,
                // and every other call on it with it.
                await idle.CancelAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// True once the worker has ended the put (refused it, or failed it midway): nothing more may be sent on
    /// it, because Kestrel answers a DATA frame on a stream it has closed by closing the whole connection.
    /// </summary>
    private static bool HasEnded(AsyncClientStreamingCall<PutRequest, PutReply> call)
    {
        if (call.ResponseAsync.IsCompleted)
        {
            return true;
        }

        try
        {
            call.GetStatus();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private async Task<byte[]> GetBytesCoreAsync(ObjectRef objectRef, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(objectRef.IsReleased, objectRef);
        var envelope = objectRef.Envelope;
        var session = _session;
        var elsewhere = IsElsewhere(session, envelope);
        byte[]? direct = null;
        if (elsewhere && await TryReadFromStoringWorkerAsync(objectRef, async (storing, copy) => direct = await storing.GetBytesCoreAsync(copy, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false))
        {
            return direct!;
        }

        if (session.Channel is { } channel && FitsChannelFrame(session, envelope.Size) && !PrefersArena(session, envelope.Size) && !elsewhere)
        {
            return (await GetOverChannelAsync(session, channel, objectRef, sink: null, cancellationToken).ConfigureAwait(false))!;
        }

        if (envelope.Size <= MaxUnaryObjectBytes && ((session.Arena is null || envelope.Size < SharedMemoryMinBytes) && session.Channel is null || elsewhere))
        {
            // The reply's array is adopted, not copied: the common small get allocates the bytes once.
            var request = new GetRequest { Envelope = UnsafeByteOperations.UnsafeWrap(objectRef.EnvelopeBytes) };
            var scope = BeginCall(cancellationToken);
            var reply = await UnaryAsync("Get", _objects.GetAsync(request, scope.Options), scope, cancellationToken, CallSubject.Object(envelope.ObjectId)).ConfigureAwait(false);
            var bytes = AdoptArray(reply.Data);
            Verify(envelope, bytes.Length, Checksums.Of(bytes));
            return bytes;
        }

        if (envelope.Size > Array.MaxLength)
        {
            throw new NotSupportedException($"Object {envelope.ObjectId} is {envelope.Size} bytes, more than one .NET array holds ({Array.MaxLength}); use CopyToAsync or GetLeaseAsync.");
        }

        var sink = new ArraySink(envelope.Size);
        await GetIntoAsync(objectRef, sink, progress: null, cancellationToken).ConfigureAwait(false);
        return sink.Array;
    }

    private async Task GetStreamAsync(RefEnvelope envelope, GetRequest request, GetSink sink, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        request.ChunkBytes = (uint)_options.ChunkBytes;
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        using var call = _objects.GetStream(request, new CallOptions(session.Headers, cancellationToken: idle.Token));
        var received = false;
        var sinkFailed = false;
        try
        {
            var crc = new RunningCrc32();
            long offset = 0;
            while (true)
            {
                idle.CancelAfter(_options.StreamIdleTimeout);
                if (!await call.ResponseStream.MoveNext(idle.Token).ConfigureAwait(false))
                {
                    break;
                }

                received = true;
                var chunk = call.ResponseStream.Current.Data.Memory;
                if (chunk.Length > envelope.Size - offset)
                {
                    throw ExceptionFactory.Corrupted(envelope, $"more than the {envelope.Size} bytes the envelope promises arrived");
                }

                crc.Append(chunk.Span);
                try
                {
                    await sink.WriteAsync(chunk, idle.Token).ConfigureAwait(false);
                }
                catch (Exception) when (!idle.IsCancellationRequested)
                {
                    // The caller's destination failed: its exception is the caller's to see, not a transfer failure.
                    sinkFailed = true;
                    throw;
                }

                offset += chunk.Length;
                progress?.Report(offset);
            }

            if (offset != envelope.Size)
            {
                throw ExceptionFactory.Corrupted(envelope, $"the stream ended after {offset} of {envelope.Size} bytes");
            }

            Verify(envelope, offset, crc.Current);
        }
        catch (Exception ex) when (!sinkFailed && StreamFailure(ex, "GetStream", idle, cancellationToken, CallSubject.Object(envelope.ObjectId), received, session) is { } mapped)
        {
            throw mapped;
        }
    }

    /// <summary>
    /// Maps a streaming call's failure: the caller's cancellation, the idle timeout, a worker error, or a
    /// broken connection. Null for the client's own typed errors (a corrupted transfer), which pass as they are.
    /// </summary>
    private Exception? StreamFailure(Exception exception, string operation, CancellationTokenSource idle, CancellationToken cancellationToken, CallSubject subject, bool answered, ClientSession session)
    {
        if (exception is RaySharingException or RaySharingTimeoutException)
        {
            return null;
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return new OperationCanceledException($"{operation} was canceled.", exception, cancellationToken);
        }

        if (_stopping.IsCancellationRequested)
        {
            return ExceptionFactory.Disposed();
        }

        if (idle.IsCancellationRequested && exception is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled })
        {
            return ExceptionFactory.StreamIdle(operation, _address, _options.StreamIdleTimeout, subject, RequestSent(answered), exception);
        }

        return exception is RpcException rpc
            ? Observe(ExceptionFactory.FromRpc(rpc, operation, _address, session.Id, cancellationToken, subject), session)
            : ExceptionFactory.ConnectionLost(operation, _address, exception);
    }

    private static CallSubject PutSubject(PutHeader header) =>
        header.OwnerHolder is { } owner ? CallSubject.Holder(owner.Namespace, owner.Name) : default;

    /// <summary>Makes the ref a call returns: typed for <c>PutAsync&lt;T&gt;</c>, untyped otherwise.</summary>
    internal delegate TRef RefFactory<TRef>(RaySharingClient client, ObjectId id, byte[] envelopeBytes)
        where TRef : ObjectRef;

    internal static class RefFactories<T>
    {
        public static readonly RefFactory<ObjectRef<T>> Typed = static (client, id, bytes) => new ObjectRef<T>(client, id, bytes, envelope: null, origin: null);

        public static readonly RefFactory<ObjectRef> Untyped = static (client, id, bytes) => new ObjectRef(client, id, bytes, envelope: null, origin: null);
    }
}
