using System.Buffers;
using MessagePack;

namespace RaySharing.Wire.Channel;

/// <summary>A put's owner as the channel carries it: a holder's namespace, name and (optional) incarnation.</summary>
internal readonly record struct ChannelHolder(string Namespace, string Name, ObjectId? Incarnation);

/// <summary>What an object's bytes are, as a GET or BULK_GET response says before them.</summary>
internal readonly record struct ChannelObjectHeader(int Codec, string TypeName, uint Checksum);

/// <summary>The fields of a PUT request before its bytes.</summary>
internal readonly record struct ChannelPutFields(ChannelHolder? Owner, int Codec, string TypeName, uint Checksum);

/// <summary>
/// The payloads of the channel's ops (protos/CHANNEL.md, "Ops"), written and read in one place for the worker and
/// the client. Readers throw <see cref="InvalidDataException"/> for a payload of the wrong shape: the worker answers
/// it with INVALID_REQUEST, the client treats it as a broken worker.
/// </summary>
internal static partial class ChannelMessages
{
    /// <summary>The channel key's length: 32 random bytes per session.</summary>
    public const int KeyBytes = 32;

    /// <summary>HELLO's payload: the session token, then the channel key.</summary>
    public const int HelloBytes = ObjectId.Length + KeyBytes;

    /// <summary>A BULK_PUT body ends with the CRC-32 of the bytes before it, this long (u32, little-endian).</summary>
    public const int ChecksumTrailerBytes = 4;

    public static byte[] Hello(ObjectId sessionToken, ReadOnlySpan<byte> channelKey)
    {
        if (channelKey.Length != KeyBytes)
        {
            throw new ArgumentException($"A channel key is {KeyBytes} bytes; got {channelKey.Length}.", nameof(channelKey));
        }

        var payload = new byte[HelloBytes];
        sessionToken.WriteTo(payload);
        channelKey.CopyTo(payload.AsSpan(ObjectId.Length));
        return payload;
    }

    public static (ObjectId Token, ReadOnlyMemory<byte> Key) ReadHello(ReadOnlyMemory<byte> payload) =>
        payload.Length == HelloBytes
            ? (ObjectId.FromBytes(payload.Span[..ObjectId.Length]), payload[ObjectId.Length..])
            : throw new InvalidDataException($"HELLO's payload is {HelloBytes} bytes (the session token, then the channel key); got {payload.Length}.");

    /// <summary>A ticket: BULK_GET's payload, and BULK_PUT's after the body length.</summary>
    public static ObjectId ReadTicket(ReadOnlyMemory<byte> payload) =>
        payload.Length == ObjectId.Length
            ? ObjectId.FromBytes(payload.Span)
            : throw new InvalidDataException($"A ticket is {ObjectId.Length} bytes; got {payload.Length}.");

    /// <summary>PUT: <c>[owner, codec, type_name, checksum]</c>, then the object's bytes.</summary>
    public static void WritePut(IBufferWriter<byte> output, ChannelPutFields fields, ReadOnlySpan<byte> data)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(4);
        if (fields.Owner is { } owner)
        {
            WriteHolder(ref writer, owner);
        }
        else
        {
            writer.WriteNil();
        }

        writer.Write(fields.Codec);
        writer.Write(fields.TypeName);
        writer.Write(fields.Checksum);
        writer.WriteRaw(data);
        writer.Flush();
    }

    public static ChannelPutFields ReadPut(ReadOnlyMemory<byte> payload, out ReadOnlyMemory<byte> data) => Parse(payload, out data, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 4, "PUT's metadata is an array [owner, codec, type_name, checksum]");
        ChannelHolder? owner = null;
        if (!reader.TryReadNil())
        {
            owner = ReadHolder(ref reader);
        }

        return new ChannelPutFields(owner, reader.ReadInt32(), reader.ReadString() ?? string.Empty, reader.ReadUInt32());
    });

    /// <summary>GET's request, and PUT's and BULK_PUT's responses: <c>[envelope]</c>.</summary>
    public static void WriteEnvelope(IBufferWriter<byte> output, ReadOnlySpan<byte> envelope)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(1);
        writer.Write(envelope);
        writer.Flush();
    }

    public static ReadOnlyMemory<byte> ReadEnvelope(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 1, "the payload is an array [envelope]");
        return ReadBin(ref reader, "envelope");
    });

    /// <summary>GET's and BULK_GET's responses: <c>[codec, type_name, checksum]</c>, then (GET) the object's bytes.</summary>
    public static void WriteObjectHeader(IBufferWriter<byte> output, ChannelObjectHeader header)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(3);
        writer.Write(header.Codec);
        writer.Write(header.TypeName);
        writer.Write(header.Checksum);
        writer.Flush();
    }

    public static ChannelObjectHeader ReadObjectHeader(ReadOnlyMemory<byte> payload, out ReadOnlyMemory<byte> data) => Parse(payload, out data, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 3, "the object's header is an array [codec, type_name, checksum]");
        return new ChannelObjectHeader(reader.ReadInt32(), reader.ReadString() ?? string.Empty, reader.ReadUInt32());
    });

    /// <summary>PIN's response: <c>[offset, size, codec, type_name, checksum]</c> (the offset within the worker's arena).</summary>
    public static void WritePinned(IBufferWriter<byte> output, long offset, long size, ChannelObjectHeader header)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(5);
        writer.Write(offset);
        writer.Write(size);
        writer.Write(header.Codec);
        writer.Write(header.TypeName);
        writer.Write(header.Checksum);
        writer.Flush();
    }

    public static (long Offset, long Size, ChannelObjectHeader Header) ReadPinned(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 5, "PIN's response is an array [offset, size, codec, type_name, checksum]");
        var offset = reader.ReadInt64();
        var size = reader.ReadInt64();
        Expect(offset >= 0 && size >= 0, "PIN's offset and size are not negative");
        return (offset, size, new ChannelObjectHeader(reader.ReadInt32(), reader.ReadString() ?? string.Empty, reader.ReadUInt32()));
    });

    /// <summary>BORROW's request (envelopes), RELEASE's and UNPIN's (object ids): <c>[[bin, ...]]</c>.</summary>
    public static void WriteList(IBufferWriter<byte> output, IReadOnlyList<ReadOnlyMemory<byte>> items)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(1);
        writer.WriteArrayHeader(items.Count);
        foreach (var item in items)
        {
            writer.Write(item.Span);
        }

        writer.Flush();
    }

    public static ReadOnlyMemory<byte>[] ReadList(ReadOnlyMemory<byte> payload, string what) => Parse(payload, out _, (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 1, $"the payload is an array [{what}s]");
        var items = new ReadOnlyMemory<byte>[reader.ReadArrayHeader()];
        for (var i = 0; i < items.Length; i++)
        {
            items[i] = ReadBin(ref reader, what);
        }

        return items;
    });

    /// <summary>The empty array <c>[]</c>: BORROW's and RELEASE's ok responses.</summary>
    public static void WriteEmpty(IBufferWriter<byte> output)
    {
        var span = output.GetSpan(1);
        span[0] = MessagePackCode.MinFixArray;
        output.Advance(1);
    }

    private delegate T Reader<T>(ref MessagePackReader reader);

    private static T Parse<T>(ReadOnlyMemory<byte> payload, out ReadOnlyMemory<byte> rest, Reader<T> read)
    {
        try
        {
            var reader = new MessagePackReader(payload);
            var result = read(ref reader);
            rest = payload[(int)reader.Consumed..];
            return result;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or OverflowException)
        {
            throw new InvalidDataException($"The payload is not valid MessagePack of the op's shape: {ex.Message}", ex);
        }
    }

    private static void Expect(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidDataException($"Malformed payload: {what}.");
        }
    }

    private static ReadOnlyMemory<byte> ReadBin(ref MessagePackReader reader, string what)
    {
        var bytes = reader.ReadBytes() ?? throw new InvalidDataException($"Malformed payload: the {what} is nil.");
        // The payload is one block of memory, so every slice of it is too.
        return bytes.First;
    }

    private static ObjectId? ReadOptionalId(ref MessagePackReader reader, string what)
    {
        if (reader.TryReadNil())
        {
            return null;
        }

        var bytes = ReadBin(ref reader, what);
        return bytes.Length == ObjectId.Length
            ? ObjectId.FromBytes(bytes.Span)
            : throw new InvalidDataException($"Malformed payload: the {what} is {ObjectId.Length} bytes; got {bytes.Length}.");
    }

    private static void WriteOptionalId(ref MessagePackWriter writer, ObjectId? id)
    {
        if (id is { } value)
        {
            writer.Write(value.ToByteArray());
        }
        else
        {
            writer.WriteNil();
        }
    }
}
