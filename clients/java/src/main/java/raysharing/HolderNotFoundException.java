package raysharing;

/** {@code HOLDER_NOT_FOUND}: No live holder has this namespace and name ({@link #holderNamespace()}, {@link #holderName()}). Create it with {@link RaySharingSession#getOrCreateHolder(String)}. */
public final class HolderNotFoundException extends RaySharingException {
    private static final long serialVersionUID = 1L;

    HolderNotFoundException(String message, Throwable cause, Trailers trailers) {
        super("HOLDER_NOT_FOUND", message, cause, trailers);
    }
}
