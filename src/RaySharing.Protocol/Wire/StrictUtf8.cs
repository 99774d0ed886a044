using System.Text;

namespace RaySharing.Wire;

/// <summary>
/// UTF-8 that refuses what it cannot represent (invalid bytes when decoding, lone surrogates when
/// encoding) instead of substituting U+FFFD: two different inputs must never become one name.
/// </summary>
internal static class StrictUtf8
{
    public static readonly UTF8Encoding Encoding = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The UTF-8 length of <paramref name="value"/>; null when it has a lone surrogate, and so no UTF-8 form.</summary>
    public static int? ByteCount(string value)
    {
        try
        {
            return Encoding.GetByteCount(value);
        }
        catch (EncoderFallbackException)
        {
            return null;
        }
    }
}
