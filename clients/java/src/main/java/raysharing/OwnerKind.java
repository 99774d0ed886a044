package raysharing;

/** Who owns an object: a named holder, or the session that put it (the envelope's owner kind). */
public enum OwnerKind {
    /** A holder, a named actor: wire value 1. */
    HOLDER(1),
    /** The session that put the object: wire value 2. Its name is empty and its incarnation is the session id. */
    SESSION(2);

    private final int wireValue;

    OwnerKind(int wireValue) {
        this.wireValue = wireValue;
    }

    /** @return the integer the envelope carries: 1 or 2. */
    public int wireValue() {
        return wireValue;
    }

    /**
     * @param wireValue the envelope's kind integer
     * @return the kind, or null when the value is neither 1 nor 2
     */
    static OwnerKind fromWire(long wireValue) {
        for (OwnerKind kind : values()) {
            if (kind.wireValue == wireValue) {
                return kind;
            }
        }
        return null;
    }
}
