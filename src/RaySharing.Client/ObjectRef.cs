using RaySharing.Protocol;

namespace RaySharing;

/// <summary>
/// A reference to a shared object: what it is, who owns it and where it lives. Obtained from a put, a
/// fetch, or <see cref="RaySharingClient.FromEnvelopeAsync(ReadOnlyMemory{byte}, CancellationToken)"/>;
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
    private readonly RefBorrow _borrow;

    internal ObjectRef(RefEnvelope envelope, byte[] envelopeBytes, RefBorrow borrow)
    {
        Envelope = envelope;
        _envelopeBytes = envelopeBytes;
        _borrow = borrow;
    }

    /// <summary>The object's id.</summary>
    public ObjectId Id => Envelope.ObjectId;

    /// <summary>The decoded envelope: owner, location, size, codec, type name, checksum.</summary>
    public RefEnvelope Envelope { get; }

    /// <summary>The object's owner.</summary>
    public ObjectOwner Owner => Envelope.Owner;

    /// <summary>The object's size in bytes.</summary>
    public long Size => Envelope.Size;

    /// <summary>How the object's bytes are encoded.</summary>
    public ObjectCodec Codec => Envelope.Codec;

    /// <summary>The type name the putter gave; empty when untyped.</summary>
    public string TypeName => Envelope.TypeName;

    /// <summary>True once this ref (or another view of the same borrow) has been disposed or released.</summary>
    public bool IsReleased => _borrow.IsReleased;

    internal byte[] EnvelopeBytes => _envelopeBytes;

    internal RefBorrow Borrow => _borrow;

    /// <summary>The ref's envelope as bytes (protos/ENVELOPE.md), to rebuild it in any process or language.</summary>
    public byte[] ToEnvelopeBytes() => (byte[])_envelopeBytes.Clone();

    /// <summary>A typed view of this ref. It shares this ref's borrow: disposing either releases it.</summary>
    public ObjectRef<T> As<T>() => this as ObjectRef<T> ?? new ObjectRef<T>(Envelope, _envelopeBytes, _borrow);

    /// <summary>Releases this ref's borrow. Idempotent; never throws for a worker that is gone.</summary>
    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return _borrow.ReleaseAsync();
    }

    /// <inheritdoc/>
    public override string ToString() => $"ObjectRef({Id}, {Size} bytes {CodecNames.ToName(Codec)}, owner {Owner})";
}

/// <summary>A typed <see cref="ObjectRef"/>; <see cref="RaySharingClient.GetAsync{T}(ObjectRef{T}, CancellationToken)"/> reads it as <typeparamref name="T"/>.</summary>
/// <typeparam name="T">The type the object is read as.</typeparam>
public sealed class ObjectRef<T> : ObjectRef
{
    internal ObjectRef(RefEnvelope envelope, byte[] envelopeBytes, RefBorrow borrow)
        : base(envelope, envelopeBytes, borrow)
    {
    }
}

/// <summary>One borrow on the worker, shared by the typed views of a ref; released at most once.</summary>
internal sealed class RefBorrow(RaySharingClient client, ObjectId id)
{
    private int _released;

    public ObjectId Id { get; } = id;

    public RaySharingClient Client { get; } = client;

    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>Marks the borrow released; true for the one caller that must tell the worker.</summary>
    public bool TryMarkReleased() => Interlocked.Exchange(ref _released, 1) == 0;

    public ValueTask ReleaseAsync() => TryMarkReleased() ? Client.ReleaseIdsQuietlyAsync([Id]) : ValueTask.CompletedTask;
}
