using System.Buffers;
using MessagePack;

namespace RaySharing.Wire;

/// <summary>
/// Encodes and decodes ref envelopes (<c>protos/ENVELOPE.md</c>). Written by hand rather than with
/// attribute contracts so that decoding untrusted bytes is strict, bounded and gives exact errors.
/// </summary>
internal static class EnvelopeCodec
{
    /// <summary>The largest envelope accepted, in bytes.</summary>
    public const int MaxEnvelopeBytes = 16 * 1024;

    /// <summary>The longest string field accepted (namespace, name, type name, address), in UTF-8 bytes.</summary>
    public const int MaxStringBytes = 1024;

    private const int FieldCount = 9;

    // Scratch space per thread: puts encode an envelope each, and the only allocation left is the result.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static byte[]? t_id;

    /// <summary>Encodes an envelope into a new array.</summary>
    public static byte[] Encode(RefEnvelope envelope)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(256);
        buffer.ResetWrittenCount();
        Encode(envelope, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Encodes an envelope into <paramref name="output"/>.</summary>
    /// <exception cref="ArgumentException">The envelope breaks a rule of the spec, so no reader would accept it.</exception>
    public static void Encode(RefEnvelope envelope, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        Validate(envelope);
        EncodeUnvalidated(envelope, output);
    }

    /// <summary>Writes the layout without the checks; tests use it to make bytes that readers must reject.</summary>
    internal static void EncodeUnvalidated(RefEnvelope envelope, IBufferWriter<byte> output)
    {
        // MessagePackWriter 2.x is not annotated for stack spans, hence a small (reused) heap buffer.
        var id = t_id ??= new byte[ObjectId.Length];
        var writer = new MessagePackWriter(output);

        writer.WriteArrayHeader(FieldCount);
        writer.Write(RefEnvelope.CurrentVersion);
        envelope.ObjectId.WriteTo(id);
        writer.Write(id);

        writer.WriteArrayHeader(4);
        writer.Write((int)envelope.Owner.Kind);
        writer.Write(envelope.Owner.Namespace);
        writer.Write(envelope.Owner.Name);
        envelope.Owner.Incarnation.WriteTo(id);
        writer.Write(id);

        writer.WriteArrayHeader(2);
        writer.Write(envelope.Location.Address);
        envelope.Location.WorkerId.WriteTo(id);
        writer.Write(id);

        writer.Write(checked((ulong)envelope.Size));
        writer.Write(CodecNames.ToName(envelope.Codec));
        writer.Write(envelope.TypeName);
        writer.Write(envelope.Checksum);
        if (envelope.IntegrityTag is null)
        {
            writer.WriteNil();
        }
        else
        {
            writer.Write(envelope.IntegrityTag);
        }

        writer.Flush();
    }

    /// <summary>Decodes an envelope.</summary>
    /// <exception cref="EnvelopeFormatException">The bytes are not a valid envelope of a supported version.</exception>
    public static RefEnvelope Decode(ReadOnlyMemory<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            throw new EnvelopeFormatException("The envelope is empty.");
        }

        if (bytes.Length > MaxEnvelopeBytes)
        {
            throw new EnvelopeFormatException($"The envelope is {bytes.Length} bytes; at most {MaxEnvelopeBytes} are accepted.");
        }

        try
        {
            var reader = new MessagePackReader(bytes);
            var envelope = Read(ref reader);
            if (!reader.End)
            {
                throw new EnvelopeFormatException("The envelope has trailing bytes after its end.");
            }

            return envelope;
        }
        catch (EnvelopeFormatException)
        {
            throw;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException or ArgumentException)
        {
            throw new EnvelopeFormatException($"The envelope is not valid MessagePack of the expected shape: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Checks what the decoder will check, so the encoder never writes bytes readers reject: string
    /// lengths in UTF-8 bytes, well-formed UTF-16 (a lone surrogate would be silently replaced), a name
    /// for holder owners and none for session owners.
    /// </summary>
    private static void Validate(RefEnvelope envelope)
    {
        if (envelope.Owner.Kind is not (OwnerKind.Holder or OwnerKind.Session))
        {
            throw new ArgumentException($"Owner kind {envelope.Owner.Kind} is not known.", nameof(envelope));
        }

        CheckString(envelope.Owner.Namespace, "Owner.Namespace");
        CheckString(envelope.Owner.Name, "Owner.Name");
        CheckString(envelope.Location.Address, "Location.Address");
        CheckString(envelope.TypeName, "TypeName");
        if (envelope.Owner.Kind == OwnerKind.Holder ? envelope.Owner.Name.Length == 0 : envelope.Owner.Name.Length != 0)
        {
            throw new ArgumentException($"A {envelope.Owner.Kind} owner must {(envelope.Owner.Kind == OwnerKind.Holder ? "have a name" : "have an empty name")}.", nameof(envelope));
        }

        if (envelope.Size < 0)
        {
            throw new ArgumentException($"Size must not be negative; got {envelope.Size}.", nameof(envelope));
        }

        if (envelope.IntegrityTag is { Length: > MaxStringBytes })
        {
            throw new ArgumentException($"The integrity tag is at most {MaxStringBytes} bytes; got {envelope.IntegrityTag.Length}.", nameof(envelope));
        }
    }

    private static void CheckString(string? value, string field)
    {
        if (value is null)
        {
            throw new ArgumentException($"{field} must not be null.", nameof(value));
        }

        var bytes = StrictUtf8.ByteCount(value)
            ?? throw new ArgumentException($"{field} is not well-formed UTF-16 (a lone surrogate), so it has no UTF-8 form.", nameof(value));
        if (bytes > MaxStringBytes)
        {
            throw new ArgumentException($"{field} is {bytes} UTF-8 bytes; at most {MaxStringBytes} are allowed.", nameof(value));
        }
    }

    /// <summary>
    /// Reads only the object id of an envelope, without decoding (or checking) the rest: for envelopes
    /// from a trusted worker whose other fields may never be needed.
    /// </summary>
    /// <exception cref="EnvelopeFormatException">The bytes do not start like a version-1 envelope.</exception>
    public static ObjectId PeekObjectId(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            var reader = new MessagePackReader(bytes);
            var count = ExpectArray(ref reader, "envelope");
            var version = count == 0 ? 0 : ReadInteger(ref reader, "version", static (ref MessagePackReader r) => r.ReadInt32());
            if (version != RefEnvelope.CurrentVersion || count < FieldCount)
            {
                throw new EnvelopeFormatException($"Envelope version {version} with {count} fields is not a version-{RefEnvelope.CurrentVersion} envelope.");
            }

            return ReadId(ref reader, "object id");
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException)
        {
            throw new EnvelopeFormatException($"The envelope is not valid MessagePack of the expected shape: {ex.Message}", ex);
        }
    }

    /// <summary>Decodes an envelope; false (and a reason) instead of an exception.</summary>
    public static bool TryDecode(ReadOnlyMemory<byte> bytes, out RefEnvelope? envelope, out string? error)
    {
        try
        {
            envelope = Decode(bytes);
            error = null;
            return true;
        }
        catch (EnvelopeFormatException ex)
        {
            envelope = null;
            error = ex.Message;
            return false;
        }
    }

    private static RefEnvelope Read(ref MessagePackReader reader)
    {
        var count = ExpectArray(ref reader, "envelope");
        // The version comes first, so an envelope of another version is reported as such, whatever its shape.
        var version = count == 0 ? 0 : ReadInteger(ref reader, "version", static (ref MessagePackReader r) => r.ReadInt32());
        if (version != RefEnvelope.CurrentVersion)
        {
            throw new EnvelopeFormatException($"Envelope version {version} is not supported; this library reads version {RefEnvelope.CurrentVersion}.");
        }

        // Later versions may append fields; a version-1 reader needs the first nine.
        if (count < FieldCount)
        {
            throw new EnvelopeFormatException($"The envelope has {count} fields; version 1 has {FieldCount}.");
        }

        var objectId = ReadId(ref reader, "object id");

        var ownerCount = ExpectArray(ref reader, "owner");
        if (ownerCount < 4)
        {
            throw new EnvelopeFormatException($"The owner has {ownerCount} fields; 4 are required.");
        }

        var kind = ReadInteger(ref reader, "owner kind", static (ref MessagePackReader r) => r.ReadInt32());
        if (kind is not ((int)OwnerKind.Holder or (int)OwnerKind.Session))
        {
            throw new EnvelopeFormatException($"Owner kind {kind} is not known (1 = holder, 2 = session).");
        }

        var ns = ReadString(ref reader, "owner namespace");
        var name = ReadString(ref reader, "owner name");
        var incarnation = ReadId(ref reader, "owner incarnation");
        SkipExtra(ref reader, ownerCount - 4);
        if ((OwnerKind)kind == OwnerKind.Holder && name.Length == 0)
        {
            throw new EnvelopeFormatException("A holder owner must have a name.");
        }

        if ((OwnerKind)kind == OwnerKind.Session && name.Length != 0)
        {
            throw new EnvelopeFormatException("A session owner must have an empty name.");
        }

        var locationCount = ExpectArray(ref reader, "location");
        if (locationCount < 2)
        {
            throw new EnvelopeFormatException($"The location has {locationCount} fields; 2 are required.");
        }

        var address = ReadString(ref reader, "worker address");
        var workerId = ReadId(ref reader, "worker id");
        SkipExtra(ref reader, locationCount - 2);

        var size = ReadInteger(ref reader, "size", static (ref MessagePackReader r) => r.ReadUInt64());
        if (size > long.MaxValue)
        {
            throw new EnvelopeFormatException($"Object size {size} is out of range.");
        }

        var codecName = ReadString(ref reader, "codec");
        if (!CodecNames.TryParse(codecName, out var codec))
        {
            throw new EnvelopeFormatException($"Codec '{codecName}' is not known (XLANG, RAW, ARROW).");
        }

        var typeName = ReadString(ref reader, "type name");
        var checksum = ReadInteger(ref reader, "checksum", static (ref MessagePackReader r) => r.ReadUInt32());
        byte[]? tag = null;
        if (!reader.TryReadNil())
        {
            // ReadBytes would also take a str (old-spec raw); the spec says nil or bin.
            if (reader.NextMessagePackType != MessagePackType.Binary)
            {
                throw new EnvelopeFormatException($"The integrity tag must be nil or binary; found {reader.NextMessagePackType}.");
            }

            var tagBytes = reader.ReadBytes()!.Value;
            if (tagBytes.Length > MaxStringBytes)
            {
                throw new EnvelopeFormatException($"The integrity tag is {tagBytes.Length} bytes; at most {MaxStringBytes} are accepted.");
            }

            tag = tagBytes.ToArray();
        }

        SkipExtra(ref reader, count - FieldCount);

        return new RefEnvelope
        {
            ObjectId = objectId,
            Owner = new ObjectOwner((OwnerKind)kind, ns, name, incarnation),
            Location = new WorkerLocation(address, workerId),
            Size = (long)size,
            Codec = codec,
            TypeName = typeName,
            Checksum = checksum,
            IntegrityTag = tag,
        };
    }

    private delegate T IntegerReader<T>(ref MessagePackReader reader);

    private static T ReadInteger<T>(ref MessagePackReader reader, string what, IntegerReader<T> read)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
        {
            throw new EnvelopeFormatException($"The {what} must be an integer; found {reader.NextMessagePackType}.");
        }

        try
        {
            return read(ref reader);
        }
        catch (OverflowException ex)
        {
            throw new EnvelopeFormatException($"The {what} is out of range.", ex);
        }
    }

    private static int ExpectArray(ref MessagePackReader reader, string what)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new EnvelopeFormatException($"The {what} must be a MessagePack array; found {reader.NextMessagePackType}.");
        }

        return reader.ReadArrayHeader();
    }

    private static ObjectId ReadId(ref MessagePackReader reader, string what)
    {
        if (reader.NextMessagePackType != MessagePackType.Binary)
        {
            throw new EnvelopeFormatException($"The {what} must be binary; found {reader.NextMessagePackType}.");
        }

        var bytes = reader.ReadBytes()!.Value;
        if (bytes.Length != ObjectId.Length)
        {
            throw new EnvelopeFormatException($"The {what} must be {ObjectId.Length} bytes; found {bytes.Length}.");
        }

        Span<byte> buffer = stackalloc byte[ObjectId.Length];
        bytes.CopyTo(buffer);
        return ObjectId.FromBytes(buffer);
    }

    private static string ReadString(ref MessagePackReader reader, string what)
    {
        if (reader.NextMessagePackType != MessagePackType.String)
        {
            throw new EnvelopeFormatException($"The {what} must be a string; found {reader.NextMessagePackType}.");
        }

        var raw = reader.ReadStringSequence()!.Value;
        if (raw.Length > MaxStringBytes)
        {
            throw new EnvelopeFormatException($"The {what} is {raw.Length} bytes; at most {MaxStringBytes} are accepted.");
        }

        try
        {
            return StringCache.GetOrCreate(raw, StrictUtf8.Encoding);
        }
        catch (System.Text.DecoderFallbackException ex)
        {
            throw new EnvelopeFormatException($"The {what} is not valid UTF-8.", ex);
        }
    }

    /// <summary>How deeply the unknown elements a later version may append can nest.</summary>
    private const int MaxSkipDepth = 16;

    private static void SkipExtra(ref MessagePackReader reader, int count)
    {
        for (var i = 0; i < count; i++)
        {
            SkipBounded(ref reader, 0);
        }
    }

    /// <summary>
    /// Skips one element. MessagePackReader.Skip recurses without a limit, so 16 KiB of nested array
    /// headers could exhaust a thread's stack; this one refuses nesting deeper than <see cref="MaxSkipDepth"/>.
    /// </summary>
    private static void SkipBounded(ref MessagePackReader reader, int depth)
    {
        if (depth > MaxSkipDepth)
        {
            throw new EnvelopeFormatException($"Unknown trailing elements nest deeper than {MaxSkipDepth} levels.");
        }

        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Array:
                for (var i = reader.ReadArrayHeader(); i > 0; i--)
                {
                    SkipBounded(ref reader, depth + 1);
                }

                break;
            case MessagePackType.Map:
                for (var i = reader.ReadMapHeader(); i > 0; i--)
                {
                    SkipBounded(ref reader, depth + 1);
                    SkipBounded(ref reader, depth + 1);
                }

                break;
            default:
                reader.Skip();
                break;
        }
    }
}
