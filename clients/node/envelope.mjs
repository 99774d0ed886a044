/**
 * The ref envelope, version 1 (protos/ENVELOPE.md).
 *
 * An envelope is one MessagePack array of 9 elements: version, object id, owner, location, size, codec,
 * type name, checksum and integrity tag. {@link encode} writes every value in its smallest MessagePack
 * form, so one envelope has exactly one encoding (the golden vectors are compared byte for byte);
 * {@link decode} accepts every format of the right type, skips elements a later version appends, and
 * refuses anything else with an {@link InvalidEnvelopeError} that names the rule broken.
 *
 * Decoding is a small hand-written reader rather than @msgpack/msgpack's decoder: that one gives the
 * same JavaScript number for the integer 100 and the float 100.0, replaces malformed UTF-8 instead of
 * failing, and refuses maps with non-string keys, all of which the rules for readers decide otherwise.
 *
 * @module @raysharing/envelope
 */

import { Encoder } from "@msgpack/msgpack";

/** The largest envelope a reader accepts, in bytes (16 KiB). */
export const MAX_ENVELOPE_BYTES = 16384;

/** The longest string (namespace, name, address, codec, type name) and integrity tag, in UTF-8 bytes. */
export const MAX_STRING_BYTES = 1024;

/** How an object's bytes are read: plain MessagePack, opaque bytes, or an Arrow IPC stream. */
export const CODECS = Object.freeze(["XLANG", "RAW", "ARROW"]);

/** Who owns an object: a named holder (1), or the session that put it (2). */
export const OwnerKind = Object.freeze({ HOLDER: 1, SESSION: 2 });

const VERSION = 1;
const ID_BYTES = 16;
const MAX_SIZE = (1n << 63n) - 1n;
const MAX_CHECKSUM = 2 ** 32 - 1;

// fatal: malformed sequences are refused, never replaced (rule 7). ignoreBOM: a leading U+FEFF is part of
// the string; by default TextDecoder would silently drop it, and the string would no longer be the one written.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

// The rules of ENVELOPE.md, as InvalidEnvelopeError.rule names them.
const RULE = Object.freeze({
  sizeLimit: "reader rule 1 (size limit)",
  oneValue: "reader rule 2 (one value, no trailing bytes)",
  shape: "reader rule 3 (shape)",
  version: "reader rule 4 (version)",
  types: "reader rule 5 (strict types)",
  ranges: "reader rule 6 (ranges)",
  strings: "reader rule 7 (strings)",
  sessionName: "writer rule 4 (a session owner's name is empty)",
});

/**
 * The bytes are not a valid version-1 envelope, or an envelope given to {@link encode} breaks the format's rules.
 * The message starts with the rule broken; {@link InvalidEnvelopeError#rule} holds it alone.
 */
export class InvalidEnvelopeError extends Error {
  /**
   * @param {string} rule The rule of ENVELOPE.md that is broken, such as `"reader rule 5 (strict types)"`.
   * @param {string} detail What broke it.
   */
  constructor(rule, detail) {
    super(`${rule}: ${detail}`);
    this.name = "InvalidEnvelopeError";
    /** The rule of ENVELOPE.md that is broken: `"reader rule N (...)"`, or `"writer rule 4 (...)"` for a session owner with a name. */
    this.rule = rule;
  }
}

/**
 * @typedef {object} Owner
 * @property {1 | 2} kind {@link OwnerKind}: 1 = holder, 2 = session.
 * @property {string} namespace The holder's namespace; for a session, the session's namespace.
 * @property {string} name The holder's name, never empty; for a session `""`.
 * @property {Uint8Array} incarnation 16 bytes: the holder's incarnation id; for a session, the session id.
 */

/**
 * @typedef {object} Location
 * @property {string} address The worker's gRPC address, such as `http://127.0.0.1:7480`.
 * @property {Uint8Array} workerId 16 bytes: the worker instance.
 */

/**
 * One ref envelope.
 * @typedef {object} Envelope
 * @property {Uint8Array} objectId 16 bytes.
 * @property {Owner} owner
 * @property {Location} location
 * @property {number | bigint} size The object's size in bytes, 0 … 2^63−1. {@link decode} gives a number up to
 *   `Number.MAX_SAFE_INTEGER` (2^53−1) and a bigint above it; {@link encode} takes either.
 * @property {string} codec `"XLANG"`, `"RAW"` or `"ARROW"`.
 * @property {string} typeName The type the putter gave; `""` when untyped.
 * @property {number} checksum CRC-32 (ISO-HDLC, as zlib's crc32) of the object's bytes, 0 … 2^32−1.
 * @property {Uint8Array | null} integrityTag Reserved: `null` in version 1; at most 1024 bytes. An empty tag is not `null`.
 */

/**
 * Reads one envelope, as strictly as ENVELOPE.md's rules for readers say: every MessagePack format of the
 * right type is accepted, elements a later version appends are skipped, anything else is refused.
 *
 * The result shares no memory with `bytes`. Readers do not check that a session owner's name is empty (ENVELOPE.md).
 *
 * @param {Uint8Array | ArrayBuffer} bytes The envelope (a Node `Buffer` is a `Uint8Array`).
 * @returns {Envelope}
 * @throws {InvalidEnvelopeError} The bytes are not a valid version-1 envelope; the message names the rule.
 * @throws {TypeError} `bytes` is neither a Uint8Array nor an ArrayBuffer.
 */
export function decode(bytes) {
  const data = asBytes(bytes);
  if (data.length === 0) {
    throw new InvalidEnvelopeError(RULE.sizeLimit, "no bytes");
  }
  if (data.length > MAX_ENVELOPE_BYTES) {
    throw new InvalidEnvelopeError(RULE.sizeLimit, `${data.length} bytes; an envelope is at most ${MAX_ENVELOPE_BYTES}`);
  }

  const reader = new Reader(data);
  const count = reader.array("the envelope", 9);
  const version = reader.next();
  if (version.type !== "int" || version.value !== BigInt(VERSION)) {
    throw new InvalidEnvelopeError(RULE.version, `version ${describe(version)}; this reader reads the integer ${VERSION}`);
  }
  const objectId = reader.id("object id");

  const ownerCount = reader.array("the owner", 4);
  const kind = Number(reader.integer("owner kind", 1n, 2n));
  const namespace = reader.string("namespace");
  const name = reader.string("name");
  const incarnation = reader.id("incarnation");
  reader.skip(ownerCount - 4);
  if (kind === OwnerKind.HOLDER && name === "") {
    throw new InvalidEnvelopeError(RULE.ranges, "a holder owner has a non-empty name");
  }

  const locationCount = reader.array("the location", 2);
  const address = reader.string("address");
  const workerId = reader.id("worker id");
  reader.skip(locationCount - 2);

  const size = reader.integer("size", 0n, MAX_SIZE);
  const codec = reader.string("codec");
  if (!CODECS.includes(codec)) {
    throw new InvalidEnvelopeError(RULE.ranges, `codec ${JSON.stringify(codec)} is not one of ${CODECS.join(", ")} (compared exactly)`);
  }
  const typeName = reader.string("type name");
  const checksum = Number(reader.integer("checksum", 0n, BigInt(MAX_CHECKSUM)));
  const integrityTag = reader.tag();
  reader.skip(count - 9);

  if (reader.pos !== data.length) {
    throw new InvalidEnvelopeError(RULE.oneValue, `${data.length - reader.pos} bytes follow the envelope's one MessagePack value`);
  }

  return {
    objectId,
    owner: { kind, namespace, name, incarnation },
    location: { address, workerId },
    size: size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : size,
    codec,
    typeName,
    checksum,
    integrityTag,
  };
}

/**
 * Returns the envelope's bytes, every value in its smallest MessagePack form, so that one envelope has one
 * encoding (a `bigint` size that fits in fewer bytes is written as small as a number would be).
 *
 * @param {Envelope} envelope
 * @returns {Uint8Array} A new array of its own.
 * @throws {InvalidEnvelopeError} A field breaks the format's rules (an id that is not 16 bytes, a string over
 *   1024 UTF-8 bytes or with a lone surrogate, a holder without a name, a session with one, …): nothing a
 *   reader would refuse is ever written.
 */
export function encode(envelope) {
  if (envelope === null || typeof envelope !== "object") {
    throw new TypeError(`encode takes an envelope object; got ${envelope === null ? "null" : typeof envelope}`);
  }
  const { owner, location } = envelope;
  if (owner === null || typeof owner !== "object") {
    throw new InvalidEnvelopeError(RULE.shape, "the owner is an object { kind, namespace, name, incarnation }");
  }
  if (location === null || typeof location !== "object") {
    throw new InvalidEnvelopeError(RULE.shape, "the location is an object { address, workerId }");
  }
  const kind = owner.kind;
  if (kind !== OwnerKind.HOLDER && kind !== OwnerKind.SESSION) {
    throw new InvalidEnvelopeError(RULE.ranges, `owner kind ${String(kind)} is not 1 (holder) or 2 (session)`);
  }
  for (const [value, what] of [[owner.namespace, "namespace"], [owner.name, "name"], [location.address, "address"],
    [envelope.codec, "codec"], [envelope.typeName, "type name"]]) {
    checkString(value, what);
  }
  if (kind === OwnerKind.HOLDER && owner.name === "") {
    throw new InvalidEnvelopeError(RULE.ranges, "a holder owner has a non-empty name");
  }
  if (kind === OwnerKind.SESSION && owner.name !== "") {
    throw new InvalidEnvelopeError(RULE.sessionName, `a session owner's name is "", not ${JSON.stringify(owner.name)}`);
  }
  if (!CODECS.includes(envelope.codec)) {
    throw new InvalidEnvelopeError(RULE.ranges, `codec ${JSON.stringify(envelope.codec)} is not one of ${CODECS.join(", ")}`);
  }
  const size = checkInteger(envelope.size, "size", 0n, MAX_SIZE);
  const checksum = checkInteger(envelope.checksum, "checksum", 0n, BigInt(MAX_CHECKSUM));
  const tag = envelope.integrityTag ?? null;
  if (tag !== null) {
    if (!(tag instanceof Uint8Array)) {
      throw new InvalidEnvelopeError(RULE.types, `the integrity tag is null or a Uint8Array; got ${typeName(tag)}`);
    }
    if (tag.length > MAX_STRING_BYTES) {
      throw new InvalidEnvelopeError(RULE.strings, `the integrity tag is ${tag.length} bytes; the limit is ${MAX_STRING_BYTES}`);
    }
  }

  const value = [
    VERSION,
    checkId(envelope.objectId, "object id"),
    [kind, owner.namespace, owner.name, checkId(owner.incarnation, "incarnation")],
    [location.address, checkId(location.workerId, "worker id")],
    // A safe integer is written in its smallest form; a bigint above 2^53−1 needs uint64, which is then the smallest.
    size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : size,
    envelope.codec,
    envelope.typeName,
    Number(checksum),
    tag,
  ];
  // useBigInt64 only when a bigint is present: with it on, @msgpack/msgpack writes a *number* of 2^32 or more
  // as float64, and every bigint as a 9-byte uint64 whatever its value.
  const encoder = new Encoder({ useBigInt64: typeof value[4] === "bigint" });
  // At most 5 strings and a tag of 1024 bytes each, the envelope stays far below MAX_ENVELOPE_BYTES: no check needed.
  // encodeSharedRef's result is a view of the encoder's buffer; slice gives the caller an array of its own.
  return encoder.encodeSharedRef(value).slice();
}

function asBytes(bytes) {
  if (bytes instanceof Uint8Array) {
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  if (bytes instanceof ArrayBuffer) {
    return new Uint8Array(bytes);
  }
  throw new TypeError(`decode takes a Uint8Array or an ArrayBuffer; got ${typeName(bytes)}`);
}

function checkId(value, what) {
  if (!(value instanceof Uint8Array)) {
    throw new InvalidEnvelopeError(RULE.types, `the ${what} is a Uint8Array of ${ID_BYTES} bytes; got ${typeName(value)}`);
  }
  if (value.length !== ID_BYTES) {
    throw new InvalidEnvelopeError(RULE.types, `the ${what} is ${ID_BYTES} bytes; got ${value.length}`);
  }
  // A Buffer would be written the same; a plain Uint8Array keeps the value handed to the encoder simple.
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function checkString(value, what) {
  if (typeof value !== "string") {
    throw new InvalidEnvelopeError(RULE.types, `the ${what} is a string; got ${typeName(value)}`);
  }
  // A lone surrogate has no UTF-8 form: an encoder would replace it, and the reader would get another string.
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)) {
    throw new InvalidEnvelopeError(RULE.strings, `the ${what} holds a lone surrogate, so it has no UTF-8 form`);
  }
  const length = utf8Encoder.encode(value).length;
  if (length > MAX_STRING_BYTES) {
    throw new InvalidEnvelopeError(RULE.strings, `the ${what} is ${length} UTF-8 bytes; the limit is ${MAX_STRING_BYTES}`);
  }
}

function checkInteger(value, what, low, high) {
  let big;
  if (typeof value === "bigint") {
    big = value;
  } else if (typeof value === "number" && Number.isInteger(value)) {
    if (!Number.isSafeInteger(value)) {
      // 2^63−1 is not a number (it rounds to 2^63): a number this large may already be another value.
      throw new InvalidEnvelopeError(RULE.ranges, `the ${what} ${value} is beyond Number.MAX_SAFE_INTEGER; pass a bigint`);
    }
    big = BigInt(value);
  } else {
    throw new InvalidEnvelopeError(RULE.types, `the ${what} is an integer (number or bigint); got ${typeName(value)} ${String(value)}`);
  }
  if (big < low || big > high) {
    throw new InvalidEnvelopeError(RULE.ranges, `the ${what} ${big} is outside ${low} … ${high}`);
  }
  return big;
}

function typeName(value) {
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return value.constructor?.name ?? "object";
}

function describe(token) {
  switch (token.type) {
    case "int": return String(token.value);
    case "bool": return String(token.value);
    case "nil": return "nil";
    default: return `of MessagePack type ${token.type}`;
  }
}

/**
 * A MessagePack reader over one buffer that says which format each value has. Integers come as bigint, so
 * every width (uint64 included) compares exactly; strings and binaries come as positions, read on demand.
 */
class Reader {
  /** @param {Uint8Array} data */
  constructor(data) {
    this.data = data;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.pos = 0;
  }

  /** Checks that `n` more bytes are there; the input ends too early otherwise. */
  need(n) {
    if (this.pos + n > this.data.length) {
      throw new InvalidEnvelopeError(RULE.oneValue, `the input ends inside a MessagePack value (at byte ${this.data.length}, ${this.pos + n - this.data.length} more needed)`);
    }
  }

  u8() { this.need(1); return this.data[this.pos++]; }
  u16() { this.need(2); const v = this.view.getUint16(this.pos); this.pos += 2; return v; }
  u32() { this.need(4); const v = this.view.getUint32(this.pos); this.pos += 4; return v; }

  /** Reads one value's header: its type and, for scalars, its value; for str, bin and ext, where the payload is (skipped over). */
  next() {
    const start = this.pos;
    const b = this.u8();
    if (b <= 0x7f) return { type: "int", value: BigInt(b) };
    if (b >= 0xe0) return { type: "int", value: BigInt(b - 0x100) };
    if (b <= 0x8f) return { type: "map", length: b & 0x0f };
    if (b <= 0x9f) return { type: "array", length: b & 0x0f };
    if (b <= 0xbf) return this.payload("str", b & 0x1f);
    const v = this.view;
    switch (b) {
      case 0xc0: return { type: "nil" };
      case 0xc2: return { type: "bool", value: false };
      case 0xc3: return { type: "bool", value: true };
      case 0xc4: return this.payload("bin", this.u8());
      case 0xc5: return this.payload("bin", this.u16());
      case 0xc6: return this.payload("bin", this.u32());
      case 0xc7: { const n = this.u8(); this.need(1); this.pos += 1; return this.payload("ext", n); }
      case 0xc8: { const n = this.u16(); this.need(1); this.pos += 1; return this.payload("ext", n); }
      case 0xc9: { const n = this.u32(); this.need(1); this.pos += 1; return this.payload("ext", n); }
      case 0xca: this.need(4); this.pos += 4; return { type: "float" };
      case 0xcb: this.need(8); this.pos += 8; return { type: "float" };
      case 0xcc: return { type: "int", value: BigInt(this.u8()) };
      case 0xcd: return { type: "int", value: BigInt(this.u16()) };
      case 0xce: return { type: "int", value: BigInt(this.u32()) };
      case 0xcf: { this.need(8); const x = v.getBigUint64(this.pos); this.pos += 8; return { type: "int", value: x }; }
      case 0xd0: { this.need(1); const x = v.getInt8(this.pos); this.pos += 1; return { type: "int", value: BigInt(x) }; }
      case 0xd1: { this.need(2); const x = v.getInt16(this.pos); this.pos += 2; return { type: "int", value: BigInt(x) }; }
      case 0xd2: { this.need(4); const x = v.getInt32(this.pos); this.pos += 4; return { type: "int", value: BigInt(x) }; }
      case 0xd3: { this.need(8); const x = v.getBigInt64(this.pos); this.pos += 8; return { type: "int", value: x }; }
      case 0xd4: return this.payload("ext", 1 + 1);
      case 0xd5: return this.payload("ext", 1 + 2);
      case 0xd6: return this.payload("ext", 1 + 4);
      case 0xd7: return this.payload("ext", 1 + 8);
      case 0xd8: return this.payload("ext", 1 + 16);
      case 0xd9: return this.payload("str", this.u8());
      case 0xda: return this.payload("str", this.u16());
      case 0xdb: return this.payload("str", this.u32());
      case 0xdc: return { type: "array", length: this.u16() };
      case 0xdd: return { type: "array", length: this.u32() };
      case 0xde: return { type: "map", length: this.u16() };
      case 0xdf: return { type: "map", length: this.u32() };
      default: // 0xc1, the one byte MessagePack never uses.
        throw new InvalidEnvelopeError(RULE.oneValue, `byte ${start} is 0xc1, which is no MessagePack format`);
    }
  }

  payload(type, length) {
    this.need(length);
    const start = this.pos;
    this.pos += length;
    return { type, start, length };
  }

  array(what, min) {
    const token = this.next();
    if (token.type !== "array") {
      throw new InvalidEnvelopeError(RULE.shape, `${what} is an array; got ${describe(token)}`);
    }
    if (token.length < min) {
      throw new InvalidEnvelopeError(RULE.shape, `${what} has at least ${min} elements; got ${token.length}`);
    }
    return token.length;
  }

  integer(what, low, high) {
    const token = this.next();
    if (token.type !== "int") {
      throw new InvalidEnvelopeError(RULE.types, `the ${what} is an integer; got ${describe(token)}`);
    }
    if (token.value < low || token.value > high) {
      throw new InvalidEnvelopeError(RULE.ranges, `the ${what} ${token.value} is outside ${low} … ${high}`);
    }
    return token.value;
  }

  string(what) {
    const token = this.next();
    if (token.type !== "str") {
      throw new InvalidEnvelopeError(RULE.types, `the ${what} is a str; got ${describe(token)}`);
    }
    if (token.length > MAX_STRING_BYTES) {
      throw new InvalidEnvelopeError(RULE.strings, `the ${what} is ${token.length} UTF-8 bytes; the limit is ${MAX_STRING_BYTES}`);
    }
    try {
      return utf8.decode(this.data.subarray(token.start, token.start + token.length));
    } catch (error) {
      throw new InvalidEnvelopeError(RULE.strings, `the ${what} is not valid UTF-8 (${error.message})`);
    }
  }

  id(what) {
    const token = this.next();
    if (token.type !== "bin") {
      throw new InvalidEnvelopeError(RULE.types, `the ${what} is a bin; got ${describe(token)}`);
    }
    if (token.length !== ID_BYTES) {
      throw new InvalidEnvelopeError(RULE.types, `the ${what} is ${ID_BYTES} bytes; got ${token.length}`);
    }
    return this.data.slice(token.start, token.start + token.length);
  }

  tag() {
    const token = this.next();
    if (token.type === "nil") {
      return null;
    }
    if (token.type !== "bin") {
      throw new InvalidEnvelopeError(RULE.types, `the integrity tag is nil or a bin; got ${describe(token)}`);
    }
    if (token.length > MAX_STRING_BYTES) {
      throw new InvalidEnvelopeError(RULE.strings, `the integrity tag is ${token.length} bytes; the limit is ${MAX_STRING_BYTES}`);
    }
    return this.data.slice(token.start, token.start + token.length);
  }

  /**
   * Skips `count` values of any type (rule 8), nested or not, without looking inside: a loop with a count of
   * values still to skip rather than recursion, so no nesting depth that fits in 16 KiB can exhaust the stack.
   */
  skip(count) {
    let pending = count;
    while (pending > 0) {
      const token = this.next();
      pending -= 1;
      if (token.type === "array") pending += token.length;
      else if (token.type === "map") pending += 2 * token.length;
    }
  }
}
