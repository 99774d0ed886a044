namespace RaySharing.Wire;

/// <summary>Bytes that were to be a ref envelope are not one: truncated, garbage, or an unknown version.</summary>
internal sealed class EnvelopeFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public EnvelopeFormatException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
