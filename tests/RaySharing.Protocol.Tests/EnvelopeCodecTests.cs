using RaySharing.Wire;
using System.Buffers;
using System.Text;
using MessagePack;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>The codec's rules beyond the golden vectors: forward compatibility, smallest forms, limits, round trips.</summary>
public sealed class EnvelopeCodecTests
{
    // session-raw.hex ends with: size 64 | codec a3 52 41 57 | type a0 | checksum cd be ef | tag c0.
    private const int SessionRawTailAfterSize = 9;
    private const int SessionRawTailAfterChecksum = 1;

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(1, 0, 0)]
    [InlineData(0, 1, 0)]
    [InlineData(0, 0, 1)]
    [InlineData(3, 2, 4)]
    public void Decode_ExtraTrailingElements_IgnoresThem(int envelopeExtra, int ownerExtra, int locationExtra)
    {
        foreach (var name in Vectors.ValidNames)
        {
            var expected = Vectors.ReadValue(name);
            var bytes = WriteWithExtras(expected, envelopeExtra, ownerExtra, locationExtra);

            var actual = EnvelopeCodec.Decode(bytes);

            EnvelopeVectorTests.AssertSameEnvelope(expected, actual);
        }
    }

    [Fact]
    public void Decode_ExtraElementsAndVersion2_ThrowsEnvelopeFormatException()
    {
        var bytes = WriteWithExtras(Vectors.ReadValue("holder-xlang"), 2, 1, 1, version: 2);

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));

        Assert.Contains("version 2", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(0L, "00")]
    [InlineData(127L, "7f")]
    [InlineData(128L, "cc80")]
    [InlineData(255L, "ccff")]
    [InlineData(256L, "cd0100")]
    [InlineData(65535L, "cdffff")]
    [InlineData(65536L, "ce00010000")]
    [InlineData(4294967295L, "ceffffffff")]
    [InlineData(4294967296L, "cf0000000100000000")]
    [InlineData(long.MaxValue, "cf7fffffffffffffff")]
    public void Encode_Size_UsesSmallestMessagePackForm(long size, string expectedHex)
    {
        // session-raw's size is the one byte 64, just before its 9-byte tail.
        var bytes = AssertEncodesAsGoldenWith(Vectors.ReadValue("session-raw") with { Size = size }, SessionRawTailAfterSize, 1, expectedHex);

        Assert.Equal(size, EnvelopeCodec.Decode(bytes).Size);
    }

    [Theory]
    [InlineData(0u, "00")]
    [InlineData(127u, "7f")]
    [InlineData(128u, "cc80")]
    [InlineData(65535u, "cdffff")]
    [InlineData(65536u, "ce00010000")]
    [InlineData(0xCBF43926u, "cecbf43926")]
    [InlineData(uint.MaxValue, "ceffffffff")]
    public void Encode_Checksum_UsesSmallestMessagePackForm(uint checksum, string expectedHex)
    {
        // session-raw's checksum is the three bytes cd be ef, just before its 1-byte tail.
        var bytes = AssertEncodesAsGoldenWith(Vectors.ReadValue("session-raw") with { Checksum = checksum }, SessionRawTailAfterChecksum, 3, expectedHex);

        Assert.Equal(checksum, EnvelopeCodec.Decode(bytes).Checksum);
    }

    [Fact]
    public void Encode_RandomEnvelopes_DecodeToTheSame()
    {
        const int seed = 20261129;
        var random = new Random(seed);
        for (var i = 0; i < 2000; i++)
        {
            var envelope = RandomEnvelope(random);
            var bytes = EnvelopeCodec.Encode(envelope);

            var decoded = EnvelopeCodec.Decode(bytes);

            EnvelopeVectorTests.AssertSameEnvelope(envelope, decoded);
            Assert.Equal(Hex(bytes), Hex(EnvelopeCodec.Encode(decoded)));
        }
    }

    [Fact]
    public void Encode_BufferWriterOverload_WritesTheSameBytes()
    {
        var envelope = Vectors.ReadValue("arrow-tagged");
        var buffer = new ArrayBufferWriter<byte>(1);

        EnvelopeCodec.Encode(envelope, buffer);

        Assert.Equal(Hex(Vectors.ReadBytes("arrow-tagged")), Hex(buffer.WrittenSpan.ToArray()));
    }

    [Fact]
    public void Decode_EnvelopeOfMaxEnvelopeBytes_IsAccepted()
    {
        var bytes = PaddedTo(EnvelopeCodec.MaxEnvelopeBytes);

        var envelope = EnvelopeCodec.Decode(bytes);

        Assert.Equal(Vectors.ReadValue("session-raw"), envelope);
    }

    [Fact]
    public void Decode_EnvelopeOverMaxEnvelopeBytes_ThrowsEnvelopeFormatException()
    {
        var bytes = PaddedTo(EnvelopeCodec.MaxEnvelopeBytes + 1);

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));

        Assert.Contains(EnvelopeCodec.MaxEnvelopeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Empty_ThrowsEnvelopeFormatException()
    {
        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(ReadOnlyMemory<byte>.Empty));
    }

    [Theory]
    [InlineData("namespace")]
    [InlineData("name")]
    [InlineData("address")]
    [InlineData("type")]
    public void Decode_StringOfMaxStringBytes_IsAccepted(string field)
    {
        // 512 two-byte characters: the limit counts UTF-8 bytes, not characters.
        var envelope = WithString(Vectors.ReadValue("holder-xlang"), field, new string('é', EnvelopeCodec.MaxStringBytes / 2));

        var decoded = EnvelopeCodec.Decode(EnvelopeCodec.Encode(envelope));

        Assert.Equal(envelope, decoded);
    }

    [Theory]
    [InlineData("namespace")]
    [InlineData("name")]
    [InlineData("address")]
    [InlineData("type")]
    public void Decode_StringOverMaxStringBytes_ThrowsEnvelopeFormatException(string field)
    {
        var envelope = WithString(Vectors.ReadValue("holder-xlang"), field, new string('é', EnvelopeCodec.MaxStringBytes / 2) + "a");
        var bytes = EncodeUnchecked(envelope);

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));

        Assert.Contains("1025 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("namespace")]
    [InlineData("name")]
    [InlineData("address")]
    [InlineData("type")]
    public void Encode_StringOverMaxStringBytes_ThrowsArgumentExceptionNamingTheField(string field)
    {
        var envelope = WithString(Vectors.ReadValue("holder-xlang"), field, new string('é', EnvelopeCodec.MaxStringBytes / 2) + "a");

        var ex = Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(envelope));

        Assert.Contains("1025 UTF-8 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Encode_EnvelopesNoReaderAccepts_ThrowArgumentException()
    {
        var holder = Vectors.ReadValue("holder-xlang");
        var session = Vectors.ReadValue("session-raw");

        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(holder with { Owner = holder.Owner with { Name = "" } }));
        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(session with { Owner = session.Owner with { Name = "x" } }));
        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(holder with { TypeName = "\ud800" }));
        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(holder with { Location = default }));
        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(holder with { Size = -1 }));
    }

    [Fact]
    public void Equals_NullAndEmptyTag_AreDifferentLikeTheirEncodings()
    {
        var envelope = Vectors.ReadValue("session-raw") with { IntegrityTag = null };
        var withEmptyTag = envelope with { IntegrityTag = [] };

        Assert.NotEqual(envelope, withEmptyTag);
        Assert.NotEqual(EnvelopeCodec.Encode(envelope), EnvelopeCodec.Encode(withEmptyTag));
    }

    [Fact]
    public void Decode_IntegrityTagOver1024Bytes_ThrowsEnvelopeFormatException()
    {
        var envelope = Vectors.ReadValue("arrow-tagged") with { IntegrityTag = new byte[EnvelopeCodec.MaxStringBytes + 1] };
        var bytes = EncodeUnchecked(envelope);

        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));
    }

    [Fact]
    public void CodecNames_EveryCodec_RoundTripsThroughItsWireName()
    {
        foreach (var codec in Enum.GetValues<ObjectCodec>())
        {
            Assert.True(CodecNames.TryParse(CodecNames.ToName(codec), out var parsed));
            Assert.Equal(codec, parsed);
        }

        Assert.Equal(["XLANG", "RAW", "ARROW"], Enum.GetValues<ObjectCodec>().Select(CodecNames.ToName));
        Assert.False(CodecNames.TryParse("xlang", out _));
        Assert.False(CodecNames.TryParse(string.Empty, out _));
    }

    private static string Hex(byte[] bytes) => Convert.ToHexString(bytes).ToLowerInvariant();

    /// <summary>
    /// Asserts that <paramref name="envelope"/> encodes as session-raw's golden bytes with one field's
    /// <paramref name="fieldLength"/> bytes, which end <paramref name="tailLength"/> bytes before the end,
    /// replaced by <paramref name="fieldHex"/>; returns the bytes.
    /// </summary>
    private static byte[] AssertEncodesAsGoldenWith(RefEnvelope envelope, int tailLength, int fieldLength, string fieldHex)
    {
        var golden = Vectors.ReadBytes("session-raw");
        var fieldAt = golden.Length - tailLength - fieldLength;
        var bytes = EnvelopeCodec.Encode(envelope);

        Assert.Equal(Hex(golden[..fieldAt]) + fieldHex + Hex(golden[^tailLength..]), Hex(bytes));
        return bytes;
    }

    private static byte[] EncodeUnchecked(RefEnvelope envelope)
    {
        var buffer = new ArrayBufferWriter<byte>();
        EnvelopeCodec.EncodeUnvalidated(envelope, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    private static RefEnvelope WithString(RefEnvelope envelope, string field, string value) => field switch
    {
        "namespace" => envelope with { Owner = envelope.Owner with { Namespace = value } },
        "name" => envelope with { Owner = envelope.Owner with { Name = value } },
        "address" => envelope with { Location = envelope.Location with { Address = value } },
        "type" => envelope with { TypeName = value },
        _ => throw new ArgumentOutOfRangeException(nameof(field), field, null),
    };

    /// <summary>session-raw with one appended bin element, sized so the whole envelope is <paramref name="total"/> bytes.</summary>
    private static byte[] PaddedTo(int total)
    {
        var golden = Vectors.ReadBytes("session-raw");
        Assert.Equal(0x99, golden[0]);
        const int bin16Header = 3;
        var padding = total - golden.Length - bin16Header;
        var bytes = new byte[total];
        golden.CopyTo(bytes, 0);
        bytes[0] = 0x9a; // fixarray of 10: the padding is a tenth element
        bytes[golden.Length] = 0xc5;
        bytes[golden.Length + 1] = (byte)(padding >> 8);
        bytes[golden.Length + 2] = (byte)padding;
        return bytes;
    }

    /// <summary>
    /// Writes an envelope field by field, independently of <see cref="EnvelopeCodec"/>, with extra elements
    /// of assorted MessagePack types appended to the envelope, owner and location arrays.
    /// </summary>
    /// <remarks>
    /// It repeats the codec's field order on purpose: it writes what a later version (or another version
    /// number) would, which the codec must never write, so the reader is tested against an independent writer.
    /// </remarks>
    private static byte[] WriteWithExtras(RefEnvelope e, int envelopeExtra, int ownerExtra, int locationExtra, int version = 1)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(9 + envelopeExtra);
        writer.Write(version);
        writer.Write(e.ObjectId.ToByteArray());
        writer.WriteArrayHeader(4 + ownerExtra);
        writer.Write((int)e.Owner.Kind);
        writer.Write(e.Owner.Namespace);
        writer.Write(e.Owner.Name);
        writer.Write(e.Owner.Incarnation.ToByteArray());
        WriteExtras(ref writer, ownerExtra);
        writer.WriteArrayHeader(2 + locationExtra);
        writer.Write(e.Location.Address);
        writer.Write(e.Location.WorkerId.ToByteArray());
        WriteExtras(ref writer, locationExtra);
        writer.Write((ulong)e.Size);
        writer.Write(CodecNames.ToName(e.Codec));
        writer.Write(e.TypeName);
        writer.Write(e.Checksum);
        if (e.IntegrityTag is null)
        {
            writer.WriteNil();
        }
        else
        {
            writer.Write(e.IntegrityTag);
        }

        WriteExtras(ref writer, envelopeExtra);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteExtras(ref MessagePackWriter writer, int count)
    {
        for (var i = 0; i < count; i++)
        {
            switch (i % 4)
            {
                case 0:
                    writer.Write("a later field");
                    break;
                case 1:
                    writer.WriteMapHeader(1);
                    writer.Write("k");
                    writer.WriteArrayHeader(2);
                    writer.Write(-5);
                    writer.Write(3.5);
                    break;
                case 2:
                    writer.WriteNil();
                    break;
                default:
                    writer.WriteExtensionFormat(new ExtensionResult(42, new byte[] { 1, 2, 3 }));
                    break;
            }
        }
    }

    private static readonly string[] Pieces = ["a", "Z", "0", "-", "_", ".", "/", ":", "é", "ß", "数", "据", "🗄", "😀", " "];

    private static string RandomString(Random random, int maxChars, bool allowEmpty)
    {
        var builder = new StringBuilder();
        var length = random.Next(allowEmpty ? 0 : 1, maxChars + 1);
        for (var i = 0; i < length; i++)
        {
            builder.Append(Pieces[random.Next(Pieces.Length)]);
        }

        return builder.ToString();
    }

    private static readonly long[] InterestingSizes = [0, 1, 127, 128, 255, 256, 65535, 65536, uint.MaxValue, (long)uint.MaxValue + 1, long.MaxValue];

    private static RefEnvelope RandomEnvelope(Random random)
    {
        var kind = random.Next(2) == 0 ? OwnerKind.Holder : OwnerKind.Session;
        var size = random.Next(3) == 0 ? InterestingSizes[random.Next(InterestingSizes.Length)] : random.NextInt64(0, long.MaxValue);
        byte[]? tag = null;
        if (random.Next(3) == 0)
        {
            tag = new byte[random.Next(1, 65)];
            random.NextBytes(tag);
        }

        return new RefEnvelope
        {
            ObjectId = ObjectId.NewId(),
            Owner = new ObjectOwner(
                kind,
                RandomString(random, 40, allowEmpty: true),
                kind == OwnerKind.Holder ? RandomString(random, 40, allowEmpty: false) : string.Empty,
                ObjectId.NewId()),
            Location = new WorkerLocation(RandomString(random, 60, allowEmpty: true), ObjectId.NewId()),
            Size = size,
            Codec = (ObjectCodec)random.Next(1, 4),
            TypeName = RandomString(random, 80, allowEmpty: true),
            Checksum = (uint)random.NextInt64(0, (long)uint.MaxValue + 1),
            IntegrityTag = tag,
        };
    }
}
