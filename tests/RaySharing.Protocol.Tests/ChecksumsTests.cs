using System.Buffers;
using System.IO.Hashing;
using CsCheck;
using RaySharing.Wire;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>The multi-core CRC-32 gives exactly zlib's crc32 of the whole, however the bytes are cut.</summary>
public sealed class ChecksumsTests
{
    [Fact]
    public void Combine_AnySplit_EqualsTheChecksumOfTheWhole()
    {
        Gen.Byte.Array[0, 5000].SelectMany(bytes => Gen.Int[0, bytes.Length].Select(split => (bytes, split))).Sample(t =>
        {
            var (bytes, split) = t;
            var first = Crc32.HashToUInt32(bytes.AsSpan(0, split));
            var second = Crc32.HashToUInt32(bytes.AsSpan(split));
            Assert.Equal(Crc32.HashToUInt32(bytes), Checksums.Combine(first, second, bytes.Length - split));
        });
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData((16 << 20) - 1)]
    [InlineData((64 << 20) + 13)]
    public void Compute_SeveralCoresAndSegments_EqualsOneCore(int size)
    {
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        var third = size / 3;
        var segmented = SequenceOf(bytes.AsMemory(0, third), bytes.AsMemory(third, third), bytes.AsMemory(2 * third));

        Assert.Equal(Crc32.HashToUInt32(bytes), Checksums.Compute(new ReadOnlySequence<byte>(bytes)));
        Assert.Equal(Crc32.HashToUInt32(bytes), Checksums.Compute(segmented, maxCores: 4));
        Assert.Equal(Crc32.HashToUInt32(bytes), Checksums.Compute(segmented, maxCores: 1));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData((64 << 10) - 1)]
    [InlineData(64 << 10)]
    [InlineData((64 << 10) + 1)]
    [InlineData((1 << 20) + 13)]
    public void CopyAndAppend_AcrossPieces_CopiesEveryByteAndEqualsCrc32(int size)
    {
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        var destination = new byte[size + 7];
        var prefix = "before"u8;

        var crc = Checksums.CopyAndAppend(Checksums.Of(prefix), bytes, destination.AsSpan(7));

        Assert.Equal(Crc32.HashToUInt32([.. prefix, .. bytes]), crc);
        Assert.True(bytes.AsSpan().SequenceEqual(destination.AsSpan(7)));
        Assert.All(destination[..7], b => Assert.Equal(0, b));
    }

    [Fact]
    public void CopyAndAppend_DestinationTooShort_ThrowsAndCopiesNothing()
    {
        var destination = new byte[9];

        var error = Assert.Throws<ArgumentException>(() => Checksums.CopyAndAppend(0, new byte[10], destination));

        Assert.Contains("fewer than the 10", error.Message);
        Assert.All(destination, b => Assert.Equal(0, b));
    }

    private static ReadOnlySequence<byte> SequenceOf(params ReadOnlyMemory<byte>[] blocks) => Sequences.Of(blocks);
}
