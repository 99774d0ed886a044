using RaySharing.Wire;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Storage;

namespace RaySharing.Worker.Services;

/// <summary>
/// What a put or a get does to the store, whichever transport carried it: the gRPC services and the binary
/// channel both call these, so a put checks the same things in the same order and a get pins the same way.
/// </summary>
internal sealed class ObjectOperations(OwnershipGraph graph, ObjectStore store)
{
    /// <summary>Checks a put's declared codec, type name and size; returns the codec.</summary>
    public static ObjectCodec ValidatePut<TWire>(TWire wireCodec, string typeName, ulong size)
        where TWire : struct, Enum
    {
        if (!WireEnums.TryCodecFromWire(wireCodec, out var codec))
        {
            throw WorkerErrors.InvalidRequest($"Codec {Convert.ToInt64(wireCodec, System.Globalization.CultureInfo.InvariantCulture)} is not known; use XLANG, RAW or ARROW.");
        }

        if (System.Text.Encoding.UTF8.GetByteCount(typeName) > EnvelopeCodec.MaxStringBytes)
        {
            throw WorkerErrors.InvalidRequest($"The type name is longer than {EnvelopeCodec.MaxStringBytes} bytes.");
        }

        if (size > long.MaxValue)
        {
            throw WorkerErrors.InvalidRequest($"Size {size} is out of range.");
        }

        return codec;
    }

    /// <summary>
    /// Stores a put whose bytes arrived whole in one message: reserves room, copies them into the store while
    /// checking their CRC-32 (one pass over the bytes) and commits the object. Nothing is stored on any failure.
    /// </summary>
    public StoredObject PutWhole(ObjectId session, HolderAddress? owner, ObjectCodec codec, string typeName, uint declaredChecksum, ReadOnlySpan<byte> data)
    {
        var bytes = store.Reserve(data.Length);
        try
        {
            uint checksum;
            using (store.Arena.Access())
            {
                checksum = Checksums.CopyAndAppend(0, data, bytes.Writable(0, data.Length));
            }

            if (checksum != declaredChecksum)
            {
                throw WorkerErrors.ChecksumMismatch($"The put's bytes have checksum {checksum:x8} but the sender declared {declaredChecksum:x8}; nothing was stored.");
            }

            return graph.CommitPut(session, owner, bytes, codec, typeName, checksum);
        }
        catch
        {
            bytes.Free();
            throw;
        }
    }

    /// <summary>Resolves an envelope for a get and holds its object's bytes while they are read.</summary>
    public (StoredObject Object, BytesPin Pin) ResolveForRead(ObjectId session, RefEnvelope envelope)
    {
        graph.RequireSession(session);
        var stored = graph.ResolveAndPin(envelope);
        return (stored, Hold(stored.Bytes));
    }

    /// <summary>Wraps a reader's pin, already taken on <paramref name="bytes"/>, with an arena access: the mapping stays while they are read.</summary>
    public BytesPin Hold(StoredBytes bytes)
    {
        try
        {
            return new BytesPin(bytes, store.Arena.Access());
        }
        catch
        {
            bytes.Unpin();
            throw;
        }
    }
}
