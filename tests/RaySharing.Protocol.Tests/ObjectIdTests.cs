using RaySharing.Wire;
using Xunit;

namespace RaySharing.Protocol.Tests;

public sealed class ObjectIdTests
{
    private const string Hex = "00112233445566778899aabbccddeeff";

    [Fact]
    public void Parse_LowercaseHex_FormatsBackToTheSameText()
    {
        var id = ObjectId.Parse(Hex);

        Assert.Equal(Hex, id.ToString());
    }

    [Fact]
    public void Parse_UppercaseHex_EqualsLowercase()
    {
        Assert.Equal(ObjectId.Parse(Hex), ObjectId.Parse(Hex.ToUpperInvariant()));
    }

    [Fact]
    public void ToByteArray_ParsedId_IsBigEndianInTextOrder()
    {
        var bytes = ObjectId.Parse(Hex).ToByteArray();

        Assert.Equal(Convert.FromHexString(Hex), bytes);
    }

    [Fact]
    public void FromBytes_SixteenBytes_RoundTripsThroughBytesAndText()
    {
        var bytes = new byte[ObjectId.Length];
        new Random(7).NextBytes(bytes);

        var id = ObjectId.FromBytes(bytes);
        var written = new byte[ObjectId.Length];
        id.WriteTo(written);

        Assert.Equal(bytes, id.ToByteArray());
        Assert.Equal(bytes, written);
        Assert.Equal(id, ObjectId.Parse(id.ToString()));
        Assert.Equal(Convert.ToHexString(bytes).ToLowerInvariant(), id.ToString());
    }

    [Fact]
    public void NewId_TwoCalls_AreDistinctAndNotEmpty()
    {
        var a = ObjectId.NewId();
        var b = ObjectId.NewId();

        Assert.NotEqual(a, b);
        Assert.False(a.IsEmpty);
        Assert.True(a != b);
    }

    [Fact]
    public void Empty_Default_IsAllZero()
    {
        Assert.True(ObjectId.Empty.IsEmpty);
        Assert.Equal(new string('0', 32), ObjectId.Empty.ToString());
        Assert.Equal(ObjectId.Empty, ObjectId.FromBytes(new byte[16]));
        Assert.Equal(default, ObjectId.Empty);
    }

    [Fact]
    public void Equality_SameBytes_SameHashCode()
    {
        var a = ObjectId.Parse(Hex);
        var b = ObjectId.FromBytes(Convert.FromHexString(Hex));

        Assert.True(a == b);
        Assert.True(a.Equals((object)b));
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.False(a.Equals("not an id"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("00112233445566778899aabbccddeef")]
    [InlineData("00112233445566778899aabbccddeeff0")]
    [InlineData("00112233445566778899aabbccddeeff00")]
    [InlineData("00112233445566778899aabbccddeegg")]
    [InlineData("00112233-4455-6677-8899-aabbccddeeff")]
    [InlineData(" 0112233445566778899aabbccddeeff")]
    public void Parse_NotThirtyTwoHexCharacters_ThrowsFormatException(string text)
    {
        Assert.ThrowsAny<FormatException>(() => ObjectId.Parse(text));
    }

    [Fact]
    public void Parse_Null_ThrowsArgumentNullException()
    {
        Assert.Throws<ArgumentNullException>(() => ObjectId.Parse(null!));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(17)]
    [InlineData(32)]
    public void FromBytes_WrongLength_ThrowsArgumentException(int length)
    {
        var ex = Assert.Throws<ArgumentException>(() => ObjectId.FromBytes(new byte[length]));

        Assert.Equal("bytes", ex.ParamName);
    }

    [Theory]
    [InlineData(0, false)]
    [InlineData(15, false)]
    [InlineData(16, true)]
    [InlineData(17, false)]
    public void TryFromBytes_Length_SucceedsOnlyForSixteen(int length, bool expected)
    {
        var ok = ObjectId.TryFromBytes(new byte[length], out var id);

        Assert.Equal(expected, ok);
        Assert.True(id.IsEmpty);
    }
}
