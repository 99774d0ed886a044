using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace RaySharing.Wire;

/// <summary>
/// CRC-32 (ISO-HDLC: zlib's crc32, System.IO.Hashing's Crc32) by carry-less multiplication folding, four 512-bit
/// accumulators at a time where the CPU has VPCLMULQDQ on 512-bit vectors; elsewhere System.IO.Hashing's.
/// Folding keeps a 128-bit lane congruent, modulo the polynomial, to all bytes seen so far: a lane of the bytes at
/// some position moves D bits on by multiplying its first 64 bits by x^(D+32) and its last 64 by x^(D-32) (both
/// reduced modulo the polynomial, bit-reflected and shifted left one, as the reflected order needs), so each
/// step is two multiplications and an XOR per 16 bytes, independent across lanes. The last lane and the bytes
/// that do not fill one are finished a byte at a time.
/// </summary>
internal static unsafe class Crc32Folding
{
    /// <summary>Below this a byte-wise loop costs less than setting up the vectors.</summary>
    private const int MinVectorBytes = 256;

    private const uint Reflected = 0xEDB88320;

    private static readonly uint[] Table = BuildTable();

    private static readonly Vector512<ulong> Fold2048 = Constants512(2048);
    private static readonly Vector512<ulong> Fold1536 = Constants512(1536);
    private static readonly Vector512<ulong> Fold1024 = Constants512(1024);
    private static readonly Vector512<ulong> Fold512 = Constants512(512);
    private static readonly Vector128<ulong> Fold384 = Constants128(384);
    private static readonly Vector128<ulong> Fold256 = Constants128(256);
    private static readonly Vector128<ulong> Fold128 = Constants128(128);

    /// <summary>True where the 512-bit folding runs; otherwise <see cref="Append(uint, ReadOnlySpan{byte})"/> takes System.IO.Hashing's path.</summary>
    public static bool IsVectorized => Pclmulqdq.V512.IsSupported && Avx512F.IsSupported && Pclmulqdq.IsSupported;

    /// <summary>
    /// The CRC-32 of the bytes whose CRC-32 is <paramref name="crc"/> followed by <paramref name="data"/>
    /// (0 is the CRC-32 of no bytes, so <c>Append(0, data)</c> is the checksum of <paramref name="data"/>).
    /// </summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data) => Append(crc, data, IsVectorized);

    /// <summary><see cref="Append(uint, ReadOnlySpan{byte})"/>, with the vector path allowed or not (tests take both).</summary>
    internal static uint Append(uint crc, ReadOnlySpan<byte> data, bool vectorized)
    {
        vectorized &= IsVectorized;
        var register = ~crc;
        fixed (byte* start = data)
        {
            var p = start;
            var length = (nuint)data.Length;
            if (length >= MinVectorBytes && vectorized)
            {
                var folded = length & ~(nuint)15;
                var lane = Fold(register, p, folded);
                register = Bytewise(0, (byte*)&lane, 16);
                p += folded;
                length -= folded;
            }
            else if (length >= MinVectorBytes)
            {
                return Checksums.Combine(crc, System.IO.Hashing.Crc32.HashToUInt32(data), data.Length);
            }

            register = Bytewise(register, p, length);
        }

        return ~register;
    }

    /// <summary>x^n modulo the polynomial, bit-reflected, shifted left one: a folding constant for the reflected order.</summary>
    internal static ulong Constant(int n)
    {
        // x^n mod P in the plain (not reflected) order, P = x^32 + 0x04C11DB7.
        ulong v = 1;
        for (var i = 0; i < n; i++)
        {
            v <<= 1;
            if ((v & (1UL << 32)) != 0)
            {
                v ^= 0x1_04C1_1DB7UL;
            }
        }

        return (ulong)ReverseBits((uint)v) << 1;
    }

    /// <summary>
    /// Folds <paramref name="length"/> bytes (a multiple of 16, at least 256) with <paramref name="register"/>
    /// XORed into the first four, down to one 128-bit lane congruent to them all.
    /// </summary>
    private static Vector128<ulong> Fold(uint register, byte* p, nuint length)
    {
        var x0 = Vector512.Load(p).AsUInt64() ^ Vector512.CreateScalar((ulong)register);
        var x1 = Vector512.Load(p + 64).AsUInt64();
        var x2 = Vector512.Load(p + 128).AsUInt64();
        var x3 = Vector512.Load(p + 192).AsUInt64();
        p += 256;
        length -= 256;
        var k = Fold2048;
        while (length >= 256)
        {
            x0 = Fold(x0, k) ^ Vector512.Load(p).AsUInt64();
            x1 = Fold(x1, k) ^ Vector512.Load(p + 64).AsUInt64();
            x2 = Fold(x2, k) ^ Vector512.Load(p + 128).AsUInt64();
            x3 = Fold(x3, k) ^ Vector512.Load(p + 192).AsUInt64();
            p += 256;
            length -= 256;
        }

        var x = Fold(x0, Fold1536) ^ Fold(x1, Fold1024) ^ Fold(x2, Fold512) ^ x3;
        while (length >= 64)
        {
            x = Fold(x, Fold512) ^ Vector512.Load(p).AsUInt64();
            p += 64;
            length -= 64;
        }

        var y = Fold(x.GetLower().GetLower(), Fold384) ^ Fold(x.GetLower().GetUpper(), Fold256)
            ^ Fold(x.GetUpper().GetLower(), Fold128) ^ x.GetUpper().GetUpper();
        while (length >= 16)
        {
            y = Fold(y, Fold128) ^ Vector128.Load(p).AsUInt64();
            p += 16;
            length -= 16;
        }

        return y;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Fold(Vector512<ulong> x, Vector512<ulong> k) =>
        Pclmulqdq.V512.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.V512.CarrylessMultiply(x, k, 0x11);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Fold(Vector128<ulong> x, Vector128<ulong> k) =>
        Pclmulqdq.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.CarrylessMultiply(x, k, 0x11);

    private static uint Bytewise(uint register, byte* p, nuint length)
    {
        var table = Table;
        for (nuint i = 0; i < length; i++)
        {
            register = table[(byte)(register ^ p[i])] ^ (register >> 8);
        }

        return register;
    }

    // The first 64 bits of a lane are the earlier, higher-degree ones: they move by x^(D+32), the rest by x^(D-32).
    private static Vector128<ulong> Constants128(int distance) => Vector128.Create(Constant(distance + 32), Constant(distance - 32));

    private static Vector512<ulong> Constants512(int distance)
    {
        var lane = Constants128(distance);
        return Vector512.Create(Vector256.Create(lane, lane), Vector256.Create(lane, lane));
    }

    private static uint ReverseBits(uint v)
    {
        uint r = 0;
        for (var i = 0; i < 32; i++)
        {
            r = (r << 1) | ((v >> i) & 1);
        }

        return r;
    }

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? (c >> 1) ^ Reflected : c >> 1;
            }

            table[n] = c;
        }

        return table;
    }
}
