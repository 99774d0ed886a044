package raysharing;

import java.util.HexFormat;

/** Ids as text: 32 lowercase hex characters in byte order (ENVELOPE.md, "Field rules"). */
final class Hex {
    private static final HexFormat LOWER = HexFormat.of();

    private Hex() {
    }

    static String encode(byte[] bytes) {
        return LOWER.formatHex(bytes);
    }

    /** Reads hex, upper or lower case; throws IllegalArgumentException for anything else. */
    static byte[] decode(String text) {
        return LOWER.parseHex(text);
    }
}
