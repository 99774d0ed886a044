package raysharing;

/**
 * How an object's bytes are to be read. {@link #name()} is exactly the string the envelope carries; the comparison is
 * exact ({@code "raw"} is not {@code RAW}).
 */
public enum Codec {
    /** One plain MessagePack value, readable by every MessagePack library. */
    XLANG,
    /** Opaque bytes. What {@link RaySharingSession#put(byte[], Holder)} writes. */
    RAW,
    /** An Arrow IPC stream, for tables. */
    ARROW;

    /**
     * @param name the envelope's codec string
     * @return the codec whose name is exactly {@code name}, or null
     */
    static Codec fromName(String name) {
        for (Codec codec : values()) {
            if (codec.name().equals(name)) {
                return codec;
            }
        }
        return null;
    }
}
