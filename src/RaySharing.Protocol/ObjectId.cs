using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;

namespace RaySharing;

/// <summary>
/// The 16-byte identifier of an object, a session, a holder incarnation or a worker instance.
/// Fresh ids are random, so an id never names two things, even across worker restarts.
/// </summary>
public readonly struct ObjectId : IEquatable<ObjectId>
{
    /// <summary>The length of an id on the wire, in bytes.</summary>
    public const int Length = 16;

    private readonly ulong _high;
    private readonly ulong _low;

    private ObjectId(ulong high, ulong low)
    {
        _high = high;
        _low = low;
    }

    /// <summary>The all-zero id, which never names anything.</summary>
    public static ObjectId Empty => default;

    /// <summary>True for <see cref="Empty"/>.</summary>
    public bool IsEmpty => _high == 0 && _low == 0;

    /// <summary>Creates a new random id.</summary>
    public static ObjectId NewId()
    {
        Span<byte> bytes = stackalloc byte[Length];
        RandomNumberGenerator.Fill(bytes);
        return FromBytes(bytes);
    }

    /// <summary>An id from its two 64-bit halves (the first and last eight bytes, big-endian).</summary>
    public static ObjectId FromHalves(ulong high, ulong low) => new(high, low);

    /// <summary>Parses 32 hexadecimal characters without allocating; false when they are not.</summary>
    public static bool TryParse(ReadOnlySpan<char> hex, out ObjectId id)
    {
        Span<byte> bytes = stackalloc byte[Length];
        if (hex.Length != Length * 2 || Convert.FromHexString(hex, bytes, out _, out var written) != System.Buffers.OperationStatus.Done || written != Length)
        {
            id = default;
            return false;
        }

        id = FromBytes(bytes);
        return true;
    }

    /// <summary>Reads an id from exactly 16 bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="bytes"/> is not 16 bytes long.</exception>
    public static ObjectId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Length)
        {
            throw new ArgumentException($"An id is {Length} bytes; got {bytes.Length}.", nameof(bytes));
        }

        return new ObjectId(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
    }

    /// <summary>Reads an id from exactly 16 bytes; false when the length is wrong.</summary>
    public static bool TryFromBytes(ReadOnlySpan<byte> bytes, out ObjectId id)
    {
        if (bytes.Length != Length)
        {
            id = default;
            return false;
        }

        id = FromBytes(bytes);
        return true;
    }

    /// <summary>Parses the 32-character hexadecimal form produced by <see cref="ToString"/>.</summary>
    /// <exception cref="FormatException"><paramref name="hex"/> is not 32 hexadecimal characters.</exception>
    public static ObjectId Parse(string hex)
    {
        ArgumentNullException.ThrowIfNull(hex);
        if (hex.Length != Length * 2)
        {
            throw new FormatException($"An id is {Length * 2} hexadecimal characters; got '{hex}'.");
        }

        return FromBytes(Convert.FromHexString(hex));
    }

    /// <summary>Writes the id into <paramref name="destination"/>, which must hold 16 bytes.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _high);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _low);
    }

    /// <summary>Returns the 16 bytes of the id.</summary>
    public byte[] ToByteArray()
    {
        var bytes = new byte[Length];
        WriteTo(bytes);
        return bytes;
    }

    /// <inheritdoc/>
    public bool Equals(ObjectId other) => _high == other._high && _low == other._low;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ObjectId other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_high, _low);

    /// <summary>The id as 32 lowercase hexadecimal characters.</summary>
    public override string ToString() =>
        _high.ToString("x16", CultureInfo.InvariantCulture) + _low.ToString("x16", CultureInfo.InvariantCulture);

    /// <summary>Compares two ids.</summary>
    public static bool operator ==(ObjectId left, ObjectId right) => left.Equals(right);

    /// <summary>Compares two ids.</summary>
    public static bool operator !=(ObjectId left, ObjectId right) => !left.Equals(right);
}
