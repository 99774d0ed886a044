namespace RaySharing;

/// <summary>A worker instance's id; a worker restarted on the same address has a new one. A type of its own, so it is never mistaken for an <see cref="ObjectId"/> or another kind of id.</summary>
public readonly struct WorkerId : IEquatable<WorkerId>
{
    internal WorkerId(ObjectId value) => Value = value;

    /// <summary>The 16 bytes of the id, as the wire carries them.</summary>
    internal ObjectId Value { get; }

    /// <summary>Parses the 32-character hexadecimal form produced by <see cref="ToString"/>.</summary>
    /// <exception cref="FormatException"><paramref name="hex"/> is not 32 hexadecimal characters.</exception>
    public static WorkerId Parse(string hex) => new(ObjectId.Parse(hex));

    /// <summary>The 16 bytes of the id.</summary>
    public byte[] ToByteArray() => Value.ToByteArray();

    /// <inheritdoc/>
    public bool Equals(WorkerId other) => Value == other.Value;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is WorkerId other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => Value.GetHashCode();

    /// <summary>The id as 32 lowercase hexadecimal characters.</summary>
    public override string ToString() => Value.ToString();

    /// <summary>Compares two ids.</summary>
    public static bool operator ==(WorkerId left, WorkerId right) => left.Equals(right);

    /// <summary>Compares two ids.</summary>
    public static bool operator !=(WorkerId left, WorkerId right) => !left.Equals(right);
}
