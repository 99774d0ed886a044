using RaySharing.Wire;
using MessagePack;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>The codec against the hand-written golden vectors of <c>protos/vectors</c>.</summary>
public sealed class EnvelopeVectorTests
{
    public static TheoryData<string> Valid => Vectors.Valid;

    public static TheoryData<string> Compatible => Vectors.Compatible;

    public static TheoryData<string> Invalid => Vectors.Invalid;

    [Fact]
    public void Vectors_Directory_HoldsTheRequiredKinds()
    {
        var valid = Vectors.ValidNames;
        Assert.Contains("holder-xlang", valid);
        Assert.Contains("session-raw", valid);
        Assert.Contains("arrow-tagged", valid);
        Assert.Contains("utf8-names", valid);
        Assert.True(Vectors.InvalidNames.Count >= 5);
    }

    [Fact]
    public void Vectors_EveryHexFile_IsInvalidOrHasItsJson()
    {
        foreach (var path in Directory.GetFiles(Vectors.Directory, "*.hex"))
        {
            var name = Path.GetFileNameWithoutExtension(path);
            Assert.True(
                name.StartsWith("invalid-", StringComparison.Ordinal) || File.Exists(Path.ChangeExtension(path, ".json")),
                $"{name}.hex is neither an invalid-* vector nor paired with {name}.json, so no test reads it");
        }
    }

    [Theory]
    [MemberData(nameof(Valid))]
    public void Encode_GoldenValue_EqualsGoldenBytes(string name)
    {
        var expected = Vectors.ReadBytes(name);

        var actual = EnvelopeCodec.Encode(Vectors.ReadValue(name));

        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(actual));
    }

    [Theory]
    [MemberData(nameof(Valid))]
    public void Decode_GoldenBytes_EqualsGoldenValue(string name)
    {
        var expected = Vectors.ReadValue(name);

        var actual = EnvelopeCodec.Decode(Vectors.ReadBytes(name));

        AssertSameEnvelope(expected, actual);
    }

    [Theory]
    [MemberData(nameof(Compatible))]
    public void Decode_CompatibleBytes_EqualsGoldenValue(string name)
    {
        var expected = Vectors.ReadValue(name);

        var actual = EnvelopeCodec.Decode(Vectors.ReadBytes(name));

        AssertSameEnvelope(expected, actual);
    }

    [Theory]
    [MemberData(nameof(Valid))]
    [MemberData(nameof(Compatible))]
    public void GoldenBytes_ReadAsPlainMessagePack_AreOneValue(string name)
    {
        // Checks the hand-written hex against MessagePack itself, independently of EnvelopeCodec.
        var bytes = Vectors.ReadBytes(name);
        var reader = new MessagePackReader(bytes);

        Assert.Equal(MessagePackType.Array, reader.NextMessagePackType);
        reader.Skip();

        Assert.True(reader.End, $"{name}.hex has bytes after its first MessagePack value");
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Decode_InvalidBytes_ThrowsEnvelopeFormatException(string name)
    {
        var bytes = Vectors.ReadBytes(name);

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));

        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public void TryDecode_InvalidBytes_ReturnsFalseWithReason(string name)
    {
        var ok = EnvelopeCodec.TryDecode(Vectors.ReadBytes(name), out var envelope, out var error);

        Assert.False(ok);
        Assert.Null(envelope);
        Assert.False(string.IsNullOrWhiteSpace(error));
    }

    [Fact]
    public void Decode_IntegrityTagAsString_ThrowsEnvelopeFormatException()
    {
        var bytes = Vectors.ReadBytes("invalid-tag-as-string");

        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));
    }

    internal static void AssertSameEnvelope(RefEnvelope expected, RefEnvelope actual)
    {
        // Field by field, so a failure names the field; then the record's own equality.
        Assert.Equal(expected.ObjectId, actual.ObjectId);
        Assert.Equal(expected.Owner.Kind, actual.Owner.Kind);
        Assert.Equal(expected.Owner.Namespace, actual.Owner.Namespace);
        Assert.Equal(expected.Owner.Name, actual.Owner.Name);
        Assert.Equal(expected.Owner.Incarnation, actual.Owner.Incarnation);
        Assert.Equal(expected.Location.Address, actual.Location.Address);
        Assert.Equal(expected.Location.WorkerId, actual.Location.WorkerId);
        Assert.Equal(expected.Size, actual.Size);
        Assert.Equal(expected.Codec, actual.Codec);
        Assert.Equal(expected.TypeName, actual.TypeName);
        Assert.Equal(expected.Checksum, actual.Checksum);
        // RefEnvelope.Equals treats a null tag and an empty one alike; the wire does not (nil vs bin8 0).
        Assert.Equal(expected.IntegrityTag is null, actual.IntegrityTag is null);
        Assert.Equal(expected.IntegrityTag ?? [], actual.IntegrityTag ?? []);
        Assert.Equal(expected, actual);
    }
}
