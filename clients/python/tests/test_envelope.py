"""The golden vectors of protos/vectors against raysharing.envelope, and the format's limits at their boundaries."""

import json
import os
import re
import unittest

import msgpack

from raysharing import envelope as env

VECTORS = os.environ.get("RAYSHARING_VECTORS") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "protos", "vectors")

# Compatible vectors decode to the value of the vector they were written from; a writer produces that one's bytes.
COMPATIBLE_BASES = {"compat-extra-fields": "holder-xlang", "compat-wide-headers": "session-raw"}


def read_hex(name):
    with open(os.path.join(VECTORS, name + ".hex"), encoding="utf-8") as file:
        return bytes.fromhex("".join(re.sub(r"#.*", "", file.read()).split()))


def read_json(name):
    with open(os.path.join(VECTORS, name + ".json"), encoding="utf-8") as file:
        value = json.load(file)
    owner, location = value["owner"], value["location"]
    return env.Envelope(
        object_id=bytes.fromhex(value["object_id"]),
        owner=env.Owner(env.OwnerKind(owner["kind"]), owner["namespace"], owner["name"], bytes.fromhex(owner["incarnation"])),
        location=env.Location(location["address"], bytes.fromhex(location["worker_id"])),
        size=value["size"],
        codec=value["codec"],
        type_name=value["type_name"],
        checksum=value["checksum"],
        integrity_tag=None if value["integrity_tag"] is None else bytes.fromhex(value["integrity_tag"]),
    )


def names(prefix=None):
    found = sorted(f[:-4] for f in os.listdir(VECTORS) if f.endswith(".hex"))
    return [n for n in found if prefix is None or n.startswith(prefix)]


class GoldenVectors(unittest.TestCase):
    def test_vectors_are_there(self):
        # A run that found no vector cannot pass.
        self.assertGreaterEqual(len(names("invalid-")), 20)
        self.assertGreaterEqual(len([n for n in names() if not n.startswith(("invalid-", "compat-"))]), 5)

    def test_valid_vectors_decode_to_their_json_and_encode_to_their_bytes(self):
        for name in names():
            if name.startswith(("invalid-", "compat-")):
                continue
            with self.subTest(vector=name):
                data = read_hex(name)
                self.assertEqual(env.decode(data), read_json(name))
                self.assertEqual(env.encode(read_json(name)).hex(), data.hex())

    def test_compatible_vectors_decode_to_their_json_and_reencode_as_a_writer_would(self):
        for name, base in COMPATIBLE_BASES.items():
            with self.subTest(vector=name):
                decoded = env.decode(read_hex(name))
                self.assertEqual(decoded, read_json(name))
                self.assertEqual(env.encode(decoded), read_hex(base))

    def test_invalid_vectors_are_refused(self):
        for name in names("invalid-"):
            with self.subTest(vector=name):
                with self.assertRaises(env.InvalidEnvelopeError):
                    env.decode(read_hex(name))


class Limits(unittest.TestCase):
    def base(self, **changes):
        value = read_json("holder-xlang")
        return value if not changes else __import__("dataclasses").replace(value, **changes)

    def test_strings_of_1024_bytes_pass_and_1025_are_refused_both_ways(self):
        self.assertEqual(env.decode(env.encode(self.base(type_name="é" * 512))).type_name, "é" * 512)
        with self.assertRaises(env.InvalidEnvelopeError):
            env.encode(self.base(type_name="x" * 1025))
        raw = msgpack.unpackb(env.encode(self.base()), raw=False)
        raw[6] = "x" * 1025
        with self.assertRaises(env.InvalidEnvelopeError):
            env.decode(msgpack.packb(raw, use_bin_type=True))

    def test_envelopes_of_16_kib_pass_and_one_byte_more_is_refused(self):
        raw = msgpack.unpackb(env.encode(self.base()), raw=False)
        head = len(msgpack.packb(raw + [b""], use_bin_type=True))
        # An appended bin (rule 8) pads the envelope to exactly the limit: its header grows from 2 bytes (bin8) to 3 (bin16).
        padding = env.MAX_ENVELOPE_BYTES - head - 1
        exact = msgpack.packb(raw + [b"\0" * padding], use_bin_type=True)
        self.assertEqual(len(exact), env.MAX_ENVELOPE_BYTES)
        self.assertEqual(env.decode(exact), self.base())
        with self.assertRaises(env.InvalidEnvelopeError):
            env.decode(msgpack.packb(raw + [b"\0" * (padding + 1)], use_bin_type=True))

    def test_writer_refuses_what_a_reader_would(self):
        for changes in ({"object_id": b"\0" * 15}, {"codec": "raw"}, {"size": -1}, {"size": 2**63}, {"checksum": 2**32},
                        {"owner": env.Owner(env.OwnerKind.HOLDER, "default", "", b"\1" * 16)},
                        {"owner": env.Owner(env.OwnerKind.SESSION, "default", "named", b"\1" * 16)},
                        {"integrity_tag": b"\0" * 1025}, {"type_name": "lone \ud800 surrogate"}):
            with self.subTest(changes=repr(changes)[:60]):
                with self.assertRaises(env.InvalidEnvelopeError):
                    env.encode(self.base(**changes))

    def test_appended_elements_are_skipped_whatever_they_hold(self):
        head = env.encode(self.base())
        # The array header says 9; appended elements make it 10 (fixarray 0x99 -> 0x9a), followed by the element.
        self.assertEqual(head[0], 0x99)
        appended = {
            "a map with an array as key": b"\x81\x91\x01\x02",
            "a str that is not UTF-8": b"\xa2\xff\xfe",
            "a nested map in an array": b"\x91\x81\xa1k\x81\x01\x02",
        }
        for what, element in appended.items():
            with self.subTest(what):
                self.assertEqual(env.decode(b"\x9a" + head[1:] + element), self.base())

    def test_envelope_strings_that_are_not_utf8_are_refused(self):
        head = env.encode(self.base(type_name="ab"))
        damaged = head.replace(b"\xa2ab", b"\xa2\xff\xfe")
        self.assertNotEqual(damaged, head)
        with self.assertRaises(env.InvalidEnvelopeError):
            env.decode(damaged)


if __name__ == "__main__":
    unittest.main()
