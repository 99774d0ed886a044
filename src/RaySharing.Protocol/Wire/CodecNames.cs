namespace RaySharing.Wire;

/// <summary>The wire names of codecs, as written in envelopes: <c>XLANG</c>, <c>RAW</c>, <c>ARROW</c>.</summary>
internal static class CodecNames
{
    /// <summary>The name of <see cref="ObjectCodec.Xlang"/>.</summary>
    public const string Xlang = "XLANG";

    /// <summary>The name of <see cref="ObjectCodec.Raw"/>.</summary>
    public const string Raw = "RAW";

    /// <summary>The name of <see cref="ObjectCodec.Arrow"/>.</summary>
    public const string Arrow = "ARROW";

    /// <summary>The wire name of a codec.</summary>
    public static string ToName(ObjectCodec codec) => codec switch
    {
        ObjectCodec.Xlang => Xlang,
        ObjectCodec.Raw => Raw,
        ObjectCodec.Arrow => Arrow,
        _ => throw new ArgumentOutOfRangeException(nameof(codec), codec, "Unknown codec."),
    };

    /// <summary>Parses a wire name; false for unknown names.</summary>
    public static bool TryParse(string name, out ObjectCodec codec)
    {
        codec = name switch
        {
            Xlang => ObjectCodec.Xlang,
            Raw => ObjectCodec.Raw,
            Arrow => ObjectCodec.Arrow,
            _ => 0,
        };
        return codec != 0;
    }
}
