namespace RaySharing.Wire;

/// <summary>
/// What a namespace, holder name or registry key may be (protos/raysharing/v1/common.proto, "Names"):
/// 1 to 1024 UTF-8 bytes (the envelope's string limit, so every name a worker accepts fits in an
/// envelope) of well-formed text with no control character (U+0000–U+001F, U+007F–U+009F), and not only
/// white space. Names are compared byte for byte: no trimming, no case folding, no Unicode normalization.
/// </summary>
internal static class NameRules
{
    public const int MaxBytes = EnvelopeCodec.MaxStringBytes;

    /// <summary>Why <paramref name="value"/> is not a valid name, or null when it is.</summary>
    public static string? Problem(string? value, string what)
    {
        if (string.IsNullOrEmpty(value))
        {
            return $"The {what} must not be empty.";
        }

        var blank = true;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsControl(c))
            {
                // Control characters forge log lines and hide in listings; no name needs one.
                return $"The {what} contains the control character U+{(int)c:X4} at index {i}; names are text without control characters.";
            }

            blank &= char.IsWhiteSpace(c);
        }

        if (blank)
        {
            return $"The {what} is only white space; give it a visible name.";
        }

        return StrictUtf8.ByteCount(value) switch
        {
            null => $"The {what} is not well-formed text (it has a lone surrogate).",
            > MaxBytes and var bytes => $"The {what} is {bytes} UTF-8 bytes; at most {MaxBytes} are allowed.",
            _ => null,
        };
    }
}
