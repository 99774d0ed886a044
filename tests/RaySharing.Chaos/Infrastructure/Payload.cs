using System.Globalization;
using System.IO.Hashing;

namespace RaySharing.Chaos.Infrastructure;

/// <summary>The bytes the harness and its children put: random, reproducible from a seed, told apart by CRC-32.</summary>
internal static class Payload
{
    public static byte[] Build(int size, int seed)
    {
        var bytes = GC.AllocateUninitializedArray<byte>(size);
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static uint Crc(ReadOnlySpan<byte> bytes) => Crc32.HashToUInt32(bytes);

    public static string Hex(uint crc) => crc.ToString("x8", CultureInfo.InvariantCulture);

    public static uint ParseHex(string text) => uint.Parse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
}
