namespace RaySharing.Wire;

/// <summary>Where the owner of an object runs: the worker's address and its instance id.</summary>
/// <param name="Address">The worker's gRPC address, for example <c>http://127.0.0.1:7480</c>.</param>
/// <param name="WorkerId">The worker instance; a restarted worker has a new one.</param>
internal readonly record struct WorkerLocation(string Address, ObjectId WorkerId);

/// <summary>
/// The wire form of a reference: everything a stranger needs to resolve an object. Specified in
/// <c>protos/ENVELOPE.md</c>; encoded and decoded by <see cref="EnvelopeCodec"/>.
/// </summary>
internal sealed record RefEnvelope
{
    /// <summary>The envelope format version this library writes.</summary>
    public const int CurrentVersion = 1;

    /// <summary>The object.</summary>
    public required ObjectId ObjectId { get; init; }

    /// <summary>The object's owner.</summary>
    public required ObjectOwner Owner { get; init; }

    /// <summary>The worker that hosts the owner and stores the bytes.</summary>
    public required WorkerLocation Location { get; init; }

    /// <summary>The object's size in bytes.</summary>
    public required long Size { get; init; }

    /// <summary>How the bytes are to be read.</summary>
    public required ObjectCodec Codec { get; init; }

    /// <summary>The type name the putter gave; empty when untyped.</summary>
    public required string TypeName { get; init; }

    /// <summary>CRC-32 (ISO-HDLC, as <c>zlib.crc32</c>) of the bytes.</summary>
    public required uint Checksum { get; init; }

    /// <summary>Reserved for an integrity tag (a MAC over the envelope); null when absent.</summary>
    public byte[]? IntegrityTag { get; init; }

    /// <inheritdoc/>
    public bool Equals(RefEnvelope? other) =>
        other is not null
        && ObjectId == other.ObjectId
        && Owner == other.Owner
        && Location == other.Location
        && Size == other.Size
        && Codec == other.Codec
        && TypeName == other.TypeName
        && Checksum == other.Checksum
        && (IntegrityTag is null
            ? other.IntegrityTag is null
            : other.IntegrityTag is not null && IntegrityTag.AsSpan().SequenceEqual(other.IntegrityTag));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ObjectId, Owner, Size, Checksum);
}
