// The golden vectors of protos/vectors against envelope.mjs, the format's limits at their boundaries, and the
// places where a JavaScript reader or writer could go wrong (float vs integer, bigint sizes, BOMs, lone surrogates).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { encode as msgpackEncode, decode as msgpackDecode } from "@msgpack/msgpack";

import {
  decode, encode, InvalidEnvelopeError, MAX_ENVELOPE_BYTES, MAX_STRING_BYTES, OwnerKind,
} from "../envelope.mjs";

const VECTORS = process.env.RAYSHARING_VECTORS
  || resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "protos", "vectors");

// Compatible vectors decode to the value of the vector they were written from; a writer produces that one's bytes.
const COMPATIBLE_BASES = { "compat-extra-fields": "holder-xlang", "compat-wide-headers": "session-raw" };

// The rule of ENVELOPE.md's "Rules for readers" each invalid vector breaks, so a refusal for the wrong reason fails.
const INVALID_RULES = {
  "invalid-empty": 1,
  "invalid-truncated": 2,
  "invalid-trailing-bytes": 2,
  "invalid-not-array": 3,
  "invalid-too-few-fields": 3,
  "invalid-owner-not-array": 3,
  "invalid-version-0": 4,
  "invalid-version-2": 4,
  "invalid-version-true": 4,
  "invalid-id-length": 5,
  "invalid-id-as-string": 5,
  "invalid-size-as-string": 5,
  "invalid-size-float": 5,
  "invalid-tag-as-string": 5,
  "invalid-owner-kind-3": 6,
  "invalid-holder-without-name": 6,
  "invalid-negative-size": 6,
  "invalid-size-over-int64": 6,
  "invalid-checksum-over-uint32": 6,
  "invalid-unknown-codec": 6,
  "invalid-codec-lowercase": 6,
  "invalid-bad-utf8": 7,
};

function readHex(name) {
  const text = readFileSync(join(VECTORS, `${name}.hex`), "utf8");
  const hex = text.split("\n").map((line) => line.replace(/#.*/, "")).join("").replace(/\s+/g, "");
  assert.match(hex, /^([0-9a-fA-F]{2})*$/, `${name}.hex holds hexadecimal byte pairs`);
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

function fromHex(hex) {
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

function toHex(bytes) {
  return Buffer.from(bytes).toString("hex");
}

/** NAME.json as an Envelope. The size is read from the text, since JSON.parse rounds integers above 2^53. */
function readJson(name) {
  const text = readFileSync(join(VECTORS, `${name}.json`), "utf8");
  const value = JSON.parse(text);
  assert.equal(value.version, 1, `${name}.json is a version-1 envelope`);
  const size = BigInt(/"size"\s*:\s*(\d+)/.exec(text)[1]);
  return {
    objectId: fromHex(value.object_id),
    owner: {
      kind: value.owner.kind,
      namespace: value.owner.namespace,
      name: value.owner.name,
      incarnation: fromHex(value.owner.incarnation),
    },
    location: { address: value.location.address, workerId: fromHex(value.location.worker_id) },
    size: size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : size,
    codec: value.codec,
    typeName: value.type_name,
    checksum: value.checksum,
    integrityTag: value.integrity_tag === null ? null : fromHex(value.integrity_tag),
  };
}

function names(prefix) {
  return readdirSync(VECTORS).filter((f) => f.endsWith(".hex")).map((f) => f.slice(0, -4)).sort()
    .filter((n) => prefix === undefined || n.startsWith(prefix));
}

const validNames = () => names().filter((n) => !n.startsWith("invalid-") && !n.startsWith("compat-"));

/** Asserts that `action` throws an InvalidEnvelopeError for reader rule `rule` (a number) or the exact rule text. */
function assertRefused(action, rule) {
  assert.throws(action, (error) => {
    assert.ok(error instanceof InvalidEnvelopeError, `an InvalidEnvelopeError, not ${error}`);
    if (typeof rule === "number") {
      assert.ok(error.rule.startsWith(`reader rule ${rule} `), `reader rule ${rule}, not: ${error.message}`);
    } else if (rule !== undefined) {
      assert.equal(error.rule, rule, error.message);
    }
    assert.ok(error.message.startsWith(error.rule), "the message starts with the rule");
    return true;
  });
}

const base = (changes = {}) => ({ ...readJson("holder-xlang"), ...changes });
const session = (changes = {}) => ({ ...readJson("session-raw"), ...changes });

/** holder-xlang's nine elements as @msgpack/msgpack reads them, to change and pack again. */
function rawElements() {
  return msgpackDecode(encode(base()));
}

test("the vectors are there", () => {
  // A run that found no vector cannot pass.
  assert.ok(names("invalid-").length >= 20, `invalid vectors in ${VECTORS}`);
  assert.ok(validNames().length >= 5, `valid vectors in ${VECTORS}`);
  for (const name of Object.keys(COMPATIBLE_BASES)) {
    assert.ok(names().includes(name), `${name}.hex in ${VECTORS}`);
  }
});

test("valid vectors decode to their json and encode to their bytes", async (t) => {
  for (const name of validNames()) {
    await t.test(`vector ${name}`, () => {
      const data = readHex(name);
      assert.deepEqual(decode(data), readJson(name));
      assert.equal(toHex(encode(readJson(name))), toHex(data));
    });
  }
});

test("compatible vectors decode to their json and re-encode as a writer would", async (t) => {
  for (const [name, baseName] of Object.entries(COMPATIBLE_BASES)) {
    await t.test(`vector ${name}`, () => {
      const decoded = decode(readHex(name));
      assert.deepEqual(decoded, readJson(name));
      assert.equal(toHex(encode(decoded)), toHex(readHex(baseName)));
    });
  }
});

test("invalid vectors are refused for the rule they break", async (t) => {
  for (const name of names("invalid-")) {
    await t.test(`vector ${name}`, () => {
      assertRefused(() => decode(readHex(name)), INVALID_RULES[name]);
    });
  }
});

test("strings of 1024 UTF-8 bytes pass and 1025 are refused, both ways", async (t) => {
  const fields = {
    namespace: (s) => base({ owner: { ...base().owner, namespace: s } }),
    name: (s) => base({ owner: { ...base().owner, name: s } }),
    address: (s) => base({ location: { ...base().location, address: s } }),
    "type name": (s) => base({ typeName: s }),
  };
  const positions = { namespace: [2, 1], name: [2, 2], address: [3, 0], "type name": [6] };
  // Bytes, not characters: 512 two-byte "é" and 256 four-byte "🗄" are 1024 bytes each.
  for (const atLimit of ["é".repeat(512), "🗄".repeat(256), "x".repeat(1024)]) {
    for (const [field, make] of Object.entries(fields)) {
      await t.test(`${field}: ${atLimit.length} UTF-16 units, 1024 bytes`, () => {
        assert.deepEqual(decode(encode(make(atLimit))), make(atLimit));
        assertRefused(() => encode(make(atLimit + "x")), 7);
        const raw = rawElements();
        const [i, j] = positions[field];
        if (j === undefined) raw[i] = atLimit + "x"; else raw[i][j] = atLimit + "x";
        assertRefused(() => decode(msgpackEncode(raw)), 7);
      });
    }
  }
});

test("integrity tags of 1024 bytes pass and 1025 are refused, both ways", () => {
  const tag = new Uint8Array(MAX_STRING_BYTES).fill(7);
  assert.deepEqual(decode(encode(base({ integrityTag: tag }))).integrityTag, tag);
  assertRefused(() => encode(base({ integrityTag: new Uint8Array(MAX_STRING_BYTES + 1) })), 7);
  const raw = rawElements();
  raw[8] = new Uint8Array(MAX_STRING_BYTES + 1);
  assertRefused(() => decode(msgpackEncode(raw)), 7);
});

test("envelopes of 16 KiB pass and one byte more is refused", () => {
  const raw = rawElements();
  const head = msgpackEncode([...raw, new Uint8Array(0)]).length;
  // An appended bin (rule 8) pads the envelope to exactly the limit: its header grows from 2 bytes (bin8) to 3 (bin16).
  const padding = MAX_ENVELOPE_BYTES - head - 1;
  const exact = msgpackEncode([...raw, new Uint8Array(padding)]);
  assert.equal(exact.length, MAX_ENVELOPE_BYTES);
  assert.deepEqual(decode(exact), base());
  const over = msgpackEncode([...raw, new Uint8Array(padding + 1)]);
  assert.equal(over.length, MAX_ENVELOPE_BYTES + 1);
  assertRefused(() => decode(over), 1);
});

test("the writer refuses what a reader would", async (t) => {
  const cases = {
    "a 15-byte object id": [{ objectId: new Uint8Array(15) }, 5],
    "an object id as a hex string": [{ objectId: "00112233445566778899aabbccddeeff" }, 5],
    "an incarnation as a plain array": [{ owner: { ...base().owner, incarnation: Array(16).fill(0) } }, 5],
    "a 17-byte worker id": [{ location: { ...base().location, workerId: new Uint8Array(17) } }, 5],
    "codec raw": [{ codec: "raw" }, 6],
    "codec JSON": [{ codec: "JSON" }, 6],
    "size -1": [{ size: -1 }, 6],
    "size 2^63": [{ size: 1n << 63n }, 6],
    "size 2^53 as a number": [{ size: 2 ** 53 }, 6],
    "size 1.5": [{ size: 1.5 }, 5],
    "size as the string 100": [{ size: "100" }, 5],
    "checksum 2^32": [{ checksum: 2 ** 32 }, 6],
    "checksum -1": [{ checksum: -1 }, 6],
    "owner kind 3": [{ owner: { ...base().owner, kind: 3 } }, 6],
    "owner kind true": [{ owner: { ...base().owner, kind: true } }, 6],
    "a holder without a name": [{ owner: { ...base().owner, name: "" } }, 6],
    "a session owner with a name": [{ owner: { ...session().owner, name: "named" } }, "writer rule 4 (a session owner's name is empty)"],
    "a 1025-byte integrity tag": [{ integrityTag: new Uint8Array(1025) }, 7],
    "an integrity tag as a string": [{ integrityTag: "abcd" }, 5],
    "a type name that is not a string": [{ typeName: 42 }, 5],
    "a lone high surrogate": [{ typeName: "List<\uD83D>" }, 7],
    "a lone low surrogate": [{ owner: { ...base().owner, namespace: "\uDDC4" } }, 7],
  };
  for (const [what, [changes, rule]] of Object.entries(cases)) {
    await t.test(what, () => assertRefused(() => encode(base(changes)), rule));
  }
});

test("the writer writes integers and headers in their smallest form", async (t) => {
  // [size, its MessagePack bytes]: each boundary of fixint, uint8, uint16, uint32 and uint64, as numbers and bigints.
  const sizes = [
    [0, "00"], [127, "7f"], [128, "cc80"], [255, "ccff"], [256, "cd0100"], [65535, "cdffff"], [65536, "ce00010000"],
    [2 ** 32 - 1, "ceffffffff"], [2 ** 32, "cf0000000100000000"], [Number.MAX_SAFE_INTEGER, "cf001fffffffffffff"],
    [100n, "64"], [2n ** 32n, "cf0000000100000000"], [2n ** 53n, "cf0020000000000000"], [(1n << 63n) - 1n, "cf7fffffffffffffff"],
  ];
  for (const [size, hex] of sizes) {
    await t.test(`size ${size}${typeof size === "bigint" ? "n" : ""}`, () => {
      const bytes = toHex(encode(session({ size })));
      // The size follows the location's worker id; the codec "RAW" (a3 52 41 57) follows the size.
      assert.ok(bytes.includes(`${toHex(session().location.workerId)}${hex}a3524157`), `size ${size} written as ${hex} in ${bytes}`);
      const decoded = decode(fromHex(bytes)).size;
      assert.equal(BigInt(decoded), BigInt(size));
      assert.equal(typeof decoded, BigInt(size) > BigInt(Number.MAX_SAFE_INTEGER) ? "bigint" : "number");
    });
  }
  for (const [length, header] of [[31, "bf"], [32, "d920"], [255, "d9ff"], [256, "da0100"], [1024, "da0400"]]) {
    await t.test(`a ${length}-byte type name`, () => {
      const bytes = toHex(encode(base({ typeName: "t".repeat(length) })));
      assert.ok(bytes.includes(`a5584c414e47${header}${"74".repeat(length)}ce`), `str header ${header}`);
    });
  }
  for (const [length, header] of [[0, "c400"], [255, "c4ff"], [256, "c50100"]]) {
    await t.test(`a ${length}-byte integrity tag`, () => {
      const bytes = toHex(encode(base({ integrityTag: new Uint8Array(length).fill(0xab) })));
      assert.ok(bytes.endsWith(`${header}${"ab".repeat(length)}`), `bin header ${header}`);
    });
  }
});

test("the reader keeps what JavaScript could lose", async (t) => {
  await t.test("an empty integrity tag is not nil", () => {
    assert.deepEqual(decode(encode(base({ integrityTag: new Uint8Array(0) }))).integrityTag, new Uint8Array(0));
  });
  await t.test("a leading byte-order mark stays part of the string", () => {
    const value = base({ owner: { ...base().owner, namespace: "\uFEFFdefault" } });
    assert.equal(decode(encode(value)).owner.namespace, "\uFEFFdefault");
  });
  await t.test("the result shares no memory with the input", () => {
    const data = Buffer.from(readHex("holder-xlang"));
    const decoded = decode(data);
    data.fill(0);
    assert.deepEqual(decoded, readJson("holder-xlang"));
    assert.equal(Object.getPrototypeOf(decoded.objectId), Uint8Array.prototype);
  });
  await t.test("an ArrayBuffer and a view into a larger buffer read the same", () => {
    const data = readHex("arrow-tagged");
    const padded = new Uint8Array(data.length + 8);
    padded.set(data, 4);
    assert.deepEqual(decode(data.buffer.slice(0)), readJson("arrow-tagged"));
    assert.deepEqual(decode(padded.subarray(4, 4 + data.length)), readJson("arrow-tagged"));
  });
  await t.test("input that is not bytes is a TypeError", () => {
    assert.throws(() => decode("9901"), TypeError);
    assert.throws(() => encode(null), TypeError);
  });
});

test("the reader refuses wrong types that JavaScript would blur", async (t) => {
  const replace = (index, bytes) => {
    // holder-xlang with its element `index` (size 4, checksum 7) replaced by raw MessagePack bytes.
    const raw = rawElements();
    const marker = "MARKER-PLACEHOLDER";
    raw[index] = marker;
    const hex = toHex(msgpackEncode(raw)).replace(toHex(msgpackEncode(marker)), bytes);
    return fromHex(hex);
  };
  const cases = {
    "size as float32 100.0": [replace(4, "ca42c80000"), 5],
    "size as float64 100.0": [replace(4, "cb4059000000000000"), 5],
    "size as true": [replace(4, "c3"), 5],
    "size as nil": [replace(4, "c0"), 5],
    "checksum as a bin": [replace(7, "c40100"), 5],
    "size -1 as int64": [replace(4, "d3ffffffffffffffff"), 6],
    "size 2^64-1": [replace(4, "cfffffffffffffffff"), 6],
    "codec as a bin": [replace(5, "c403524157"), 5],
    "an overlong UTF-8 slash in the type name": [replace(6, "a2c0af"), 7],
    "a UTF-8-encoded surrogate in the type name": [replace(6, "a3eda080"), 7],
    "a code point above U+10FFFF in the type name": [replace(6, "a4f4908080"), 7],
    "the never-used byte c1": [replace(6, "c1"), 2],
  };
  for (const [what, [bytes, rule]] of Object.entries(cases)) {
    await t.test(what, () => assertRefused(() => decode(bytes), rule));
  }
  await t.test("version 1 as int64 is read; as float64 1.0 it is refused", () => {
    const data = readHex("holder-xlang");
    const wide = fromHex(`99d30000000000000001${toHex(data.subarray(2))}`);
    assert.deepEqual(decode(wide), readJson("holder-xlang"));
    assertRefused(() => decode(fromHex(`99cb3ff0000000000000${toHex(data.subarray(2))}`)), 4);
  });
  await t.test("a session owner's name is not checked by readers", () => {
    // ENVELOPE.md rule 6: "Readers do not check that a session owner's name is empty." The writer refuses it.
    const raw = msgpackDecode(encode(session()));
    raw[2][2] = "named";
    assert.equal(decode(msgpackEncode(raw)).owner.name, "named");
  });
});

test("elements a later version appends are skipped, whatever they are", async (t) => {
  const data = readHex("holder-xlang");
  // holder-xlang is fixarray 9 (99): appended elements go after its last byte, with the count raised to match.
  const appended = (count, hex) => fromHex(`${(0x90 + 9 + count).toString(16)}${toHex(data.subarray(1))}${hex}`);
  const cases = {
    "a map with an array key and a bin key": [1, "82" + "920102" + "01" + "c40101" + "c0"],
    "a map with a duplicate key": [1, "82a16101a16102"],
    "a map with a map key": [1, "81" + "81a16101" + "c2"],
    "a fixext 1 and an ext 8": [2, "d40105" + "c70302616263"],
    "a timestamp extension of a length timestamps do not have": [1, "c703ff010203"],
    "float32 and float64": [2, "ca3f800000" + "cb3ff0000000000000"],
    "a str that is not UTF-8": [1, "a2c328"],
    "nesting 1000 levels deep": [1, "91".repeat(999) + "90"],
    "array16 and map32 headers": [2, "dc0001c0" + "df00000001c0c0"],
  };
  for (const [what, [count, hex]] of Object.entries(cases)) {
    await t.test(what, () => assert.deepEqual(decode(appended(count, hex)), readJson("holder-xlang")));
  }
  await t.test("an appended element that is cut short is refused", () => {
    assertRefused(() => decode(appended(1, "92c0")), 2);
    assertRefused(() => decode(appended(1, "dd ffffffff".replace(" ", ""))), 2);
    assertRefused(() => decode(appended(1, "c70501")), 2);
  });
});

test("OwnerKind names the two kinds", () => {
  assert.equal(decode(readHex("holder-xlang")).owner.kind, OwnerKind.HOLDER);
  assert.equal(decode(readHex("session-raw")).owner.kind, OwnerKind.SESSION);
});
