package raysharing;

/**
 * A reference to a shared object: its envelope, as bytes (what travels: register them, send them to another process
 * in any language) and decoded (what it says: id, owner, location, size, codec, checksum). Immutable.
 */
public final class ObjectRef {
    private final byte[] envelopeBytes;
    private final Envelope envelope;

    /**
     * Wraps envelope bytes, decoding them strictly.
     *
     * @param envelopeBytes a version-1 envelope (copied)
     * @throws InvalidEnvelopeException when the bytes are not one
     */
    public ObjectRef(byte[] envelopeBytes) {
        this.envelopeBytes = envelopeBytes.clone();
        this.envelope = Envelope.decode(this.envelopeBytes);
    }

    /** @return a copy of the envelope's bytes, as the worker issued them */
    public byte[] envelopeBytes() {
        return envelopeBytes.clone();
    }

    int envelopeLength() {
        return envelopeBytes.length;
    }

    com.google.protobuf.ByteString envelopeByteString() {
        return com.google.protobuf.ByteString.copyFrom(envelopeBytes);
    }

    /** @return the decoded envelope */
    public Envelope envelope() {
        return envelope;
    }

    @Override
    public String toString() {
        return "ObjectRef(" + envelope.objectIdHex() + ", " + envelope.size() + " bytes, owner " + envelope.owner() + ")";
    }
}
