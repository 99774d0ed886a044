"""The Python side of the cross-language benchmark (benchmarks/RaySharing.Benchmarks, --python): one round of each measure.

  bench.py --address A --seconds S --large-bytes N --large-gets K

Prints one JSON object on stdout with:
  small_pairs_per_s      100-byte put (session-owned) + get + release, back to back, for S seconds, on the client's
                         defaults (the channel's Unix socket for small calls)
  small_pairs_grpc_per_s the same with the channel off: unary gRPC calls
  echo_calls_per_s       a bare gRPC unary call (the benchmark server's Echo service, 100 bytes) from this process, for S
                         seconds: what Python's gRPC stack costs per call, without RaySharing
  large_get_shm_gbps     median of K gets (new memory each) of one N-byte object through the worker's shared-memory arena
  large_get_into_shm_gbps  the same with get_into one buffer kept across the gets
  large_get_into_channel_gbps  get_into with shared memory off: a channel body (BULK_GET)
  large_get_into_grpc_gbps     get_into with shared memory and the channel off: gRPC streaming
  copy_gbps, crc32_gbps  copying N bytes into a kept bytearray, and zlib.crc32 over them, in this process alone
"""

import argparse
import json
import os
import statistics
import sys
import time
import zlib

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import raysharing  # noqa: E402

PAYLOAD = bytes(range(100))
# EchoMessage { bytes payload = 1 }: tag 0x0a, length, the bytes. Hand-encoded so the benchmark's own proto needs no stubs.
ECHO_REQUEST = b"\x0a" + bytes([len(PAYLOAD)]) + PAYLOAD


def timed_loop(seconds, step):
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        step()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def small_pairs(session, seconds):
    def pair():
        ref = session.put(PAYLOAD)
        session.get(ref)
        ref.release()

    for _ in range(200):
        pair()
    return timed_loop(seconds, pair)


def echo_calls(address, seconds):
    target = address.split("://", 1)[-1]
    with grpc.insecure_channel(target) as channel:
        echo = channel.unary_unary("/raysharing.bench.v1.Echo/Echo", request_serializer=None, response_deserializer=None)

        def call():
            echo(ECHO_REQUEST, timeout=10)

        for _ in range(200):
            call()
        return timed_loop(seconds, call)


def large_gets(session, size, gets, into):
    """The median GB/s of ``gets`` gets of one object: with ``into``, get_into one kept buffer; else get (new memory)."""
    data = os.urandom(size)
    ref = session.put(data)
    buffer = bytearray(size) if into else None
    try:
        read = (lambda: session.get_into(ref, buffer)) if into else (lambda: len(session.get(ref)))
        read()  # warm: first touches of the mapping and the buffer
        rates = []
        for _ in range(gets):
            started = time.perf_counter()
            count = read()
            rates.append(size / (time.perf_counter() - started) / 1e9)
            if count != size:
                raise RuntimeError("short get")
        return statistics.median(rates)
    finally:
        ref.release()


def local_copy_and_crc(size, repetitions):
    """The median GB/s of copying ``size`` bytes into a kept buffer, and of zlib.crc32 over them: what get_into does
    with each byte besides moving it out of the arena."""
    source = os.urandom(size)
    # Through a memoryview, as get_into copies: a bytearray's own slice assignment from bytes first makes a temporary
    # bytearray of the source, whose fresh pages would be what is measured.
    target = memoryview(bytearray(size))
    target[:] = source
    copies, crcs = [], []
    for _ in range(repetitions):
        started = time.perf_counter()
        target[:] = source
        copies.append(size / (time.perf_counter() - started) / 1e9)
        started = time.perf_counter()
        zlib.crc32(target)
        crcs.append(size / (time.perf_counter() - started) / 1e9)
    return statistics.median(copies), statistics.median(crcs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--large-bytes", type=int, default=64 << 20)
    parser.add_argument("--large-gets", type=int, default=3)
    args = parser.parse_args()
    result = {}
    with raysharing.connect(args.address, client_name="bench-python") as session:
        if not session.uses_shared_memory:
            raise RuntimeError("the benchmark's Python session did not attach shared memory")
        result["small_pairs_per_s"] = small_pairs(session, args.seconds)
        result["large_get_shm_gbps"] = large_gets(session, args.large_bytes, args.large_gets, into=False)
        result["large_get_into_shm_gbps"] = large_gets(session, args.large_bytes, args.large_gets, into=True)
    with raysharing.connect(args.address, client_name="bench-python-channel", use_shared_memory=False) as session:
        if not session.uses_channel:
            raise RuntimeError("the benchmark's Python session did not reach the worker's channel")
        result["large_get_into_channel_gbps"] = large_gets(session, args.large_bytes, args.large_gets, into=True)
    with raysharing.connect(args.address, client_name="bench-python-grpc", use_shared_memory=False, use_channel=False) as session:
        result["small_pairs_grpc_per_s"] = small_pairs(session, args.seconds)
        result["large_get_into_grpc_gbps"] = large_gets(session, args.large_bytes, args.large_gets, into=True)
    result["echo_calls_per_s"] = echo_calls(args.address, args.seconds)
    result["copy_gbps"], result["crc32_gbps"] = local_copy_and_crc(args.large_bytes, args.large_gets)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
