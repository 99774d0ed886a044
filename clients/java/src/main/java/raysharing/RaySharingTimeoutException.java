package raysharing;

/** {@code TIMEOUT}: A call or a stream did not complete within its deadline ({@link RaySharingSession.Options#callTimeout()}). Transient. */
public final class RaySharingTimeoutException extends RaySharingException {
    private static final long serialVersionUID = 1L;

    RaySharingTimeoutException(String message, Throwable cause, Trailers trailers) {
        super("TIMEOUT", message, cause, trailers);
    }
}
