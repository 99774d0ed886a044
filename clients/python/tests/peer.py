"""A Python peer for the cross-language tests (tests/RaySharing.Tests/CrossLanguageTests.cs). It speaks in lines on stdout:

  executor --address A --holder H --key K --partitions N --size S --seed SEED [--forever] [--lease SECONDS]
      puts N partitions owned by holder H (looked up, not created) and registers them under K in index order; prints
      "PUT <index> <size> <crc32>" per partition, then "DONE <n>". With --forever it registers each partition as soon
      as it is put, prints "REGISTERED <index> <size> <crc32>" once the holder acknowledged it, and goes on until killed.
      Byte j of partition i is (SEED + 131 * i + j) % 251, so a reader in any language can check every byte.
  driver --address A --holder H --key K [--seed SEED]
      fetches K, checks that every envelope re-encodes to its own bytes, gets every partition (sizes and CRC-32s checked
      against the envelopes; with --seed every byte against the executors' pattern) and prints
      "PART <index> <size> <crc32> <codec>" per partition, then "PARTS <n>".
  holder --address A --holder H
      creates the detached holder H (or finds it) and prints "HOLDER <incarnation hex>".
  put --address A [--holder H [--key K]] (--size S --seed SEED | --value JSON)
      puts pattern bytes (RAW) or a JSON value as XLANG, registered under K when given (else the object lives only as
      long as this process's borrow: until it exits); prints "READY <envelope hex> <crc32>".
  borrow-get --address A --envelope HEX
      borrows the ref from its envelope bytes and gets it: "GOT <size> <crc32> <codec>", then for XLANG "VALUE <json>".
  timed-get --address A --envelope HEX
      gets the ref; prints "FAILED <exception class> <reason> <milliseconds>" or "GOT <size> <crc32>".
Failures print "ERROR <exception class> <reason> <message>" and exit 1.
"""

import argparse
import json
import sys
import time
import zlib

import raysharing


def pattern(seed: int, index: int, size: int) -> bytes:
    start = (seed + 131 * index) % 251
    return (bytes(range(251)) * (size // 251 + 2))[start:start + size]


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["executor", "driver", "holder", "put", "borrow-get", "timed-get"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--holder")
    parser.add_argument("--key")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--forever", action="store_true")
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--value")
    parser.add_argument("--envelope")
    args = parser.parse_args()
    try:
        with raysharing.connect(args.address, lease=args.lease, client_name=f"py-{args.mode}") as session:
            return run(session, args)
    except raysharing.RaySharingError as error:
        say(f"ERROR {type(error).__name__} {error.reason} {error}")
        return 1


def run(session: raysharing.Session, args: argparse.Namespace) -> int:
    if args.mode == "executor":
        holder = session.get_holder(args.holder)
        if args.forever:
            index = 0
            while True:
                data = pattern(args.seed or 0, index, args.size)
                ref = session.put(data, holder)
                holder.register(args.key, [ref])
                ref.release()
                say(f"REGISTERED {index} {len(data)} {zlib.crc32(data):08x}")
                index += 1
        refs = []
        for index in range(args.partitions):
            data = pattern(args.seed or 0, index, args.size)
            refs.append(session.put(data, holder))
            say(f"PUT {index} {len(data)} {zlib.crc32(data):08x}")
        holder.register(args.key, refs)
        session.release(*refs)
        say(f"DONE {len(refs)}")
    elif args.mode == "driver":
        holder = session.get_holder(args.holder)
        parts = holder.fetch(args.key)
        for index, part in enumerate(parts):
            # The envelope the putter's language handed on re-encodes to the same bytes here: one envelope, one encoding.
            if raysharing.encode(part.envelope) != part.envelope_bytes:
                raise raysharing.InvalidEnvelopeError(f"partition {index}'s envelope does not re-encode to its bytes")
            data = session.get(part)
            if args.seed is not None and data != pattern(args.seed, index, len(data)):
                raise raysharing.ChecksumMismatchError(f"partition {index} is not the bytes seed {args.seed} makes")
            say(f"PART {index} {len(data)} {zlib.crc32(data):08x} {part.codec}")
        session.release(*parts)
        say(f"PARTS {len(parts)}")
    elif args.mode == "holder":
        say(f"HOLDER {session.get_or_create_holder(args.holder).incarnation.hex()}")
    elif args.mode == "put":
        holder = session.get_holder(args.holder) if args.holder else None
        if args.value is not None:
            ref = session.put_value(json.loads(args.value), holder)
        else:
            ref = session.put(pattern(args.seed or 0, 0, args.size), holder)
        if args.key:
            holder.register(args.key, [ref])
        say(f"READY {ref.envelope_bytes.hex()} {ref.checksum:08x}")
    elif args.mode == "borrow-get":
        ref = session.borrow(bytes.fromhex(args.envelope))
        data = session.get(ref)
        say(f"GOT {len(data)} {zlib.crc32(data):08x} {ref.codec}")
        if ref.codec == "XLANG":
            say("VALUE " + json.dumps(session.get_value(ref), sort_keys=True))
        ref.release()
    elif args.mode == "timed-get":
        started = time.monotonic()
        try:
            data = session.get(bytes.fromhex(args.envelope))
            say(f"GOT {len(data)} {zlib.crc32(data):08x}")
        except raysharing.RaySharingError as error:
            say(f"FAILED {type(error).__name__} {error.reason} {(time.monotonic() - started) * 1000:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
