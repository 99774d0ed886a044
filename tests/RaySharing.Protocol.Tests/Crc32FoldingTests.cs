using System.IO.Hashing;
using CsCheck;
using RaySharing.Wire;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>
/// The folding CRC-32 gives System.IO.Hashing's Crc32 (zlib's crc32) for every length, alignment and way of cutting
/// the bytes into appended pieces, on the vector path and off it.
/// </summary>
public sealed class Crc32FoldingTests
{
    [Fact]
    public void Constants_DerivedHere_AreThePublishedOnesForCrc32()
    {
        // Folding by 512 and by 128 bits, as published for the ISO-HDLC polynomial (Intel's PCLMULQDQ CRC paper, zlib).
        Assert.Equal(0x1_5444_2BD4UL, Crc32Folding.Constant(512 + 32));
        Assert.Equal(0x1_C6E4_1596UL, Crc32Folding.Constant(512 - 32));
        Assert.Equal(0x1_7519_97D0UL, Crc32Folding.Constant(128 + 32));
        Assert.Equal(0x0_CCAA_009EUL, Crc32Folding.Constant(128 - 32));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Append_AnyLengthOffsetAndSplit_EqualsCrc32OfTheWhole(bool vectorized)
    {
        Gen.Byte.Array[0, 3000].SelectMany(bytes => Gen.Int[0, bytes.Length].SelectMany(offset => Gen.Int[offset, bytes.Length].Select(split => (bytes, offset, split))))
            .Sample(t =>
            {
                var (bytes, offset, split) = t;
                var whole = bytes.AsSpan(offset);
                var first = Crc32Folding.Append(0, bytes.AsSpan(offset, split - offset), vectorized);

                Assert.Equal(Crc32.HashToUInt32(whole), Crc32Folding.Append(first, bytes.AsSpan(split), vectorized));
                Assert.Equal(Crc32.HashToUInt32(whole), Crc32Folding.Append(0, whole, vectorized));
            }, iter: 2000);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(255)]
    [InlineData(256)]
    [InlineData(257)]
    [InlineData(271)]
    [InlineData(319)]
    [InlineData(320)]
    [InlineData((1 << 20) + 13)]
    [InlineData((16 << 20) + 100)]
    public void Append_BlockBoundaries_EqualsCrc32(int size)
    {
        var bytes = new byte[size + 1];
        new Random(size).NextBytes(bytes);
        foreach (var offset in new[] { 0, 1 })
        {
            var span = bytes.AsSpan(offset, size);
            Assert.Equal(Crc32.HashToUInt32(span), Checksums.Of(span));
            var running = new RunningCrc32();
            running.Append(span[..(size / 2)]);
            running.Append(span[(size / 2)..]);
            Assert.Equal(Crc32.HashToUInt32(span), running.Current);
        }
    }
}
