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

    private static ReadOnlySequence<byte> SequenceOf(params ReadOnlyMemory<byte>[] blocks) => Sequences.Of(blocks);
}
