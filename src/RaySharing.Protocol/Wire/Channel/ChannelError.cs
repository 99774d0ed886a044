using System.Buffers;
using MessagePack;

namespace RaySharing.Wire.Channel;

/// <summary>
/// The payload of a failed response or a connection error frame (protos/CHANNEL.md, "Errors"): a MessagePack
/// array [reason, message] or [reason, message, detail], detail a map of string to string whose keys are the
/// trailer names of protos/ERRORS.md (<c>rs-object-id</c>, ...).
/// </summary>
internal sealed record ChannelError(string Reason, string Message, IReadOnlyDictionary<string, string>? Detail = null)
{
    /// <summary>The most detail entries a reader accepts; ERRORS.md names seven trailers.</summary>
    public const int MaxDetailEntries = 32;

    /// <summary>Writes the error's MessagePack array to <paramref name="output"/>.</summary>
    public void Write(IBufferWriter<byte> output)
    {
        var writer = new MessagePackWriter(output);
        writer.WriteArrayHeader(Detail is null ? 2 : 3);
        writer.Write(Reason);
        writer.Write(Message);
        if (Detail is not null)
        {
            writer.WriteMapHeader(Detail.Count);
            foreach (var (key, value) in Detail)
            {
                writer.Write(key);
                writer.Write(value);
            }
        }

        writer.Flush();
    }

    /// <summary>The error's bytes, as a new array.</summary>
    public byte[] ToArray()
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        Write(buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Reads an error payload. Extra array elements after the detail are skipped (later versions may add some);
    /// anything else that is not the shape above is a protocol error.
    /// </summary>
    /// <exception cref="ChannelProtocolException">The payload is not an error array.</exception>
    public static ChannelError Read(ReadOnlyMemory<byte> payload)
    {
        try
        {
            var reader = new MessagePackReader(payload);
            var count = reader.ReadArrayHeader();
            if (count < 2)
            {
                throw new ChannelProtocolException($"A channel error payload is an array of {count} element(s); it has the reason and the message at least.");
            }

            var reason = reader.ReadString() ?? throw new ChannelProtocolException("A channel error payload has a nil reason.");
            var message = reader.ReadString() ?? string.Empty;
            Dictionary<string, string>? detail = null;
            if (count >= 3 && !reader.TryReadNil())
            {
                var entries = reader.ReadMapHeader();
                if (entries > MaxDetailEntries)
                {
                    throw new ChannelProtocolException($"A channel error payload has {entries} detail entries, over the limit of {MaxDetailEntries}.");
                }

                detail = new Dictionary<string, string>(entries, StringComparer.Ordinal);
                for (var i = 0; i < entries; i++)
                {
                    var key = reader.ReadString() ?? throw new ChannelProtocolException("A channel error detail has a nil key.");
                    detail[key] = reader.ReadString() ?? string.Empty;
                }
            }

            for (var i = 3; i < count; i++)
            {
                reader.Skip();
            }

            return new ChannelError(reason, message, detail);
        }
        catch (MessagePackSerializationException ex)
        {
            throw new ChannelProtocolException($"A channel error payload is not valid MessagePack: {ex.Message}", innerException: ex);
        }
        catch (EndOfStreamException ex)
        {
            throw new ChannelProtocolException("A channel error payload ends early.", innerException: ex);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Reason}: {Message}";
}
