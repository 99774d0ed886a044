package raysharing;

import java.util.Set;

/**
 * A RaySharing call failed. {@link #reason()} is the machine-readable reason of protos/ERRORS.md ({@code OWNER_DIED},
 * {@code HOLDER_NOT_FOUND}, ...): branch on it, or on the subclass, never on the message, which is for humans.
 * Reasons this client has no subclass for (and reasons added by later workers) arrive as this class itself.
 */
public class RaySharingException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private static final Set<String> TRANSIENT = Set.of("STORE_FULL", "CHECKSUM_MISMATCH", "UNAVAILABLE", "TIMEOUT");

    /** The reason string. */
    private final String reason;
    /** The rs-object-id trailer, or null. */
    private final String objectId;
    /** The rs-holder-namespace trailer, decoded, or null. */
    private final String holderNamespace;
    /** The rs-holder-name trailer, decoded, or null. */
    private final String holderName;
    /** The rs-incarnation trailer, or null. */
    private final String incarnation;

    /**
     * Creates an exception with a reason and a message.
     *
     * @param reason the reason string of protos/ERRORS.md
     * @param message what happened, to what, and what to do
     * @param cause the gRPC failure or local error behind it; may be null
     */
    public RaySharingException(String reason, String message, Throwable cause) {
        this(reason, message, cause, Trailers.NONE);
    }

    RaySharingException(String reason, String message, Throwable cause, Trailers trailers) {
        super(message, cause);
        this.reason = reason;
        this.objectId = trailers.objectId();
        this.holderNamespace = trailers.holderNamespace();
        this.holderName = trailers.holderName();
        this.incarnation = trailers.incarnation();
    }

    /** @return the reason string, such as {@code OWNER_DIED}; never null. */
    public String reason() {
        return reason;
    }

    /** @return true when trying again later may succeed: {@code STORE_FULL}, {@code CHECKSUM_MISMATCH}, {@code UNAVAILABLE}, {@code TIMEOUT}. */
    public boolean isTransient() {
        return TRANSIENT.contains(reason);
    }

    /** @return the object the failure is about (32 lowercase hex characters, the {@code rs-object-id} trailer), or null. */
    public String objectId() {
        return objectId;
    }

    /** @return the holder's (or owning session's) namespace from the {@code rs-holder-namespace} trailer, decoded, or null. */
    public String holderNamespace() {
        return holderNamespace;
    }

    /** @return the holder's name from the {@code rs-holder-name} trailer, decoded, or null (also when the owner is a session). */
    public String holderName() {
        return holderName;
    }

    /** @return the holder's incarnation or owning session's id (32 hex characters, the {@code rs-incarnation} trailer), or null. */
    public String incarnation() {
        return incarnation;
    }

    /** The context a worker sends in error trailers, already percent-decoded. */
    record Trailers(String objectId, String holderNamespace, String holderName, String incarnation) {
        static final Trailers NONE = new Trailers(null, null, null, null);
    }
}
