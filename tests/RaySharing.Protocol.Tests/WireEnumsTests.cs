using RaySharing.Wire;
using Xunit;

namespace RaySharing.Protocol.Tests;

public sealed class WireEnumsTests
{
    // The numbers of protos/raysharing/v1/common.proto, as a generated enum would have them.
    public enum WireCodec
    {
        Unspecified = 0,
        Xlang = 1,
        Raw = 2,
        Arrow = 3,
    }

    public enum WireLifetime
    {
        Unspecified = 0,
        Detached = 1,
        Session = 2,
    }

    [Theory]
    [InlineData(ObjectCodec.Xlang, WireCodec.Xlang)]
    [InlineData(ObjectCodec.Raw, WireCodec.Raw)]
    [InlineData(ObjectCodec.Arrow, WireCodec.Arrow)]
    public void Codec_EveryDefinedCodec_RoundTripsThroughItsProtoNumber(ObjectCodec codec, WireCodec wire)
    {
        Assert.Equal(wire, WireEnums.CodecToWire<WireCodec>(codec));
        Assert.True(WireEnums.TryCodecFromWire(wire, out var back));
        Assert.Equal(codec, back);
    }

    [Theory]
    [InlineData(WireCodec.Unspecified)]
    [InlineData((WireCodec)4)]
    [InlineData((WireCodec)(-1))]
    public void TryCodecFromWire_UnspecifiedOrUnknown_IsFalse(WireCodec wire) =>
        Assert.False(WireEnums.TryCodecFromWire(wire, out _));

    [Fact]
    public void CodecToWire_UndefinedCodec_ThrowsArgumentOutOfRangeNamingIt()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => WireEnums.CodecToWire<WireCodec>((ObjectCodec)0));
        Assert.Equal("codec", ex.ParamName);
    }

    [Theory]
    [InlineData(WireLifetime.Unspecified, false)]
    [InlineData(WireLifetime.Detached, false)]
    [InlineData(WireLifetime.Session, true)]
    public void TryLifetimeFromWire_KnownNumbers_UnspecifiedMeansDetached(WireLifetime wire, bool session)
    {
        Assert.True(WireEnums.TryLifetimeFromWire(wire, out var isSession));
        Assert.Equal(session, isSession);
    }

    [Fact]
    public void Lifetime_Unknown_IsFalseAndKnownOnesRoundTrip()
    {
        Assert.False(WireEnums.TryLifetimeFromWire((WireLifetime)3, out _));
        Assert.Equal(WireLifetime.Session, WireEnums.LifetimeToWire<WireLifetime>(session: true));
        Assert.Equal(WireLifetime.Detached, WireEnums.LifetimeToWire<WireLifetime>(session: false));
    }

    [Fact]
    public void StrictUtf8ByteCount_WellFormedCounts_LoneSurrogateIsNull()
    {
        // In code, not [InlineData]: xunit's serialization of theory data would replace lone surrogates.
        Assert.Equal(4, StrictUtf8.ByteCount("name"));
        Assert.Equal(2, StrictUtf8.ByteCount("\u00e9"));
        Assert.Equal(4, StrictUtf8.ByteCount("\ud83d\ude00"));
        Assert.Null(StrictUtf8.ByteCount("\ud83d"));
        Assert.Null(StrictUtf8.ByteCount("a\ude00b"));
    }
}
