using RaySharing.Internal;
using RaySharing.Wire;

namespace RaySharing;

/// <summary>
/// A reference to a shared object: what it is, who owns it and where it lives. Obtained from a put, a
/// fetch, or <see cref="RaySharingClient.BorrowFromEnvelopeAsync(ReadOnlyMemory{byte}, CancellationToken)"/>;
/// each one is a borrow that keeps the object alive until it is disposed or the session ends.
/// </summary>
/// <remarks>
/// Send a ref anywhere as bytes with <see cref="ToEnvelopeBytes"/>: a Spark broadcast, a file, another
/// language. A ref that is never disposed stays borrowed until its client's session ends (the client
/// is disposed, or its process dies and the lease lapses); holding many undisposed refs in a
/// long-lived client keeps their objects in the store.
/// </remarks>
public class ObjectRef : IAsyncDisposable
{
    private readonly byte[] _envelopeBytes;
    private readonly RaySharingClient _client;
    // A typed view made by As<T> shares the borrow of the ref it was made from.
    private readonly ObjectRef? _origin;
    private RefEnvelope? _envelope;
    private ClientSession _session;
    private int _released;

    // The envelope is decoded on first use: a put's or fetch's ref that is only registered, passed on
    // or released never needs it, and a store full of refs then holds fewer objects.
    internal ObjectRef(RaySharingClient client, ObjectId id, byte[] envelopeBytes, RefEnvelope? envelope, ObjectRef? origin)
    {
        _client = client;
        Id = id;
        _envelopeBytes = envelopeBytes;
        _envelope = envelope;
        _origin = origin;
        _session = origin?._session ?? client.CurrentSession;
    }

    /// <summary>The object's id.</summary>
    public ObjectId Id { get; }

    /// <summary>The decoded envelope: owner, location, size, codec, type name, checksum.</summary>
    /// <exception cref="InvalidEnvelopeException">The envelope the worker sent is malformed.</exception>
    internal RefEnvelope Envelope => _envelope ?? DecodeEnvelope();

    /// <summary>The object's owner.</summary>
    public ObjectOwner Owner => Envelope.Owner;

    /// <summary>The object's size in bytes.</summary>
    public long Size => Envelope.Size;

    /// <summary>How the object's bytes are encoded.</summary>
    public ObjectCodec Codec => Envelope.Codec;

    /// <summary>The type name the putter gave; empty when untyped.</summary>
    public string TypeName => Envelope.TypeName;

    /// <summary>CRC-32 (ISO-HDLC, as <c>zlib.crc32</c>) of the object's bytes; a get checks it.</summary>
    public uint Checksum => Envelope.Checksum;

    /// <summary>The address of the worker that hosts the object's owner and stores its bytes.</summary>
    public string WorkerAddress => Envelope.Location.Address;

    /// <summary>True once this ref (or another view of the same borrow) has been disposed or released.</summary>
    public bool IsReleased => Volatile.Read(ref (_origin ?? this)._released) != 0;

    internal byte[] EnvelopeBytes => _envelopeBytes;

    /// <summary>The client whose session holds this ref's borrow.</summary>
    internal RaySharingClient Client => _client;

    /// <summary>The session this ref's borrow belongs to; it ends with that session.</summary>
    internal ClientSession Session
    {
        get => (_origin ?? this)._session;
        set => _session = value;
    }

    /// <summary>The ref's envelope as bytes (protos/ENVELOPE.md), to rebuild it in any process or language.</summary>
    public byte[] ToEnvelopeBytes() => (byte[])_envelopeBytes.Clone();

    /// <summary>A typed view of this ref. It shares this ref's borrow: disposing either releases it.</summary>
    public ObjectRef<T> As<T>() => this as ObjectRef<T> ?? new ObjectRef<T>(_client, Id, _envelopeBytes, _envelope, _origin ?? this);

    /// <summary>Releases this ref's borrow. Idempotent; never throws for a worker that is gone.</summary>
    public ValueTask DisposeAsync() => TryMarkReleased() ? _client.ReleaseIdsQuietlyAsync(Session, [Id]) : ValueTask.CompletedTask;

    /// <inheritdoc/>
    public override string ToString() => _envelope is { } envelope
        ? $"ObjectRef({Id}, {envelope.Size} bytes {CodecNames.ToName(envelope.Codec)}, owner {envelope.Owner})"
        : $"ObjectRef({Id})";

    /// <summary>Marks the borrow released; true for the one caller that must tell the worker.</summary>
    internal bool TryMarkReleased() => Interlocked.Exchange(ref (_origin ?? this)._released, 1) == 0;

    private RefEnvelope DecodeEnvelope()
    {
        RefEnvelope decoded;
        try
        {
            decoded = EnvelopeCodec.Decode(_envelopeBytes);
        }
        catch (EnvelopeFormatException ex)
        {
            throw Internal.ExceptionFactory.InvalidEnvelope(ex);
        }

        return Interlocked.CompareExchange(ref _envelope, decoded, null) ?? decoded;
    }
}

/// <summary>A typed <see cref="ObjectRef"/>; <see cref="RaySharingClient.GetAsync{T}(ObjectRef{T}, CancellationToken)"/> reads it as <typeparamref name="T"/>.</summary>
/// <typeparam name="T">The type the object is read as.</typeparam>
public sealed class ObjectRef<T> : ObjectRef
{
    internal ObjectRef(RaySharingClient client, ObjectId id, byte[] envelopeBytes, RefEnvelope? envelope, ObjectRef? origin)
        : base(client, id, envelopeBytes, envelope, origin)
    {
    }
}
