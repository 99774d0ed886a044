package raysharing;

/**
 * A holder, a named actor that owns objects, as the worker reported it. Puts and registers through it are pinned to
 * {@code incarnation}: when this holder has died (killed, or a newer holder of the same name replaced it) they fail
 * with {@link OwnerDiedException} rather than reach another holder.
 *
 * @param namespace the holder's namespace
 * @param name the holder's name
 * @param incarnation the holder's incarnation id, 32 lowercase hex characters
 */
public record Holder(String namespace, String name, String incarnation) {
    /** @return the 16-byte incarnation id */
    public byte[] incarnationBytes() {
        return Hex.decode(incarnation);
    }

    @Override
    public String toString() {
        return "holder '" + namespace + "/" + name + "' (incarnation " + incarnation + ")";
    }
}
