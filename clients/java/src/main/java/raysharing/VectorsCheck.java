package raysharing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessagePack;

/**
 * Checks {@link Envelope} against the golden vectors of protos/vectors and the format's limits at their boundaries,
 * as clients/python/tests/test_envelope.py does for the Python module: valid vectors decode to their JSON and encode to
 * their exact bytes; {@code compat-*} decode to their JSON and re-encode as their base vector; {@code invalid-*} are
 * refused with {@link InvalidEnvelopeException}. Prints one line per check ({@code PASS name} or {@code FAIL name: why})
 * and then {@code OK <count>} (exit 0) or {@code FAILED <failures> of <count>} (exit 1).
 *
 * <pre>java -cp "$(cat clients/java/build/classpath.txt)" raysharing.VectorsCheck protos/vectors</pre>
 */
public final class VectorsCheck {
    /** Compatible vectors decode to the value of the vector they were written from; a writer produces that one's bytes. */
    private static final Map<String, String> COMPATIBLE_BASES = Map.of(
        "compat-extra-fields", "holder-xlang",
        "compat-wide-headers", "session-raw");

    private final Path directory;
    private int checks;
    private int failures;

    private VectorsCheck(Path directory) {
        this.directory = directory;
    }

    /**
     * Runs every check.
     *
     * @param args the vectors folder
     * @throws IOException when the folder cannot be read
     */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.out.println("usage: VectorsCheck <vectors dir>");
            System.exit(2);
        }
        VectorsCheck check = new VectorsCheck(Path.of(args[0]));
        check.run();
        if (check.failures == 0) {
            System.out.println("OK " + check.checks);
        } else {
            System.out.println("FAILED " + check.failures + " of " + check.checks);
        }
        System.exit(check.failures == 0 ? 0 : 1);
    }

    private void run() throws IOException {
        List<String> names;
        try (Stream<Path> files = Files.list(directory)) {
            names = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".hex"))
                .map(n -> n.substring(0, n.length() - 4)).sorted().toList();
        }
        List<String> invalid = names.stream().filter(n -> n.startsWith("invalid-")).toList();
        List<String> valid = names.stream().filter(n -> !n.startsWith("invalid-") && !n.startsWith("compat-")).toList();
        // A run that found no vector cannot pass.
        check("vectors are there (" + invalid.size() + " invalid, " + valid.size() + " valid)",
            () -> expect(invalid.size() >= 20 && valid.size() >= 5, "expected at least 20 invalid and 5 valid vectors in " + directory));

        for (String name : valid) {
            check("valid " + name + " decodes to its json", () -> expectEqual(readJson(name), Envelope.decode(readHex(name))));
            check("valid " + name + " encodes to its bytes", () -> expectBytes(readHex(name), readJson(name).encode()));
        }
        for (Map.Entry<String, String> compat : new java.util.TreeMap<>(COMPATIBLE_BASES).entrySet()) {
            String name = compat.getKey();
            check("compat " + name + " decodes to its json", () -> expectEqual(readJson(name), Envelope.decode(readHex(name))));
            check("compat " + name + " re-encodes as " + compat.getValue(),
                () -> expectBytes(readHex(compat.getValue()), Envelope.decode(readHex(name)).encode()));
        }
        for (String name : names) {
            if (name.startsWith("compat-") && !COMPATIBLE_BASES.containsKey(name)) {
                check("compat " + name + " has a base", () -> expect(false, "add " + name + " to COMPATIBLE_BASES"));
            }
        }
        for (String name : invalid) {
            check("invalid " + name + " is refused", () -> expectRefused(() -> Envelope.decode(readHex(name))));
        }
        limits();
    }

    private void limits() {
        check("a 1024-byte type name (512 x é) round-trips", () -> {
            String name = "é".repeat(512);
            expectEqual(name, Envelope.decode(with(base(), name, base().integrityTag()).encode()).typeName());
        });
        check("a 1025-byte type name is refused by the writer", () -> expectRefused(() -> with(base(), "x".repeat(1025), null)));
        check("a 1025-byte type name is refused by the reader", () -> expectRefused(() -> Envelope.decode(raw(base(), "x".repeat(1025), -1))));
        check("a 1024-byte integrity tag round-trips", () -> {
            byte[] tag = new byte[1024];
            expectBytes(tag, Envelope.decode(with(base(), base().typeName(), tag).encode()).integrityTag());
        });
        // An appended bin (rule 8) pads the envelope to exactly the limit: its header grows from bin8 to bin16.
        check("an envelope of exactly 16384 bytes is read", () -> {
            int head = raw(base(), base().typeName(), 0).length;
            int padding = Envelope.MAX_ENVELOPE_BYTES - head - 1;
            byte[] exact = raw(base(), base().typeName(), padding);
            expect(exact.length == Envelope.MAX_ENVELOPE_BYTES, "built " + exact.length + " bytes");
            expectEqual(base(), Envelope.decode(exact));
        });
        check("an envelope of 16385 bytes is refused", () -> {
            int head = raw(base(), base().typeName(), 0).length;
            byte[] over = raw(base(), base().typeName(), Envelope.MAX_ENVELOPE_BYTES - head);
            expect(over.length == Envelope.MAX_ENVELOPE_BYTES + 1, "built " + over.length + " bytes");
            expectRefused(() -> Envelope.decode(over));
        });
        check("trailing bytes after a valid envelope are refused", () -> {
            byte[] data = base().encode();
            expectRefused(() -> Envelope.decode(Arrays.copyOf(data, data.length + 1)));
        });

        // The writer refuses what a reader would (a codec other than the three, a kind other than 1 and 2 cannot be
        // written at all: Codec and OwnerKind are enums).
        Envelope b = base();
        Owner o = b.owner();
        check("writer refuses a 15-byte object id", () -> expectRefused(() ->
            new Envelope(new byte[15], o, b.location(), b.size(), b.codec(), b.typeName(), b.checksum(), null)));
        check("writer refuses size -1", () -> expectRefused(() ->
            new Envelope(b.objectId(), o, b.location(), -1, b.codec(), b.typeName(), b.checksum(), null)));
        check("writer refuses checksum 2^32", () -> expectRefused(() ->
            new Envelope(b.objectId(), o, b.location(), b.size(), b.codec(), b.typeName(), 1L << 32, null)));
        check("writer refuses checksum -1", () -> expectRefused(() ->
            new Envelope(b.objectId(), o, b.location(), b.size(), b.codec(), b.typeName(), -1, null)));
        check("writer refuses a holder owner without a name", () -> expectRefused(() ->
            new Owner(OwnerKind.HOLDER, "default", "", new byte[16])));
        check("writer refuses a session owner with a name", () -> expectRefused(() ->
            new Envelope(b.objectId(), new Owner(OwnerKind.SESSION, "default", "named", new byte[16]), b.location(),
                b.size(), b.codec(), b.typeName(), b.checksum(), null).encode()));
        check("writer refuses a 1025-byte integrity tag", () -> expectRefused(() -> with(b, b.typeName(), new byte[1025])));
        check("writer refuses a 15-byte incarnation", () -> expectRefused(() ->
            new Owner(OwnerKind.HOLDER, "default", "h", new byte[15])));
        check("writer refuses a 17-byte worker id", () -> expectRefused(() -> new Location("http://x:1", new byte[17])));
        check("writer refuses an unpaired surrogate", () -> expectRefused(() -> with(b, "\ud800", null)));
        check("reader accepts a session owner with a name", () -> {
            byte[] data = raw(new Envelope(b.objectId(), new Owner(OwnerKind.SESSION, "default", "named", new byte[16]),
                b.location(), b.size(), b.codec(), b.typeName(), b.checksum(), null), b.typeName(), -1);
            expectEqual("named", Envelope.decode(data).owner().name());
        });
    }

    private Envelope base() {
        try {
            return readJson("holder-xlang");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Envelope with(Envelope e, String typeName, byte[] tag) {
        return new Envelope(e.objectId(), e.owner(), e.location(), e.size(), e.codec(), typeName, e.checksum(), tag);
    }

    /**
     * Packs an envelope's fields without the writer's checks (so a reader can be shown what a writer refuses), with a
     * given type name and, when {@code padding >= 0}, a 10th element: a bin of that many zero bytes.
     */
    private static byte[] raw(Envelope e, String typeName, int padding) throws IOException {
        try (MessageBufferPacker p = MessagePack.newDefaultBufferPacker()) {
            p.packArrayHeader(padding >= 0 ? 10 : 9);
            p.packInt(1);
            bin(p, e.objectId());
            p.packArrayHeader(4);
            p.packInt(e.owner().kind().wireValue());
            p.packString(e.owner().namespace());
            p.packString(e.owner().name());
            bin(p, e.owner().incarnation());
            p.packArrayHeader(2);
            p.packString(e.location().address());
            bin(p, e.location().workerId());
            p.packLong(e.size());
            p.packString(e.codec().name());
            byte[] name = typeName.getBytes(StandardCharsets.UTF_8);
            p.packRawStringHeader(name.length);
            p.writePayload(name);
            p.packLong(e.checksum());
            if (e.integrityTag() == null) {
                p.packNil();
            } else {
                bin(p, e.integrityTag());
            }
            if (padding >= 0) {
                bin(p, new byte[padding]);
            }
            return p.toByteArray();
        }
    }

    private static void bin(MessageBufferPacker p, byte[] bytes) throws IOException {
        p.packBinaryHeader(bytes.length);
        p.writePayload(bytes);
    }

    private byte[] readHex(String name) throws IOException {
        StringBuilder hex = new StringBuilder();
        for (String line : Files.readAllLines(directory.resolve(name + ".hex"), StandardCharsets.UTF_8)) {
            int comment = line.indexOf('#');
            for (char c : (comment < 0 ? line : line.substring(0, comment)).toCharArray()) {
                if (!Character.isWhitespace(c)) {
                    hex.append(c);
                }
            }
        }
        return Hex.decode(hex.toString());
    }

    private Envelope readJson(String name) throws IOException {
        Map<String, Object> value = Json.object(Files.readString(directory.resolve(name + ".json"), StandardCharsets.UTF_8));
        expect(Long.valueOf(1).equals(value.get("version")), name + ".json: version is not 1");
        @SuppressWarnings("unchecked")
        Map<String, Object> owner = (Map<String, Object>) value.get("owner");
        @SuppressWarnings("unchecked")
        Map<String, Object> location = (Map<String, Object>) value.get("location");
        Codec codec = Codec.fromName((String) value.get("codec"));
        expect(codec != null, name + ".json: unknown codec " + value.get("codec"));
        Object tag = value.get("integrity_tag");
        return new Envelope(
            Hex.decode((String) value.get("object_id")),
            new Owner(OwnerKind.fromWire((Long) owner.get("kind")), (String) owner.get("namespace"), (String) owner.get("name"),
                Hex.decode((String) owner.get("incarnation"))),
            new Location((String) location.get("address"), Hex.decode((String) location.get("worker_id"))),
            (Long) value.get("size"), codec, (String) value.get("type_name"), (Long) value.get("checksum"),
            tag == null ? null : Hex.decode((String) tag));
    }

    private interface Check {
        void run() throws Exception;
    }

    private void check(String name, Check body) {
        checks++;
        try {
            body.run();
            System.out.println("PASS " + name);
        } catch (Exception | AssertionError e) {
            failures++;
            System.out.println("FAIL " + name + ": " + e);
        }
    }

    private static void expect(boolean condition, String message) {
        if (!condition) {
            throw new AssertionError(message);
        }
    }

    private static void expectEqual(Object expected, Object actual) {
        expect(expected.equals(actual), "expected " + expected + ", got " + actual);
    }

    private static void expectBytes(byte[] expected, byte[] actual) {
        expect(Arrays.equals(expected, actual), "expected " + Hex.encode(expected) + ", got " + (actual == null ? "null" : Hex.encode(actual)));
    }

    /** Passes only on InvalidEnvelopeException: any other exception is a bug in the reader or writer, not a refusal. */
    private static void expectRefused(Check body) throws Exception {
        try {
            body.run();
        } catch (InvalidEnvelopeException e) {
            return;
        }
        throw new AssertionError("accepted; expected InvalidEnvelopeException");
    }

    /**
     * Just enough JSON for the vectors' flat files: objects, strings (with escapes), integers, null, true, false.
     * Integers are Longs; anything else is refused, so a vector that needs more fails loudly here.
     */
    static final class Json {
        private final String text;
        private int at;

        private Json(String text) {
            this.text = text;
        }

        @SuppressWarnings("unchecked")
        static Map<String, Object> object(String text) {
            Json json = new Json(text);
            Object value = json.value();
            json.space();
            if (json.at != text.length() || !(value instanceof Map)) {
                throw json.error("one JSON object");
            }
            return (Map<String, Object>) value;
        }

        private Object value() {
            space();
            if (at >= text.length()) {
                throw error("a value");
            }
            char c = text.charAt(at);
            if (c == '{') {
                return map();
            }
            if (c == '"') {
                return string();
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                int start = at++;
                while (at < text.length() && Character.isDigit(text.charAt(at))) {
                    at++;
                }
                return Long.parseLong(text.substring(start, at));
            }
            for (String word : new String[] {"null", "true", "false"}) {
                if (text.startsWith(word, at)) {
                    at += word.length();
                    return word.equals("null") ? null : Boolean.valueOf(word);
                }
            }
            throw error("a value");
        }

        private Map<String, Object> map() {
            Map<String, Object> map = new LinkedHashMap<>();
            at++;
            space();
            if (peek() == '}') {
                at++;
                return map;
            }
            while (true) {
                space();
                if (peek() != '"') {
                    throw error("a key");
                }
                String key = string();
                space();
                if (peek() != ':') {
                    throw error("':'");
                }
                at++;
                map.put(key, value());
                space();
                char c = peek();
                at++;
                if (c == '}') {
                    return map;
                }
                if (c != ',') {
                    throw error("',' or '}'");
                }
            }
        }

        private String string() {
            StringBuilder out = new StringBuilder();
            at++;
            while (true) {
                char c = peek();
                at++;
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char e = peek();
                at++;
                switch (e) {
                    case '"', '\\', '/' -> out.append(e);
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        // Surrogate pairs arrive as two \\u escapes, appended one after the other.
                        out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
                        at += 4;
                    }
                    default -> throw error("an escape");
                }
            }
        }

        private char peek() {
            if (at >= text.length()) {
                throw error("more input");
            }
            return text.charAt(at);
        }

        private void space() {
            while (at < text.length() && Character.isWhitespace(text.charAt(at))) {
                at++;
            }
        }

        private IllegalArgumentException error(String expected) {
            return new IllegalArgumentException("JSON: expected " + expected + " at offset " + at);
        }
    }

}
