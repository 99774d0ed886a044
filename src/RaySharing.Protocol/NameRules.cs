namespace RaySharing.Protocol;

/// <summary>
/// What a namespace, holder name or registry key may be: 1 to 1024 UTF-8 bytes of well-formed text,
/// the envelope's string limit, so every name a worker accepts fits in an envelope.
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

        return StrictUtf8.ByteCount(value) switch
        {
            null => $"The {what} is not well-formed text (it has a lone surrogate).",
            > MaxBytes and var bytes => $"The {what} is {bytes} UTF-8 bytes; at most {MaxBytes} are allowed.",
            _ => null,
        };
    }
}
