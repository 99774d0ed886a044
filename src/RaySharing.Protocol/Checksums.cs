using System.Buffers;
using System.IO.Hashing;

namespace RaySharing.Protocol;

/// <summary>The object checksum: CRC-32 (ISO-HDLC), the same value as Python's <c>zlib.crc32</c>.</summary>
internal static class Checksums
{
    /// <summary>The checksum of a span.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(data);

    /// <summary>The checksum of a sequence.</summary>
    public static uint Compute(in ReadOnlySequence<byte> data)
    {
        if (data.IsSingleSegment)
        {
            return Crc32.HashToUInt32(data.FirstSpan);
        }

        var crc = new Crc32();
        foreach (var segment in data)
        {
            crc.Append(segment.Span);
        }

        return crc.GetCurrentHashAsUInt32();
    }
}
