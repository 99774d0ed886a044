using System.Buffers;
using System.Text;
using Xunit;

namespace RaySharing.Protocol.Tests;

public sealed class ChecksumsTests
{
    // The standard check value of CRC-32/ISO-HDLC: zlib.crc32(b"123456789") == 0xCBF43926.
    private const uint CheckValue = 0xCBF43926;
    private static readonly byte[] CheckInput = Encoding.ASCII.GetBytes("123456789");

    [Fact]
    public void Compute_Span123456789_IsTheCrc32CheckValue()
    {
        Assert.Equal(CheckValue, Checksums.Compute(CheckInput));
    }

    [Fact]
    public void Compute_Empty_IsZero()
    {
        Assert.Equal(0u, Checksums.Compute(ReadOnlySpan<byte>.Empty));
        Assert.Equal(0u, Checksums.Compute(ReadOnlySequence<byte>.Empty));
    }

    [Fact]
    public void Compute_SingleSegmentSequence_EqualsSpan()
    {
        Assert.Equal(CheckValue, Checksums.Compute(new ReadOnlySequence<byte>(CheckInput)));
    }

    [Theory]
    [InlineData(new[] { 1, 8 })]
    [InlineData(new[] { 4, 5 })]
    [InlineData(new[] { 2, 0, 3, 4 })]
    [InlineData(new[] { 1, 1, 1, 1, 1, 1, 1, 1, 1 })]
    public void Compute_MultiSegmentSequence_EqualsCheckValue(int[] segmentLengths)
    {
        var sequence = Split(CheckInput, segmentLengths);
        Assert.False(sequence.IsSingleSegment);

        Assert.Equal(CheckValue, Checksums.Compute(sequence));
    }

    [Fact]
    public void Compute_LargeMultiSegmentSequence_EqualsSpan()
    {
        var data = new byte[1 << 20];
        new Random(11).NextBytes(data);

        var sequence = Split(data, [1, 65536, 3, 400000, 7]);

        Assert.Equal(Checksums.Compute(data), Checksums.Compute(sequence));
    }

    /// <summary>Splits <paramref name="data"/> into segments of the given lengths, the rest in a last segment.</summary>
    private static ReadOnlySequence<byte> Split(byte[] data, int[] lengths)
    {
        var offset = 0;
        Segment? first = null;
        Segment? last = null;
        foreach (var length in lengths.Append(data.Length - lengths.Sum()))
        {
            var segment = new Segment(data.AsMemory(offset, length));
            offset += length;
            if (first is null)
            {
                first = segment;
            }
            else
            {
                last!.Append(segment);
            }

            last = segment;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public void Append(Segment next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
        }
    }
}
