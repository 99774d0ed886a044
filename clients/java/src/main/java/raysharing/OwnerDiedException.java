package raysharing;

/** {@code OWNER_DIED}: The owner of an object (a holder, or the session that put it) is dead, and its objects were freed with it (fate-sharing); also a call pinned to a holder incarnation that is no longer alive. Put the data again under a live owner. {@link #holderNamespace()}, {@link #holderName()} and {@link #incarnation()} name the dead owner. */
public final class OwnerDiedException extends RaySharingException {
    private static final long serialVersionUID = 1L;

    OwnerDiedException(String message, Throwable cause, Trailers trailers) {
        super("OWNER_DIED", message, cause, trailers);
    }
}
