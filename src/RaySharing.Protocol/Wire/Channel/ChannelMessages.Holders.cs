using System.Buffers;
using MessagePack;

namespace RaySharing.Wire.Channel;

/// <summary>A holder as HOLDER_GET's response describes it (holders.proto's <c>HolderInfo</c>).</summary>
internal readonly record struct ChannelHolderInfo(string Namespace, string Name, ObjectId Incarnation, int Lifetime, string WorkerAddress, ObjectId WorkerId, ulong OwnedObjects, uint Keys);

/// <summary>REGISTER's request: a key's refs to append on a holder (holders.proto's <c>RegisterRequest</c>).</summary>
internal readonly record struct ChannelRegister(ChannelHolder Holder, string Key, ReadOnlyMemory<byte>[] Envelopes);

/// <summary>FETCH's request: one page of a key's refs (holders.proto's <c>FetchRequest</c>).</summary>
internal readonly record struct ChannelFetch(ChannelHolder Holder, string Key, uint Start, uint MaxCount, uint MaxBytes, ulong ListVersion);

/// <summary>FETCH's response: the page (holders.proto's <c>FetchReply</c>).</summary>
internal readonly record struct ChannelFetchPage(ReadOnlyMemory<byte>[] Envelopes, uint Total, ulong ListVersion);

/// <summary>The holder calls of the channel (ops 11 to 13): the frequent ones, which a gRPC call would make three times as costly.</summary>
internal static partial class ChannelMessages
{
    /// <summary>HOLDER_GET: <c>[namespace, name]</c> (an empty namespace means the session's).</summary>
    public static void WriteHolderGet(IBufferWriter<byte> output, string ns, string name)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(2);
        writer.Write(ns);
        writer.Write(name);
        writer.Flush();
    }

    public static (string Namespace, string Name) ReadHolderGet(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 2, "HOLDER_GET's payload is an array [namespace, name]");
        return (reader.ReadString() ?? string.Empty, reader.ReadString() ?? string.Empty);
    });

    /// <summary>HOLDER_GET's response: <c>[namespace, name, incarnation, lifetime, worker_address, worker_id, owned_objects, keys]</c>.</summary>
    public static void WriteHolderInfo(IBufferWriter<byte> output, ChannelHolderInfo holder)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(8);
        writer.Write(holder.Namespace);
        writer.Write(holder.Name);
        writer.Write(holder.Incarnation.ToByteArray());
        writer.Write(holder.Lifetime);
        writer.Write(holder.WorkerAddress);
        writer.Write(holder.WorkerId.ToByteArray());
        writer.Write(holder.OwnedObjects);
        writer.Write(holder.Keys);
        writer.Flush();
    }

    public static ChannelHolderInfo ReadHolderInfo(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 8, "a holder is an array [namespace, name, incarnation, lifetime, worker_address, worker_id, owned_objects, keys]");
        var ns = reader.ReadString() ?? string.Empty;
        var name = reader.ReadString() ?? string.Empty;
        var incarnation = ReadId(ref reader, "incarnation");
        var lifetime = reader.ReadInt32();
        var address = reader.ReadString() ?? string.Empty;
        return new ChannelHolderInfo(ns, name, incarnation, lifetime, address, ReadId(ref reader, "worker id"), reader.ReadUInt64(), reader.ReadUInt32());
    });

    /// <summary>REGISTER: <c>[holder, key, [envelope, ...]]</c>, the holder as PUT's owner is.</summary>
    public static void WriteRegister(IBufferWriter<byte> output, ChannelHolder holder, string key, IReadOnlyList<ReadOnlyMemory<byte>> envelopes)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(3);
        WriteHolder(ref writer, holder);
        writer.Write(key);
        writer.WriteArrayHeader(envelopes.Count);
        foreach (var envelope in envelopes)
        {
            writer.Write(envelope.Span);
        }

        writer.Flush();
    }

    public static ChannelRegister ReadRegister(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 3, "REGISTER's payload is an array [holder, key, envelopes]");
        var holder = ReadHolder(ref reader);
        var key = reader.ReadString() ?? string.Empty;
        var envelopes = new ReadOnlyMemory<byte>[reader.ReadArrayHeader()];
        for (var i = 0; i < envelopes.Length; i++)
        {
            envelopes[i] = ReadBin(ref reader, "envelope");
        }

        return new ChannelRegister(holder, key, envelopes);
    });

    /// <summary>REGISTER's response: <c>[count]</c>, the key's length after the call.</summary>
    public static void WriteCount(IBufferWriter<byte> output, uint count)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(1);
        writer.Write(count);
        writer.Flush();
    }

    public static uint ReadCount(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 1, "the payload is an array [count]");
        return reader.ReadUInt32();
    });

    /// <summary>FETCH: <c>[holder, key, start, max_count, max_bytes, list_version]</c>, as holders.proto's FetchRequest.</summary>
    public static void WriteFetch(IBufferWriter<byte> output, ChannelFetch fetch)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(6);
        WriteHolder(ref writer, fetch.Holder);
        writer.Write(fetch.Key);
        writer.Write(fetch.Start);
        writer.Write(fetch.MaxCount);
        writer.Write(fetch.MaxBytes);
        writer.Write(fetch.ListVersion);
        writer.Flush();
    }

    public static ChannelFetch ReadFetch(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 6, "FETCH's payload is an array [holder, key, start, max_count, max_bytes, list_version]");
        return new ChannelFetch(ReadHolder(ref reader), reader.ReadString() ?? string.Empty, reader.ReadUInt32(), reader.ReadUInt32(), reader.ReadUInt32(), reader.ReadUInt64());
    });

    /// <summary>FETCH's response: <c>[[envelope, ...], total, list_version]</c>.</summary>
    public static void WriteFetchPage(IBufferWriter<byte> output, IReadOnlyList<ReadOnlyMemory<byte>> envelopes, uint total, ulong listVersion)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(3);
        writer.WriteArrayHeader(envelopes.Count);
        foreach (var envelope in envelopes)
        {
            writer.Write(envelope.Span);
        }

        writer.Write(total);
        writer.Write(listVersion);
        writer.Flush();
    }

    public static ChannelFetchPage ReadFetchPage(ReadOnlyMemory<byte> payload) => Parse(payload, out _, static (ref MessagePackReader reader) =>
    {
        Expect(reader.ReadArrayHeader() >= 3, "FETCH's response is an array [envelopes, total, list_version]");
        var envelopes = new ReadOnlyMemory<byte>[reader.ReadArrayHeader()];
        for (var i = 0; i < envelopes.Length; i++)
        {
            envelopes[i] = ReadBin(ref reader, "envelope");
        }

        return new ChannelFetchPage(envelopes, reader.ReadUInt32(), reader.ReadUInt64());
    });

    /// <summary>A holder as the calls name it: <c>[namespace, name, incarnation or nil]</c> (holders.proto's HolderRef).</summary>
    private static void WriteHolder(ref MessagePackWriter writer, ChannelHolder holder)
    {
        writer.WriteArrayHeader(3);
        writer.Write(holder.Namespace);
        writer.Write(holder.Name);
        WriteOptionalId(ref writer, holder.Incarnation);
    }

    private static ChannelHolder ReadHolder(ref MessagePackReader reader)
    {
        Expect(reader.ReadArrayHeader() == 3, "a holder is [namespace, name, incarnation or nil]");
        return new ChannelHolder(reader.ReadString() ?? string.Empty, reader.ReadString() ?? string.Empty, ReadOptionalId(ref reader, "incarnation"));
    }

    private static ObjectId ReadId(ref MessagePackReader reader, string what) =>
        ReadOptionalId(ref reader, what) ?? throw new InvalidDataException($"Malformed payload: the {what} is nil.");
}
