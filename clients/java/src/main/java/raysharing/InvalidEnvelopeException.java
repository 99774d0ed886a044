package raysharing;

/**
 * {@code INVALID_ENVELOPE}: bytes that were to be a ref envelope are not one (protos/ENVELOPE.md, "Rules for readers"),
 * an envelope's fields break the format's rules so that it cannot be written, or the worker found that an envelope
 * does not match the object it stores under that id. The message says which rule was broken.
 */
public final class InvalidEnvelopeException extends RaySharingException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception a decoder or encoder throws.
     *
     * @param message which rule the envelope breaks
     */
    public InvalidEnvelopeException(String message) {
        super("INVALID_ENVELOPE", message, null);
    }

    InvalidEnvelopeException(String message, Throwable cause, Trailers trailers) {
        super("INVALID_ENVELOPE", message, cause, trailers);
    }
}
