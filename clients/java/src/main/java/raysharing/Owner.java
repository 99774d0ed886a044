package raysharing;

import java.util.Arrays;
import java.util.Objects;

/**
 * The owner of an object: a holder (namespace, non-empty name, incarnation) or a session (namespace, empty name,
 * the session id as incarnation). Immutable; the constructor refuses what no envelope may carry.
 */
public final class Owner {
    private final OwnerKind kind;
    private final String namespace;
    private final String name;
    private final byte[] incarnation;

    /**
     * @param kind holder or session
     * @param namespace at most 1024 UTF-8 bytes
     * @param name at most 1024 UTF-8 bytes; never empty for a holder (a writer also refuses a named session owner,
     *     which readers accept: see {@link Envelope#encode()})
     * @param incarnation 16 bytes: the holder's incarnation, or the session id (copied)
     * @throws InvalidEnvelopeException when a field breaks those rules
     */
    public Owner(OwnerKind kind, String namespace, String name, byte[] incarnation) {
        if (kind == null) {
            throw new InvalidEnvelopeException("the owner kind is missing");
        }
        this.kind = kind;
        this.namespace = Envelope.checkString(namespace, "namespace");
        this.name = Envelope.checkString(name, "owner name");
        this.incarnation = Envelope.checkId(incarnation, "incarnation");
        if (kind == OwnerKind.HOLDER && name.isEmpty()) {
            throw new InvalidEnvelopeException("a holder owner has a name; the name is empty");
        }
    }

    /** @return holder or session */
    public OwnerKind kind() {
        return kind;
    }

    /** @return the namespace */
    public String namespace() {
        return namespace;
    }

    /** @return the holder's name; empty for a session */
    public String name() {
        return name;
    }

    /** @return a copy of the 16-byte incarnation (the session id for a session) */
    public byte[] incarnation() {
        return incarnation.clone();
    }

    /** @return the incarnation as 32 lowercase hex characters */
    public String incarnationHex() {
        return Hex.encode(incarnation);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof Owner o && kind == o.kind && namespace.equals(o.namespace) && name.equals(o.name)
            && Arrays.equals(incarnation, o.incarnation);
    }

    @Override
    public int hashCode() {
        return Objects.hash(kind, namespace, name, Arrays.hashCode(incarnation));
    }

    @Override
    public String toString() {
        return kind + " '" + namespace + "/" + name + "' incarnation " + incarnationHex();
    }
}
