using System.Buffers;
using System.IO.Hashing;

namespace RaySharing.Wire;

/// <summary>
/// CRC-32 (ISO-HDLC, as zlib's crc32) of large objects on several cores: the bytes are cut into parts whose
/// checksums are computed at once and then combined, as zlib's crc32_combine does. A core checks about
/// 10 GB/s, so below a few MiB one core is faster than starting others.
/// </summary>
internal static class Checksums
{
    /// <summary>Parts smaller than this are not worth another core.</summary>
    private const long MinPartBytes = 16 << 20;

    private const uint Polynomial = 0xEDB88320;

    // x^(2^n) modulo the polynomial, for n = 0..31: what combining needs to shift a checksum by any length.
    private static readonly uint[] PowersOfX = BuildPowers();

    /// <summary>The CRC-32 of <paramref name="bytes"/>, on up to <paramref name="maxCores"/> cores.</summary>
    public static uint Compute(ReadOnlySequence<byte> bytes, int maxCores = 4)
    {
        var parts = (int)Math.Clamp(bytes.Length / MinPartBytes, 1, Math.Min(maxCores, Environment.ProcessorCount));
        if (parts == 1)
        {
            return Sequential(bytes);
        }

        var partBytes = bytes.Length / parts;
        var checksums = new uint[parts];
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
        {
            var start = part * partBytes;
            var length = part == parts - 1 ? bytes.Length - start : partBytes;
            checksums[part] = Sequential(bytes.Slice(start, length));
        });

        var crc = checksums[0];
        for (var part = 1; part < parts; part++)
        {
            var length = part == parts - 1 ? bytes.Length - (part * partBytes) : partBytes;
            crc = Combine(crc, checksums[part], length);
        }

        return crc;
    }

    /// <summary>The CRC-32 of A followed by B, from the CRC-32 of A, that of B and B's length.</summary>
    public static uint Combine(uint first, uint second, long secondLength) =>
        Multiply(PowerOfX(secondLength, 3), first) ^ second;

    private static uint Sequential(ReadOnlySequence<byte> bytes)
    {
        if (bytes.IsSingleSegment)
        {
            return Crc32.HashToUInt32(bytes.FirstSpan);
        }

        var crc = new Crc32();
        foreach (var segment in bytes)
        {
            crc.Append(segment.Span);
        }

        return crc.GetCurrentHashAsUInt32();
    }

    /// <summary>a * b modulo the polynomial, in the bit-reflected order CRC-32 uses.</summary>
    private static uint Multiply(uint a, uint b)
    {
        var m = 1u << 31;
        var product = 0u;
        while (true)
        {
            if ((a & m) != 0)
            {
                product ^= b;
                if ((a & (m - 1)) == 0)
                {
                    return product;
                }
            }

            m >>= 1;
            b = (b & 1) != 0 ? (b >> 1) ^ Polynomial : b >> 1;
        }
    }

    /// <summary>x^(n * 2^k) modulo the polynomial.</summary>
    private static uint PowerOfX(long n, int k)
    {
        var p = 1u << 31;
        while (n != 0)
        {
            if ((n & 1) != 0)
            {
                p = Multiply(PowersOfX[k & 31], p);
            }

            n >>= 1;
            k++;
        }

        return p;
    }

    private static uint[] BuildPowers()
    {
        var powers = new uint[32];
        var p = 1u << 30;
        powers[0] = p;
        for (var n = 1; n < 32; n++)
        {
            powers[n] = p = Multiply(p, p);
        }

        return powers;
    }
}
