package raysharing;

import java.util.Arrays;
import java.util.Objects;

/** The worker that hosts an object's owner and stores its bytes: its gRPC address and its instance id. Immutable. */
public final class Location {
    private final String address;
    private final byte[] workerId;

    /**
     * @param address the worker's gRPC address, such as {@code http://127.0.0.1:7480}; at most 1024 UTF-8 bytes
     * @param workerId the 16-byte worker instance id (copied); a restarted worker has a new one
     * @throws InvalidEnvelopeException when a field breaks those rules
     */
    public Location(String address, byte[] workerId) {
        this.address = Envelope.checkString(address, "address");
        this.workerId = Envelope.checkId(workerId, "worker id");
    }

    /** @return the worker's gRPC address */
    public String address() {
        return address;
    }

    /** @return a copy of the 16-byte worker id */
    public byte[] workerId() {
        return workerId.clone();
    }

    /** @return the worker id as 32 lowercase hex characters */
    public String workerIdHex() {
        return Hex.encode(workerId);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof Location o && address.equals(o.address) && Arrays.equals(workerId, o.workerId);
    }

    @Override
    public int hashCode() {
        return Objects.hash(address, Arrays.hashCode(workerId));
    }

    @Override
    public String toString() {
        return address + " (worker " + workerIdHex() + ")";
    }
}
