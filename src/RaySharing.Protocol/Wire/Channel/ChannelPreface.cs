namespace RaySharing.Wire.Channel;

/// <summary>
/// The 8 bytes each side sends first (protos/CHANNEL.md, "Preface"): ASCII <c>RSCH</c>, the version as a
/// byte, three zero bytes.
/// </summary>
internal static class ChannelPreface
{
    /// <summary>The preface's size in bytes.</summary>
    public const int Size = 8;

    /// <summary>The channel version this code speaks.</summary>
    public const byte Version = 1;

    private static ReadOnlySpan<byte> Magic => "RSCH"u8;

    /// <summary>Writes the preface of <paramref name="version"/> into the first <see cref="Size"/> bytes.</summary>
    public static void Write(Span<byte> destination, byte version = Version)
    {
        if (destination.Length < Size)
        {
            throw new ArgumentException($"A channel preface needs {Size} bytes; {destination.Length} given.", nameof(destination));
        }

        Magic.CopyTo(destination);
        destination[4] = version;
        destination[5] = 0;
        destination[6] = 0;
        destination[7] = 0;
    }

    /// <summary>The preface of this version, as a new array.</summary>
    public static byte[] Create(byte version = Version)
    {
        var bytes = new byte[Size];
        Write(bytes, version);
        return bytes;
    }

    /// <summary>
    /// Reads a peer's preface and returns the version it announces. The version is not checked here: a
    /// server answers an unknown version with its own preface and an error frame (the client learns which
    /// version to speak).
    /// </summary>
    /// <exception cref="ChannelProtocolException">Fewer than 8 bytes, not <c>RSCH</c>, or nonzero padding.</exception>
    public static byte Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size)
        {
            throw new ChannelProtocolException($"The channel preface has {source.Length} bytes; it has {Size}.");
        }

        if (!source[..4].SequenceEqual(Magic))
        {
            throw new ChannelProtocolException($"The peer did not open with the channel preface (RSCH) but with 0x{Convert.ToHexString(source[..Size])}; it does not speak the RaySharing channel.");
        }

        if (source[5] != 0 || source[6] != 0 || source[7] != 0)
        {
            throw new ChannelProtocolException($"The channel preface has nonzero padding (0x{Convert.ToHexString(source[..Size])}).");
        }

        return source[4];
    }
}
