using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using RaySharing.Internal;
using RaySharing.Internal.SharedMemory;
using RaySharing.Protocol.V1;
using RaySharing.Wire;

namespace RaySharing;

public sealed partial class RaySharingClient
{
    /// <summary>
    /// Objects at least this large move through shared memory when the session has it. Smaller ones take one
    /// unary call: an in-place put is two calls (create, seal) and a get one call plus an unpin.
    /// </summary>
    internal const int SharedMemoryMinBytes = 64 << 10;

    /// <summary>
    /// In-place copies go in chunks of this size: the checksum then reads bytes still in the cache, and
    /// progress and cancellation are seen between chunks.
    /// </summary>
    private const int CopyChunkBytes = 1 << 20;

    /// <summary>
    /// True when this client's session moves bytes through the worker's shared memory (same host, same user,
    /// <see cref="RaySharingClientOptions.UseSharedMemory"/> on); false when every byte goes over the network.
    /// </summary>
    public bool UsesSharedMemory => _session.Arena is not null;

    /// <summary>
    /// Puts encoded bytes held in a <see cref="ReadOnlySequence{T}"/> (for example from a pipe), of any size;
    /// see <see cref="PutEncodedAsync(ReadOnlyMemory{byte}, ObjectCodec, string, ObjectHolder?, CancellationToken)"/>.
    /// </summary>
    /// <param name="data">The object's bytes; not copied over the network paths, copied once into shared memory on the same host.</param>
    /// <param name="codec">How the bytes are to be read.</param>
    /// <param name="typeName">The type name to record; empty for untyped.</param>
    /// <param name="owner">The owning holder; null for this session.</param>
    /// <param name="progress">Told how many bytes have been sent so far, after each chunk; null for none.</param>
    /// <param name="cancellationToken">Cancels the put; nothing is stored then.</param>
    public Task<ObjectRef> PutEncodedAsync(ReadOnlySequence<byte> data, ObjectCodec codec = ObjectCodec.Raw, string typeName = "", ObjectHolder? owner = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default) =>
        PutFromSourceAsync(new MemorySource(data), codec, typeName, owner, progress, cancellationToken);

    /// <summary>
    /// Puts <paramref name="length"/> encoded bytes read from <paramref name="source"/>, of any size, holding at
    /// most one chunk (<see cref="RaySharingClientOptions.ChunkBytes"/>, or 1 MiB in shared memory) at a time.
    /// The stream is read from its current position and not disposed.
    /// </summary>
    /// <param name="source">Where the bytes come from.</param>
    /// <param name="length">How many bytes to put: the worker reserves room for them before any is sent.</param>
    /// <param name="codec">How the bytes are to be read.</param>
    /// <param name="typeName">The type name to record; empty for untyped.</param>
    /// <param name="owner">The owning holder; null for this session.</param>
    /// <param name="progress">Told how many bytes have been sent so far, after each chunk; null for none.</param>
    /// <param name="cancellationToken">Cancels the put; nothing is stored then.</param>
    /// <exception cref="ArgumentException">The stream ended before <paramref name="length"/> bytes; nothing was stored.</exception>
    public Task<ObjectRef> PutEncodedAsync(Stream source, long length, ObjectCodec codec = ObjectCodec.Raw, string typeName = "", ObjectHolder? owner = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (!source.CanRead)
        {
            throw new ArgumentException("The stream cannot be read.", nameof(source));
        }

        return PutFromSourceAsync(new StreamSource(source, length), codec, typeName, owner, progress, cancellationToken);
    }

    /// <summary>
    /// Writes the object's bytes, as stored, into <paramref name="destination"/>, of any size: the client holds
    /// no more than a chunk of them besides what the writer keeps. The checksum is verified as they pass;
    /// on <see cref="ChecksumMismatchException"/> the writer has received bytes that must be discarded.
    /// </summary>
    /// <param name="objectRef">The object.</param>
    /// <param name="destination">Receives the bytes in order.</param>
    /// <param name="progress">Told how many bytes have arrived so far, after each chunk; null for none.</param>
    /// <param name="cancellationToken">Cancels the get.</param>
    public Task CopyToAsync(ObjectRef objectRef, IBufferWriter<byte> destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(objectRef);
        ArgumentNullException.ThrowIfNull(destination);
        return GetIntoAsync(objectRef, new BufferWriterSink(destination), progress, cancellationToken);
    }

    /// <summary>
    /// Writes the object's bytes, as stored, to <paramref name="destination"/>, of any size; see
    /// <see cref="CopyToAsync(ObjectRef, IBufferWriter{byte}, IProgress{long}?, CancellationToken)"/>. The stream is not disposed.
    /// </summary>
    public Task CopyToAsync(ObjectRef objectRef, Stream destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(objectRef);
        ArgumentNullException.ThrowIfNull(destination);
        if (!destination.CanWrite)
        {
            throw new ArgumentException("The stream cannot be written.", nameof(destination));
        }

        return GetIntoAsync(objectRef, new StreamSink(destination), progress, cancellationToken);
    }

    /// <summary>
    /// Gets the object's bytes, as stored, for reading in place. When this client uses shared memory
    /// (<see cref="UsesSharedMemory"/>) the lease is zero-copy: its memory is the worker's own copy, mapped
    /// read-only, and the object's range stays pinned (never reused, even if the object is freed meanwhile)
    /// until the lease is disposed or this session ends. Otherwise the bytes are copied into a new array first; so
    /// are objects under 64 KiB when the session uses the channel, where one channel call costs less than a pin
    /// (<see cref="ObjectLease.IsZeroCopy"/> says which).
    /// A zero-copy lease is not checked against the object's checksum (the worker checked it when the object was
    /// sealed); read <see cref="ObjectRef.Checksum"/> to check it yourself.
    /// </summary>
    /// <exception cref="OwnerDiedException">The object's owner died; the object went with it.</exception>
    /// <exception cref="ObjectFreedException">The object was released by reference counting.</exception>
    /// <exception cref="NotSupportedException">Without shared memory, an object larger than a .NET array; use CopyToAsync.</exception>
    public async Task<ObjectLease> GetLeaseAsync(ObjectRef objectRef, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(objectRef);
        ObjectDisposedException.ThrowIf(objectRef.IsReleased, objectRef);
        var session = _session;
        // Below the shared-memory threshold a copy over the channel costs less than the pin a zero-copy lease needs.
        if (IsElsewhere(session, objectRef.Envelope))
        {
            ObjectLease? direct = null;
            if (await TryReadFromStoringWorkerAsync(objectRef, async (storing, copy) => direct = await storing.GetLeaseAsync(copy, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false))
            {
                return direct!;
            }
        }

        var copyIsCheaper = session.Channel is not null && objectRef.Size < SharedMemoryMinBytes;
        if (session.Arena is { } arena && !copyIsCheaper && !IsElsewhere(session, objectRef.Envelope) && arena.TryAcquire())
        {
            try
            {
                var (offset, size) = await PinAsync(session, objectRef, cancellationToken).ConfigureAwait(false);
                return new ObjectLease(objectRef, Segments(arena, offset, size), isZeroCopy: true,
                    () =>
                    {
                        Unpin(session, objectRef.Id);
                        arena.Release();
                    },
                    async () =>
                    {
                        try
                        {
                            await SendUnpinAsync(session, [objectRef.Id]).ConfigureAwait(false);
                        }
                        finally
                        {
                            arena.Release();
                        }
                    });
            }
            catch
            {
                arena.Release();
                throw;
            }
        }

        var bytes = await GetBytesCoreAsync(objectRef, cancellationToken).ConfigureAwait(false);
        return new ObjectLease(objectRef, new ReadOnlySequence<byte>(bytes), isZeroCopy: false, release: null, releaseAsync: null);
    }

    private async Task<ObjectRef> PutFromSourceAsync(PutSource source, ObjectCodec codec, string typeName, ObjectHolder? owner, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var header = NewPutHeader(source.Length, codec, typeName, owner);
        var session = _session;
        var fitsFrame = source is MemorySource { Data.IsSingleSegment: true } && FitsChannelFrame(session, source.Length);
        return session.Arena is not null && source.Length >= SharedMemoryMinBytes && !fitsFrame
            ? await PutInArenaAsync(header, source, RefFactories<object>.Untyped, progress, cancellationToken).ConfigureAwait(false)
            : await PutOverNetworkAsync(header, source, RefFactories<object>.Untyped, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A put over the network: on the channel when the session has one (one frame when the bytes are in memory and
    /// small, else a body), otherwise over gRPC (one unary call when in memory and small, else a stream).
    /// </summary>
    private async Task<TRef> PutOverNetworkAsync<TRef>(PutHeader header, PutSource source, RefFactory<TRef> create, IProgress<long>? progress, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        var session = _session;
        if (session.Channel is { } channel)
        {
            if (source is MemorySource { Data.IsSingleSegment: true } small && FitsChannelFrame(session, small.Length))
            {
                var inline = await PutOverChannelAsync(session, channel, header, small.Data.First, create, cancellationToken).ConfigureAwait(false);
                progress?.Report(source.Length);
                return inline;
            }

            if (FitsChannelFrame(session, source.Length))
            {
                // A small stream or sequence: gathered into one buffer, it goes as one frame rather than ticket and body.
                var gathered = ArrayPool<byte>.Shared.Rent((int)source.Length);
                try
                {
                    var length = 0;
                    await foreach (var chunk in source.ChunksAsync(CopyChunkBytes, cancellationToken).ConfigureAwait(false))
                    {
                        chunk.Span.CopyTo(gathered.AsSpan(length));
                        length += chunk.Length;
                    }

                    var framed = await PutOverChannelAsync(session, channel, header, gathered.AsMemory(0, length), create, cancellationToken).ConfigureAwait(false);
                    progress?.Report(length);
                    return framed;
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(gathered);
                }
            }

            return await PutBulkAsync(session, channel, header, source, create, progress, cancellationToken).ConfigureAwait(false);
        }

        if (source is MemorySource memory)
        {
            header.Checksum = Checksums.Compute(memory.Data);
            if (memory.Data.IsSingleSegment && memory.Length <= MaxUnaryObjectBytes)
            {
                var reference = await PutUnaryAsync(header, memory.Data.First, create, cancellationToken).ConfigureAwait(false);
                progress?.Report(source.Length);
                return reference;
            }
        }
        else
        {
            header.ChecksumFollows = true;
        }

        return await PutStreamAsync(header, source, create, progress, cancellationToken).ConfigureAwait(false);
    }

    private PutHeader NewPutHeader(long size, ObjectCodec codec, string typeName, ObjectHolder? owner)
    {
        ArgumentNullException.ThrowIfNull(typeName);
        var wireCodec = WireEnums.CodecToWire<Codec>(codec);
        if (owner is not null && !ReferenceEquals(owner.Client, this))
        {
            throw new ArgumentException($"{owner} was obtained from another client; get the holder through this client (GetHolderAsync) to put with it as owner.", nameof(owner));
        }

        return new PutHeader { OwnerHolder = owner?.Ref, Codec = wireCodec, TypeName = typeName, Size = (ulong)size };
    }

    /// <summary>
    /// A put in place: the worker reserves the object's range in its arena, this process writes the bytes
    /// straight into its mapping of it, and the worker checks them and seals the object.
    /// </summary>
    private async Task<TRef> PutInArenaAsync<TRef>(PutHeader header, PutSource source, RefFactory<TRef> create, IProgress<long>? progress, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        var session = _session;
        var arena = session.Arena;
        if (arena?.TryAcquire() != true)
        {
            // The session was replaced since the caller looked: put over the network rather than into a closed mapping.
            return await PutOverNetworkAsync(header, source, create, progress, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            return await PutInArenaAsync(session, arena, header, source, create, progress, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            arena.Release();
        }
    }

    private async Task<TRef> PutInArenaAsync<TRef>(ClientSession session, ArenaMapping arena, PutHeader header, PutSource source, RefFactory<TRef> create, IProgress<long>? progress, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        var scope = BeginCall(cancellationToken, session.Headers);
        var created = await UnaryAsync("Create", _objects.CreateAsync(new CreateRequest { Header = header }, scope.Options), scope, cancellationToken, PutSubject(header)).ConfigureAwait(false);
        var sealedObject = false;
        try
        {
            var offset = (long)created.Offset;
            var crc = new RunningCrc32();
            long written = 0;
            await foreach (var chunk in source.ChunksAsync(CopyChunkBytes, cancellationToken).ConfigureAwait(false))
            {
                // Checked piece by piece as they are copied, while each piece is in the cache: no second trip to memory.
                crc.CopyAndAppend(chunk.Span, arena.Write(offset + written, chunk.Length).Span);
                written += chunk.Length;
                progress?.Report(written);
            }

            var checksum = crc.Current;
            var seal = BeginCall(cancellationToken, session.Headers, SealTimeout(source.Length));
            var reply = await UnaryAsync("Seal", _objects.SealAsync(new SealRequest { Handle = created.Handle, Checksum = checksum }, seal.Options), seal, cancellationToken, PutSubject(header)).ConfigureAwait(false);
            sealedObject = true;
            return AdoptBorrowed(reply.Envelope, create, session);
        }
        finally
        {
            if (!sealedObject)
            {
                _ = AbortQuietlyAsync(session, created.Handle);
            }
        }
    }

    /// <summary>
    /// Whether a get of <paramref name="size"/> bytes should read the worker's arena in place: on its host, from
    /// 64 KiB up, a pin and a copy out of shared memory cost less than the same bytes through a socket, even in one
    /// channel frame (copied by the worker into the frame, by both kernels, and out of the receive buffer).
    /// </summary>
    private static bool PrefersArena(ClientSession session, long size) => session.Arena is not null && size >= SharedMemoryMinBytes;

    /// <summary>
    /// Whether the object's bytes are stored by another worker of the cluster than this session's. This session's
    /// worker then gets and borrows it there for the session, over gRPC: the arena and the channel serve only the
    /// worker's own objects.
    /// </summary>
    private static bool IsElsewhere(ClientSession session, RefEnvelope envelope) => envelope.Location.WorkerId != session.WorkerId;

    /// <summary>
    /// A seal reads every byte to check its CRC-32: CallTimeout, plus a second per 256 MiB (far slower than a
    /// core checks them, so only a stuck worker meets it).
    /// </summary>
    private TimeSpan SealTimeout(long size) => _options.CallTimeout + TimeSpan.FromSeconds(size / (256.0 * (1 << 20)));

    /// <summary>The object's bytes into <paramref name="sink"/>, by the fastest path this session has, checked against the envelope.</summary>
    private async Task GetIntoAsync(ObjectRef objectRef, GetSink sink, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(objectRef.IsReleased, objectRef);
        var envelope = objectRef.Envelope;
        var session = _session;
        var elsewhere = IsElsewhere(session, envelope);
        if (elsewhere)
        {
            // Straight from the worker that stores it when it answers. A read that failed after writing must not be
            // tried again into the same sink.
            var counted = new CountingSink(sink);
            if (await TryReadFromStoringWorkerAsync(objectRef, (storing, copy) => storing.GetIntoAsync(copy, counted, progress, cancellationToken), cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            if (counted.Written > 0)
            {
                throw new WorkerUnavailableException($"The worker at {envelope.Location.Address} that stores object {envelope.ObjectId} stopped answering after {counted.Written} of its {envelope.Size} bytes; the destination holds a partial copy. Get it again.", envelope.Location.Address);
            }
        }

        if (session.Channel is { } channel && FitsChannelFrame(session, envelope.Size) && !PrefersArena(session, envelope.Size) && !elsewhere)
        {
            await GetOverChannelAsync(session, channel, objectRef, sink, cancellationToken).ConfigureAwait(false);
            progress?.Report(envelope.Size);
            return;
        }

        if (session.Arena is { } arena && envelope.Size >= SharedMemoryMinBytes && !elsewhere && arena.TryAcquire())
        {
            try
            {
                await GetFromArenaAsync(session, arena, objectRef, sink, progress, cancellationToken).ConfigureAwait(false);
                return;
            }
            finally
            {
                arena.Release();
            }
        }

        if (session.Channel is { } bulk && !elsewhere)
        {
            await GetBulkAsync(session, bulk, objectRef, sink, progress, cancellationToken).ConfigureAwait(false);
            return;
        }

        var request = new GetRequest { Envelope = UnsafeByteOperations.UnsafeWrap(objectRef.EnvelopeBytes) };
        if (envelope.Size <= MaxUnaryObjectBytes)
        {
            var scope = BeginCall(cancellationToken);
            var reply = await UnaryAsync("Get", _objects.GetAsync(request, scope.Options), scope, cancellationToken, CallSubject.Object(envelope.ObjectId)).ConfigureAwait(false);
            Verify(envelope, reply.Data.Length, Checksums.Of(reply.Data.Span));
            await sink.WriteAsync(reply.Data.Memory, cancellationToken).ConfigureAwait(false);
            progress?.Report(reply.Data.Length);
            return;
        }

        await GetStreamAsync(envelope, request, sink, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Pins the object in the worker's arena, copies it out of this process's mapping, and unpins it.</summary>
    private async Task GetFromArenaAsync(ClientSession session, ArenaMapping arena, ObjectRef objectRef, GetSink sink, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var envelope = objectRef.Envelope;
        var (offset, size) = await PinAsync(session, objectRef, cancellationToken).ConfigureAwait(false);
        try
        {
            var crc = new RunningCrc32();
            long done = 0;
            while (done < size)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var chunk = arena.Read(offset + done, (int)Math.Min(CopyChunkBytes, size - done));
                await sink.WriteCheckedAsync(chunk, crc, cancellationToken).ConfigureAwait(false);
                done += chunk.Length;
                progress?.Report(done);
            }

            Verify(envelope, size, crc.Current);
        }
        finally
        {
            Unpin(session, objectRef.Id);
        }
    }

    /// <summary>Pins an object for the session (over its channel when it has one); returns where its bytes are in the arena.</summary>
    private async Task<(long Offset, long Size)> PinAsync(ClientSession session, ObjectRef objectRef, CancellationToken cancellationToken)
    {
        var envelope = objectRef.Envelope;
        long offset, size;
        if (session.Channel is { } channel)
        {
            (offset, size) = await PinOverChannelAsync(session, channel, objectRef, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            var scope = BeginCall(cancellationToken, session.Headers);
            var reply = await UnaryAsync("Pin", _objects.PinAsync(new PinRequest { Envelope = UnsafeByteOperations.UnsafeWrap(objectRef.EnvelopeBytes) }, scope.Options), scope, cancellationToken, CallSubject.Object(envelope.ObjectId)).ConfigureAwait(false);
            (offset, size) = ((long)reply.Offset, (long)reply.Size);
        }

        if (size != envelope.Size)
        {
            Unpin(session, envelope.ObjectId);
            throw ExceptionFactory.Corrupted(envelope, $"the worker holds {size} bytes, the envelope says {envelope.Size}");
        }

        return (offset, size);
    }

    private static void Verify(RefEnvelope envelope, long size, uint checksum)
    {
        if (size != envelope.Size)
        {
            throw ExceptionFactory.Corrupted(envelope, $"{size} bytes arrived, the envelope says {envelope.Size}");
        }

        if (checksum != envelope.Checksum)
        {
            throw ExceptionFactory.Corrupted(envelope, $"checksum {checksum:x8}, the envelope says {envelope.Checksum:x8}");
        }
    }

    /// <summary>A pinned object's bytes in this process's mapping, as one sequence (blocks stay within what a Memory spans).</summary>
    private static ReadOnlySequence<byte> Segments(ArenaMapping arena, long offset, long size)
    {
        const int MaxBlockBytes = 0x7FFF_F000;
        var blocks = new List<ReadOnlyMemory<byte>>();
        for (long done = 0; done < size; done += MaxBlockBytes)
        {
            blocks.Add(arena.Read(offset + done, (int)Math.Min(MaxBlockBytes, size - done)));
        }

        return Sequences.Of(blocks);
    }

    private async Task<ArenaMapping?> AttachArenaAsync(ClientSession session, SharedMemoryOffer offer, CancellationToken cancellationToken)
    {
        if (!_options.UseSharedMemory)
        {
            ClientLog.SharedMemoryNotUsed(_logger, session.Id, "UseSharedMemory is off");
            return null;
        }

        var arena = ArenaMapping.TryOpen(offer, out var why);
        if (arena is null)
        {
            ClientLog.SharedMemoryNotUsed(_logger, session.Id, why!);
            return null;
        }

        try
        {
            var scope = BeginCall(cancellationToken, session.Headers);
            await UnaryAsync("AttachSharedMemory", _sessions.AttachSharedMemoryAsync(new AttachSharedMemoryRequest { Secret = ByteString.CopyFrom(arena.Secret) }, scope.Options), scope, cancellationToken).ConfigureAwait(false);
            ClientLog.SharedMemoryAttached(_logger, session.Id);
            return arena;
        }
        catch (RaySharingException ex)
        {
            // The worker's answer to a mapping that is not its arena (UNAUTHORIZED): not the same host after all.
            ClientLog.SharedMemoryNotUsed(_logger, session.Id, ex.Message);
            arena.Dispose();
            return null;
        }
        catch
        {
            arena.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Unpins an object without waiting. The first unpin goes at once; those that come while it is in flight go
    /// together in the next call, so many concurrent gets cost the worker far fewer Unpin calls than gets.
    /// </summary>
    private void Unpin(ClientSession session, ObjectId id)
    {
        session.PendingUnpins.Enqueue(id);
        if (Interlocked.CompareExchange(ref session.Unpinning, 1, 0) == 0)
        {
            _ = UnpinPendingAsync(session);
        }
    }

    private async Task UnpinPendingAsync(ClientSession session)
    {
        while (true)
        {
            var ids = new List<ObjectId>();
            while (ids.Count < ReleaseBatch && session.PendingUnpins.TryDequeue(out var id))
            {
                ids.Add(id);
            }

            if (ids.Count == 0)
            {
                Volatile.Write(ref session.Unpinning, 0);
                // An unpin queued after the drain but before the flag dropped would otherwise wait for the next one.
                if (session.PendingUnpins.IsEmpty || Interlocked.CompareExchange(ref session.Unpinning, 1, 0) != 0)
                {
                    return;
                }

                continue;
            }

            await SendUnpinAsync(session, ids).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// One Unpin call (over the session's channel when it has one); never throws. Nothing to unpin once the client is
    /// disposed or the session ended: the worker dropped its pins.
    /// </summary>
    private async Task SendUnpinAsync(ClientSession session, IReadOnlyList<ObjectId> ids)
    {
        if (Volatile.Read(ref _disposed) != 0 || !ReferenceEquals(session, _session))
        {
            return;
        }

        try
        {
            var idBytes = new ReadOnlyMemory<byte>[ids.Count];
            for (var i = 0; i < idBytes.Length; i++)
            {
                idBytes[i] = ids[i].ToByteArray();
            }

            if (session.Channel is { } channel)
            {
                await ListCallOverChannelAsync(session, channel, "Unpin", Wire.Channel.ChannelOp.Unpin, idBytes, default, CancellationToken.None).ConfigureAwait(false);
                return;
            }

            var request = new UnpinRequest();
            foreach (var id in idBytes)
            {
                request.ObjectIds.Add(UnsafeByteOperations.UnsafeWrap(id));
            }

            var scope = BeginCall(CancellationToken.None, session.Headers);
            await UnaryAsync("Unpin", _objects.UnpinAsync(request, scope.Options), scope, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RaySharingException or TimeoutException or ObjectDisposedException)
        {
            ClientLog.UnpinFailed(_logger, ids.Count, ex);
        }
    }

    private async Task AbortQuietlyAsync(ClientSession session, ByteString handle)
    {
        if (Volatile.Read(ref _disposed) != 0 || !ReferenceEquals(session, _session))
        {
            return;
        }

        try
        {
            var scope = BeginCall(CancellationToken.None, session.Headers);
            await UnaryAsync("Abort", _objects.AbortAsync(new AbortRequest { Handle = handle }, scope.Options), scope, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RaySharingException or TimeoutException or ObjectDisposedException)
        {
            ClientLog.AbortFailed(_logger, ex);
        }
    }
}
