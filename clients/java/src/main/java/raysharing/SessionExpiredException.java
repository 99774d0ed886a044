package raysharing;

/** {@code SESSION_EXPIRED}: The session has ended (closed, or its lease lapsed because it was not renewed in time). Open a new session. */
public final class SessionExpiredException extends RaySharingException {
    private static final long serialVersionUID = 1L;

    SessionExpiredException(String message, Throwable cause, Trailers trailers) {
        super("SESSION_EXPIRED", message, cause, trailers);
    }
}
