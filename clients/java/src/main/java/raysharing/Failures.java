package raysharing;

import io.grpc.Metadata;
import io.grpc.Status;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Maps a failed call to the exception of its reason, as protos/ERRORS.md "How a client maps a failed call" says: the
 * {@code rs-reason} trailer decides when present; otherwise the status code does.
 */
final class Failures {
    static final Metadata.Key<String> REASON = key("rs-reason");
    static final Metadata.Key<String> OBJECT_ID = key("rs-object-id");
    static final Metadata.Key<String> HOLDER_NAMESPACE = key("rs-holder-namespace");
    static final Metadata.Key<String> HOLDER_NAME = key("rs-holder-name");
    static final Metadata.Key<String> INCARNATION = key("rs-incarnation");

    private Failures() {
    }

    static Metadata.Key<String> key(String name) {
        return Metadata.Key.of(name, Metadata.ASCII_STRING_MARSHALLER);
    }

    /**
     * @param operation what was called, for the message ("Objects.Put", ...)
     * @param address the worker's address, for the message
     * @param status the call's status
     * @param trailers its trailers; may be null
     */
    static RaySharingException fromStatus(String operation, String address, Status status, Metadata trailers) {
        String detail = status.getDescription() == null ? status.getCode().name() : status.getDescription();
        String reason = trailers == null ? null : trailers.get(REASON);
        if (reason != null) {
            RaySharingException.Trailers context = new RaySharingException.Trailers(trailers.get(OBJECT_ID),
                percentDecode(trailers.get(HOLDER_NAMESPACE)), percentDecode(trailers.get(HOLDER_NAME)), trailers.get(INCARNATION));
            return fromReason(reason, operation + " on worker " + address + " failed with " + reason + ": " + detail,
                status.asRuntimeException(trailers), context);
        }
        // No reason trailer: the transport (or something that is not a worker) ended the call.
        RaySharingException.Trailers none = RaySharingException.Trailers.NONE;
        Throwable cause = status.asRuntimeException(trailers);
        String where = operation + " on worker " + address;
        switch (status.getCode()) {
            case DEADLINE_EXCEEDED:
                return new RaySharingTimeoutException(where + " did not complete within its deadline (" + detail
                    + "). The worker may be overloaded or stuck; raise the call timeout only if the work is known to be slow.", cause, none);
            case UNAVAILABLE:
                return new WorkerUnavailableException(operation + " could not reach the worker at " + address + ": " + detail
                    + ". Check that a worker is running there.", cause, none);
            case CANCELLED:
                return new WorkerUnavailableException(where + " was cut off: " + detail, cause, none);
            case PERMISSION_DENIED:
            case UNAUTHENTICATED:
                return new RaySharingException("UNAUTHORIZED", where + " was refused: " + detail, cause);
            case RESOURCE_EXHAUSTED:
                return new RaySharingException("MESSAGE_TOO_LARGE", where + " failed: " + detail + ". Send less in one call.", cause);
            case INTERNAL:
                // A worker always sends a reason: an INTERNAL without one is this client's transport failing the call.
                return new WorkerUnavailableException(where + " lost its connection: " + detail, cause, none);
            default:
                return new RaySharingException(status.getCode().name(), where + " failed with " + status.getCode() + ": " + detail, cause);
        }
    }

    static RaySharingException fromReason(String reason, String message, Throwable cause, RaySharingException.Trailers context) {
        switch (reason) {
            case "OWNER_DIED":
                return new OwnerDiedException(message, cause, context);
            case "HOLDER_NOT_FOUND":
                return new HolderNotFoundException(message, cause, context);
            case "UNAVAILABLE":
                return new WorkerUnavailableException(message, cause, context);
            case "TIMEOUT":
                return new RaySharingTimeoutException(message, cause, context);
            case "SESSION_EXPIRED":
                return new SessionExpiredException(message + " Open a new session.", cause, context);
            case "INVALID_ENVELOPE":
                return new InvalidEnvelopeException(message, cause, context);
            default:
                // Reasons without a subclass here, and reasons later workers add, keep their reason string.
                return new RaySharingException(reason, message, cause, context);
        }
    }

    /** RFC 3986 percent-decoding to UTF-8 ('+' stays '+', unlike form decoding); null stays null. */
    static String percentDecode(String value) {
        if (value == null || value.indexOf('%') < 0) {
            return value;
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(value.length());
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c == '%' && i + 2 < value.length() && Character.digit(value.charAt(i + 1), 16) >= 0
                && Character.digit(value.charAt(i + 2), 16) >= 0) {
                bytes.write(Character.digit(value.charAt(i + 1), 16) * 16 + Character.digit(value.charAt(i + 2), 16));
                i += 2;
            } else {
                bytes.write(c);
            }
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }
}
