package raysharing;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePackException;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.value.ValueType;

/**
 * A ref envelope, version 1 (protos/ENVELOPE.md): the wire form of a reference to a shared object. One MessagePack
 * array of 9 elements: version, object id, owner, location, size, codec, type name, checksum and integrity tag.
 *
 * <p>{@link #encode()} writes every value in its smallest MessagePack form, so one envelope has exactly one encoding
 * (the golden vectors in protos/vectors compare byte for byte). {@link #decode(byte[])} accepts every MessagePack format
 * of the right type, skips elements a later version appends, and refuses anything else with
 * {@link InvalidEnvelopeException}. Instances are immutable; byte arrays are copied in and out.
 */
public final class Envelope {
    /** The largest envelope a reader accepts, in bytes (16 KiB). */
    public static final int MAX_ENVELOPE_BYTES = 16384;
    /** The longest string, and the longest integrity tag, an envelope may hold, in UTF-8 bytes. */
    public static final int MAX_STRING_BYTES = 1024;
    /** The envelope version this class reads and writes. */
    public static final int VERSION = 1;
    /** The largest checksum: CRC-32 fits in 32 bits. */
    public static final long MAX_CHECKSUM = 0xFFFF_FFFFL;

    private static final int ID_BYTES = 16;
    private static final BigInteger MAX_SIZE = BigInteger.valueOf(Long.MAX_VALUE);

    private final byte[] objectId;
    private final Owner owner;
    private final Location location;
    private final long size;
    private final Codec codec;
    private final String typeName;
    private final long checksum;
    private final byte[] integrityTag;

    /**
     * Creates an envelope, checking each field as a reader would.
     *
     * @param objectId the object's 16-byte id (copied)
     * @param owner who owns the object
     * @param location the worker that stores it
     * @param size the object's size in bytes, 0 to 2^63-1
     * @param codec how to read the bytes
     * @param typeName the putter's type name, at most 1024 UTF-8 bytes; empty when untyped
     * @param checksum CRC-32 (ISO-HDLC, {@link java.util.zip.CRC32}) of the object's bytes, 0 to 2^32-1
     * @param integrityTag null (what version-1 writers write) or at most 1024 bytes, carried along unchanged (copied)
     * @throws InvalidEnvelopeException when a field breaks the format's rules
     */
    public Envelope(byte[] objectId, Owner owner, Location location, long size, Codec codec, String typeName,
                    long checksum, byte[] integrityTag) {
        this.objectId = checkId(objectId, "object id");
        if (owner == null || location == null || codec == null) {
            throw new InvalidEnvelopeException("the " + (owner == null ? "owner" : location == null ? "location" : "codec") + " is missing");
        }
        this.owner = owner;
        this.location = location;
        if (size < 0) {
            throw new InvalidEnvelopeException("the size " + size + " is negative");
        }
        this.size = size;
        this.codec = codec;
        this.typeName = checkString(typeName, "type name");
        if (checksum < 0 || checksum > MAX_CHECKSUM) {
            throw new InvalidEnvelopeException("the checksum " + checksum + " is outside 0 ... " + MAX_CHECKSUM);
        }
        this.checksum = checksum;
        if (integrityTag != null && integrityTag.length > MAX_STRING_BYTES) {
            throw new InvalidEnvelopeException("the integrity tag is " + integrityTag.length + " bytes; the limit is " + MAX_STRING_BYTES);
        }
        this.integrityTag = integrityTag == null ? null : integrityTag.clone();
    }

    /** @return a copy of the 16-byte object id */
    public byte[] objectId() {
        return objectId.clone();
    }

    /** @return the object id as 32 lowercase hex characters */
    public String objectIdHex() {
        return Hex.encode(objectId);
    }

    /** @return the owner */
    public Owner owner() {
        return owner;
    }

    /** @return the worker that stores the bytes */
    public Location location() {
        return location;
    }

    /** @return the object's size in bytes */
    public long size() {
        return size;
    }

    /** @return the codec */
    public Codec codec() {
        return codec;
    }

    /** @return the type name; empty when untyped */
    public String typeName() {
        return typeName;
    }

    /** @return the CRC-32 of the object's bytes, 0 to 2^32-1 */
    public long checksum() {
        return checksum;
    }

    /** @return a copy of the integrity tag, or null (version-1 writers write none; an empty tag is not null) */
    public byte[] integrityTag() {
        return integrityTag == null ? null : integrityTag.clone();
    }

    /**
     * Writes the envelope, every value in its smallest MessagePack form.
     *
     * @return the envelope's bytes, at most {@link #MAX_ENVELOPE_BYTES}
     * @throws InvalidEnvelopeException when a reader would refuse the result: a session owner with a name (readers do
     *     not check it, writers must not write it), or more than 16 KiB in all
     */
    public byte[] encode() {
        if (owner.kind() == OwnerKind.SESSION && !owner.name().isEmpty()) {
            throw new InvalidEnvelopeException("a session owner's name is empty; got '" + owner.name() + "'");
        }
        try (MessageBufferPacker packer = MessagePack.newDefaultBufferPacker()) {
            packer.packArrayHeader(9);
            packer.packInt(VERSION);
            packBin(packer, objectId);
            packer.packArrayHeader(4);
            packer.packInt(owner.kind().wireValue());
            packStr(packer, owner.namespace());
            packStr(packer, owner.name());
            packBin(packer, owner.incarnation());
            packer.packArrayHeader(2);
            packStr(packer, location.address());
            packBin(packer, location.workerId());
            // packLong writes non-negative values as the smallest fixint/uint8/16/32/64 form, as the format requires.
            packer.packLong(size);
            packStr(packer, codec.name());
            packStr(packer, typeName);
            packer.packLong(checksum);
            if (integrityTag == null) {
                packer.packNil();
            } else {
                packBin(packer, integrityTag);
            }
            byte[] data = packer.toByteArray();
            if (data.length > MAX_ENVELOPE_BYTES) {
                throw new InvalidEnvelopeException("the envelope would be " + data.length + " bytes; the limit is " + MAX_ENVELOPE_BYTES);
            }
            return data;
        } catch (IOException e) {
            // A buffer packer writes to memory: it does not fail with I/O errors.
            throw new IllegalStateException("packing an envelope in memory failed", e);
        }
    }

    /**
     * Reads one envelope as strictly as protos/ENVELOPE.md's rules for readers say.
     *
     * @param data the envelope's bytes: 1 to 16384 bytes, exactly one MessagePack value
     * @return the envelope
     * @throws InvalidEnvelopeException saying which rule the bytes break
     */
    public static Envelope decode(byte[] data) {
        if (data == null || data.length == 0) {
            throw new InvalidEnvelopeException("no bytes: an envelope is 1 to " + MAX_ENVELOPE_BYTES + " bytes");
        }
        if (data.length > MAX_ENVELOPE_BYTES) {
            throw new InvalidEnvelopeException(data.length + " bytes; an envelope is at most " + MAX_ENVELOPE_BYTES);
        }
        try (MessageUnpacker unpacker = MessagePack.newDefaultUnpacker(data)) {
            Reader reader = new Reader(unpacker, data.length);
            int fields = reader.array(9, "the envelope");
            long version = reader.integer("version", 0, Long.MAX_VALUE);
            if (version != VERSION) {
                throw new InvalidEnvelopeException("version " + version + "; this reader reads version " + VERSION);
            }
            byte[] objectId = reader.id("object id");
            int ownerFields = reader.array(4, "the owner");
            long kind = reader.integer("owner kind", 1, 2);
            String namespace = reader.string("namespace");
            String name = reader.string("owner name");
            byte[] incarnation = reader.id("incarnation");
            reader.skip(ownerFields - 4);
            int locationFields = reader.array(2, "the location");
            String address = reader.string("address");
            byte[] workerId = reader.id("worker id");
            reader.skip(locationFields - 2);
            long size = reader.integer("size", 0, Long.MAX_VALUE);
            String codecName = reader.string("codec");
            Codec codec = Codec.fromName(codecName);
            if (codec == null) {
                throw new InvalidEnvelopeException("codec '" + codecName + "' is not one of XLANG, RAW, ARROW");
            }
            String typeName = reader.string("type name");
            long checksum = reader.integer("checksum", 0, MAX_CHECKSUM);
            byte[] tag = reader.tag();
            // Elements a later version appends are skipped, whatever their type (rule 8).
            reader.skip(fields - 9);
            if (unpacker.hasNext()) {
                throw new InvalidEnvelopeException((data.length - unpacker.getTotalReadBytes()) + " bytes follow the envelope's one MessagePack value");
            }
            return new Envelope(objectId, new Owner(OwnerKind.fromWire(kind), namespace, name, incarnation),
                new Location(address, workerId), size, codec, typeName, checksum, tag);
        } catch (MessagePackException | IOException e) {
            // Truncated input, a never-used format byte (0xc1), a header whose length runs past the end, ...
            throw new InvalidEnvelopeException("not one complete MessagePack value: " + e.getMessage());
        }
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof Envelope o && Arrays.equals(objectId, o.objectId) && owner.equals(o.owner)
            && location.equals(o.location) && size == o.size && codec == o.codec && typeName.equals(o.typeName)
            && checksum == o.checksum && Arrays.equals(integrityTag, o.integrityTag);
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(objectId), owner, location, size, codec, typeName, checksum, Arrays.hashCode(integrityTag));
    }

    @Override
    public String toString() {
        return "Envelope(object " + objectIdHex() + ", owner " + owner + ", location " + location + ", size " + size
            + ", " + codec + ", type '" + typeName + "', checksum " + String.format("%08x", checksum)
            + (integrityTag == null ? "" : ", tag " + Hex.encode(integrityTag)) + ")";
    }

    static byte[] checkId(byte[] id, String what) {
        if (id == null || id.length != ID_BYTES) {
            throw new InvalidEnvelopeException("the " + what + " is " + ID_BYTES + " bytes; got " + (id == null ? "none" : id.length));
        }
        return id.clone();
    }

    static String checkString(String value, String what) {
        if (value == null) {
            throw new InvalidEnvelopeException("the " + what + " is missing");
        }
        utf8(value, what);
        return value;
    }

    /** The UTF-8 bytes of a string of at most 1024 of them; an unpaired surrogate is refused, never replaced. */
    private static byte[] utf8(String value, String what) {
        ByteBuffer encoded;
        try {
            encoded = StandardCharsets.UTF_8.newEncoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .encode(CharBuffer.wrap(value));
        } catch (CharacterCodingException e) {
            throw new InvalidEnvelopeException("the " + what + " is not valid Unicode (an unpaired surrogate)");
        }
        byte[] bytes = new byte[encoded.remaining()];
        encoded.get(bytes);
        if (bytes.length > MAX_STRING_BYTES) {
            throw new InvalidEnvelopeException("the " + what + " is " + bytes.length + " UTF-8 bytes; the limit is " + MAX_STRING_BYTES);
        }
        return bytes;
    }

    private static void packStr(MessageBufferPacker packer, String value) throws IOException {
        // Encoded here rather than with packString: the header is then always the smallest for the byte count.
        byte[] bytes = utf8(value, "string");
        packer.packRawStringHeader(bytes.length);
        packer.writePayload(bytes);
    }

    private static void packBin(MessageBufferPacker packer, byte[] bytes) throws IOException {
        packer.packBinaryHeader(bytes.length);
        packer.writePayload(bytes);
    }

    /** Reads the fields with their strict types; every header's length is checked against the bytes left. */
    private static final class Reader {
        private final MessageUnpacker unpacker;
        private final long length;

        Reader(MessageUnpacker unpacker, long length) {
            this.unpacker = unpacker;
            this.length = length;
        }

        int array(int least, String what) throws IOException {
            ValueType type = next(what);
            if (type != ValueType.ARRAY) {
                throw new InvalidEnvelopeException(what + " is an array; got " + describe(type));
            }
            int count = unpacker.unpackArrayHeader();
            if (count < least) {
                throw new InvalidEnvelopeException(what + " has " + least + " elements; got " + count);
            }
            // Each element is at least one byte: a larger count cannot be in the input (and would loop for long).
            if (count > length - unpacker.getTotalReadBytes()) {
                throw new InvalidEnvelopeException(what + " claims " + count + " elements, more than the bytes left");
            }
            return count;
        }

        long integer(String what, long low, long high) throws IOException {
            ValueType type = next(what);
            // A MessagePack boolean or float is not an integer (a version `true` is refused).
            if (type != ValueType.INTEGER) {
                throw new InvalidEnvelopeException("the " + what + " is an integer; got " + describe(type));
            }
            BigInteger value = unpacker.unpackBigInteger();
            if (value.compareTo(BigInteger.valueOf(low)) < 0 || value.compareTo(BigInteger.valueOf(high)) > 0) {
                throw new InvalidEnvelopeException("the " + what + " " + value + " is outside " + low + " ... " + high);
            }
            return value.longValueExact();
        }

        String string(String what) throws IOException {
            ValueType type = next(what);
            if (type != ValueType.STRING) {
                throw new InvalidEnvelopeException("the " + what + " is a str; got " + describe(type));
            }
            int count = unpacker.unpackRawStringHeader();
            if (count > MAX_STRING_BYTES) {
                throw new InvalidEnvelopeException("the " + what + " is " + count + " UTF-8 bytes; the limit is " + MAX_STRING_BYTES);
            }
            byte[] bytes = payload(count, what);
            try {
                return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
            } catch (CharacterCodingException e) {
                throw new InvalidEnvelopeException("the " + what + " is not valid UTF-8");
            }
        }

        byte[] id(String what) throws IOException {
            ValueType type = next(what);
            if (type != ValueType.BINARY) {
                throw new InvalidEnvelopeException("the " + what + " is a bin; got " + describe(type));
            }
            int count = unpacker.unpackBinaryHeader();
            if (count != ID_BYTES) {
                throw new InvalidEnvelopeException("the " + what + " is " + ID_BYTES + " bytes; got " + count);
            }
            return payload(count, what);
        }

        byte[] tag() throws IOException {
            ValueType type = next("integrity tag");
            if (type == ValueType.NIL) {
                unpacker.unpackNil();
                return null;
            }
            if (type != ValueType.BINARY) {
                throw new InvalidEnvelopeException("the integrity tag is nil or a bin; got " + describe(type));
            }
            int count = unpacker.unpackBinaryHeader();
            if (count > MAX_STRING_BYTES) {
                throw new InvalidEnvelopeException("the integrity tag is " + count + " bytes; the limit is " + MAX_STRING_BYTES);
            }
            return payload(count, "integrity tag");
        }

        void skip(int values) throws IOException {
            for (int i = 0; i < values; i++) {
                next("an appended element");
                unpacker.skipValue();
            }
        }

        private ValueType next(String what) throws IOException {
            if (!unpacker.hasNext()) {
                throw new InvalidEnvelopeException("the bytes end before the " + what);
            }
            MessageFormat format = unpacker.getNextFormat();
            if (format == MessageFormat.NEVER_USED) {
                throw new InvalidEnvelopeException("the " + what + " starts with the never-used byte 0xc1");
            }
            return format.getValueType();
        }

        private byte[] payload(int count, String what) throws IOException {
            if (count > length - unpacker.getTotalReadBytes()) {
                throw new InvalidEnvelopeException("the " + what + " claims " + count + " bytes, more than the bytes left");
            }
            return unpacker.readPayload(count);
        }

        private static String describe(ValueType type) {
            return type.name().toLowerCase(java.util.Locale.ROOT);
        }
    }
}
