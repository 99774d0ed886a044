package raysharing;

/** {@code UNAVAILABLE}: The worker could not be reached: nothing listening, connection refused or lost. Transient. */
public final class WorkerUnavailableException extends RaySharingException {
    private static final long serialVersionUID = 1L;

    WorkerUnavailableException(String message, Throwable cause, Trailers trailers) {
        super("UNAVAILABLE", message, cause, trailers);
    }
}
