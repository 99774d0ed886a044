"""The session client against real workers, and its failure paths against a misbehaving in-process gRPC server.

Needs RAYSHARING_ADDRESS (a worker with the defaults: shared memory on) and RAYSHARING_SMALL_ADDRESS (a second worker
with a 4 MiB store and no shared memory); ``PythonClientTests`` (tests/RaySharing.Tests) starts both as processes.
"""

import concurrent.futures
import dataclasses
import os
import re
import socket
import struct
import threading
import time
import unittest
import zlib

import grpc
import msgpack

import raysharing
from raysharing import envelope as env
from raysharing import errors
from raysharing.v1 import objects_pb2, objects_pb2_grpc, sessions_pb2, sessions_pb2_grpc

ADDRESS = os.environ.get("RAYSHARING_ADDRESS", "")
SMALL_ADDRESS = os.environ.get("RAYSHARING_SMALL_ADDRESS", "")
ERRORS_MD = os.environ.get("RAYSHARING_ERRORS_MD") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "protos", "ERRORS.md")
SIZES = (0, 1, 100, 64 << 10, (64 << 10) + 1, 1 << 20, (1 << 20) + 1, 5 << 20)


def setUpModule():
    if not ADDRESS or not SMALL_ADDRESS:
        raise RuntimeError("RAYSHARING_ADDRESS and RAYSHARING_SMALL_ADDRESS must name running workers (PythonClientTests starts them)")


def pattern(size, seed):
    start = seed % 251
    return (bytes(range(251)) * (size // 251 + 2))[start:start + size]


class SessionTests(unittest.TestCase):
    """Every test on the client's defaults: the binary channel for small calls and bodies, shared memory on this host."""

    OPTIONS = {}
    def setUp(self):
        self.sessions = []

    def tearDown(self):
        for session in self.sessions:
            session.close()

    def connect(self, address=None, **options):
        options = {**self.OPTIONS, **options}
        options.setdefault("timeout", 10.0)
        session = raysharing.connect(address or ADDRESS, **options)
        self.sessions.append(session)
        return session

    def holder(self, session, lifetime=raysharing.HolderLifetime.DETACHED):
        return session.get_or_create_holder(f"py-{self.id().rsplit('.', 1)[-1]}-{os.urandom(4).hex()}", lifetime=lifetime)

    # ---- Sessions and leases ----

    def test_open_reports_the_worker_and_attaches_shared_memory_on_its_host(self):
        session = self.connect()
        self.assertEqual(len(session.session_id), 16)
        self.assertEqual(len(session.worker_id), 16)
        self.assertTrue(session.worker_address.startswith("http://"))
        self.assertTrue(session.uses_shared_memory)
        self.assertEqual(session.uses_channel, self.OPTIONS.get("use_channel", True))
        self.assertFalse(self.connect(use_shared_memory=False).uses_shared_memory)
        self.assertFalse(self.connect(SMALL_ADDRESS).uses_shared_memory)

    def test_lease_is_renewed_in_the_background(self):
        session = self.connect(lease=1.0)
        self.assertAlmostEqual(session.lease, 1.0, places=3)
        holder = self.holder(session, raysharing.HolderLifetime.SESSION)
        time.sleep(3.5)  # several leases: only renewals keep the session and its holder alive
        self.assertEqual(session.get_holder(holder.name).incarnation, holder.incarnation)

    def test_calls_after_close_raise_session_expired_and_close_is_idempotent(self):
        session = self.connect()
        session.close()
        session.close()
        with self.assertRaises(raysharing.SessionExpiredError):
            session.stats()

    def test_session_ended_by_the_worker_raises_session_expired(self):
        session = self.connect()
        sessions_pb2_grpc.SessionsStub(session._grpc).Close(sessions_pb2.CloseSessionRequest(), metadata=session._metadata, timeout=5)
        with self.assertRaises(raysharing.SessionExpiredError) as raised:
            session.stats()
        self.assertEqual(raised.exception.reason, "SESSION_EXPIRED")

    def test_nothing_listening_raises_worker_unavailable_within_the_timeout(self):
        started = time.monotonic()
        with self.assertRaises(raysharing.WorkerUnavailableError) as raised:
            raysharing.connect("http://127.0.0.1:1", timeout=2.0)
        self.assertTrue(raised.exception.transient)
        self.assertLess(time.monotonic() - started, 3.0)

    def test_session_objects_and_session_holders_end_with_the_session(self):
        owner = self.connect()
        session_owned = owner.put(b"mine")
        holder = self.holder(owner, raysharing.HolderLifetime.SESSION)
        held = owner.put(b"held", holder)
        other = self.connect()
        other.borrow(held.envelope_bytes)
        owner.close()
        with self.assertRaises(raysharing.OwnerDiedError):
            other.get(session_owned)
        with self.assertRaises(raysharing.OwnerDiedError) as raised:
            other.get(held)
        self.assertEqual(raised.exception.holder_name, holder.name)
        with self.assertRaises(raysharing.HolderNotFoundError):
            other.get_holder(holder.name)

    # ---- Holders ----

    def test_get_or_create_returns_the_live_holder_and_get_finds_it(self):
        session = self.connect()
        holder = self.holder(session)
        again = session.get_or_create_holder(holder.name)
        self.assertEqual(again.incarnation, holder.incarnation)
        self.assertEqual(session.get_holder(holder.name).incarnation, holder.incarnation)
        self.assertIn(holder.name, [h.name for h in session.list_holders()])
        self.assertEqual(holder.namespace, "default")

    def test_missing_holder_raises_holder_not_found_with_its_name(self):
        session = self.connect()
        with self.assertRaises(raysharing.HolderNotFoundError) as raised:
            session.get_holder("no-such-holder-" + os.urandom(4).hex())
        self.assertTrue(raised.exception.holder_name.startswith("no-such-holder-"))

    def test_names_and_namespaces_are_any_utf8(self):
        session = self.connect(namespace="équipe")
        holder = session.get_or_create_holder("数据持有者🗄-" + os.urandom(2).hex())
        ref = session.put(b"x", holder)
        self.assertEqual(ref.owner.namespace, "équipe")
        self.assertEqual(ref.owner.name, holder.name)
        holder.kill()
        with self.assertRaises(raysharing.OwnerDiedError) as raised:
            session.get(ref)
        self.assertEqual(raised.exception.holder_namespace, "équipe")
        self.assertEqual(raised.exception.holder_name, holder.name)

    def test_bad_names_are_refused(self):
        session = self.connect()
        with self.assertRaises(ValueError):
            session.get_or_create_holder("")
        with self.assertRaises(TypeError):
            session.get_or_create_holder(b"bytes")
        with self.assertRaises(raysharing.InvalidRequestError):
            session.get_or_create_holder("tab\there")

    def test_arguments_of_the_wrong_type_or_form_are_refused_before_any_call(self):
        session = self.connect()
        holder = self.holder(session)
        ref = session.put(b"x", holder)
        with self.assertRaises(TypeError):
            session.put(b"x", owner=holder.name)
        with self.assertRaises(TypeError):
            holder.register("k", [ref.envelope_bytes])
        with self.assertRaises(TypeError):
            session.get(5)
        with self.assertRaises(ValueError):
            session.get_or_create_holder("lone \ud800 surrogate")
        with self.assertRaises(TypeError):
            session.get_holder(holder.name, namespace=None)
        for address, error in ((None, TypeError), (1234, TypeError), ("https://127.0.0.1:1", ValueError), ("http://127.0.0.1:1/path", ValueError)):
            with self.subTest(address=address):
                with self.assertRaises(error):
                    raysharing.connect(address)

    def test_refs_and_holders_of_another_session_are_refused_and_keep_their_borrows(self):
        session, other = self.connect(), self.connect()
        holder = self.holder(session)
        ref = session.put(b"mine", holder)
        with self.assertRaises(ValueError):
            other.release(ref)
        self.assertFalse(ref.released)
        with self.assertRaises(ValueError):
            other.put(b"x", owner=holder)
        ref.release()
        self.assertTrue(ref.released)
        with self.assertRaises(raysharing.ObjectFreedError):
            other.get(ref)

    def test_register_fetch_keys_and_unregister(self):
        session = self.connect()
        holder = self.holder(session)
        refs = [session.put(pattern(100, i), holder) for i in range(5)]
        self.assertEqual(holder.register("k", refs[:3]), 3)
        self.assertEqual(holder.register("k", refs[3:]), 5)
        fetched = holder.fetch("k")
        self.assertEqual([r.object_id for r in fetched], [r.object_id for r in refs])
        self.assertEqual([session.get(r) for r in fetched], [pattern(100, i) for i in range(5)])
        self.assertEqual(holder.keys(), ["k"])
        self.assertEqual(holder.unregister("k"), 5)
        self.assertEqual(holder.unregister("k"), 0)
        with self.assertRaises(raysharing.KeyNotFoundError) as raised:
            holder.fetch("k")
        self.assertEqual(raised.exception.key, "k")
        self.assertEqual(holder.lost_refs(), [])

    def test_fetch_reads_a_long_list_in_pages(self):
        session = self.connect()
        holder = self.holder(session)
        ref = session.put(b"one", holder)
        envelope_bytes = len(ref.envelope_bytes)
        count = (9 << 20) // envelope_bytes  # more than two 4 MiB pages and two register batches
        holder.register("many", [ref] * count)
        fetched = holder.fetch("many")
        self.assertEqual(len(fetched), count)
        self.assertTrue(all(r.object_id == ref.object_id for r in fetched))
        self.assertEqual(fetched[-1].envelope, ref.envelope)
        session.release(*fetched)  # more ids than one release call carries
        self.assertTrue(all(r.released for r in fetched))

    def test_register_of_a_ref_another_owner_owns_raises_not_owner(self):
        session = self.connect()
        holder = self.holder(session)
        other = self.holder(session)
        with self.assertRaises(raysharing.NotOwnerError):
            holder.register("k", [session.put(b"session-owned")])
        with self.assertRaises(raysharing.NotOwnerError):
            holder.register("k", [session.put(b"other's", other)])
        with self.assertRaises(raysharing.KeyNotFoundError):
            holder.fetch("k")

    def test_kill_frees_the_holders_objects_and_pins_handles_to_their_incarnation(self):
        session = self.connect()
        holder = self.holder(session)
        refs = [session.put(pattern(2 << 20, i), holder) for i in range(2)]
        holder.register("k", refs)
        self.assertEqual(holder.kill(), 2)
        for ref in refs:
            with self.assertRaises(raysharing.OwnerDiedError) as raised:
                session.get(ref)
            self.assertEqual(raised.exception.incarnation, holder.incarnation)
            self.assertEqual(raised.exception.object_id, ref.object_id)
        again = session.get_or_create_holder(holder.name)
        self.assertNotEqual(again.incarnation, holder.incarnation)
        with self.assertRaises(raysharing.OwnerDiedError):
            holder.fetch("k")
        with self.assertRaises(raysharing.OwnerDiedError):
            session.put(b"late", holder)

    # ---- Objects ----

    def test_raw_round_trip_every_size_and_transport(self):
        for options in ({}, {"use_shared_memory": False}):
            session = self.connect(**options)
            holder = self.holder(session)
            for size in SIZES:
                with self.subTest(size=size, shared_memory=session.uses_shared_memory, channel=session.uses_channel):
                    data = pattern(size, size)
                    ref = session.put(data, holder)
                    self.assertEqual((ref.size, ref.codec, ref.checksum), (size, "RAW", zlib.crc32(data)))
                    self.assertEqual(ref.owner.kind, raysharing.OwnerKind.HOLDER)
                    self.assertEqual(session.get(ref), data)
                    self.assertEqual(session.get(ref.envelope_bytes), data)
                    buffer = bytearray(b"\xee" * (size + 3))
                    self.assertEqual(session.get_into(ref, buffer), size)
                    self.assertEqual(bytes(buffer[:size]), data)
                    self.assertEqual(bytes(buffer[size:]), b"\xee" * 3)

    def test_get_into_refuses_a_buffer_too_small_or_read_only(self):
        session = self.connect()
        ref = session.put(pattern(200_000, 1))
        with self.assertRaises(ValueError):
            session.get_into(ref, bytearray(199_999))
        with self.assertRaises(TypeError):
            session.get_into(ref, bytes(200_000))
        view = memoryview(bytearray(400_000))[100:]
        self.assertEqual(session.get_into(ref, view), 200_000)
        self.assertEqual(bytes(view[:200_000]), pattern(200_000, 1))

    def test_values_round_trip_as_xlang(self):
        session = self.connect()
        value = {"name": "partition", "rows": [1, 2.5, None, True, "é"], "blob": b"\x00\x01", "big": 2**40}
        ref = session.put_value(value)
        self.assertEqual(ref.codec, "XLANG")
        self.assertEqual(session.get_value(ref), value)
        self.assertEqual(session.get(ref), __import__("msgpack").packb(value, use_bin_type=True))
        large = list(range(300000))
        self.assertEqual(session.get_value(session.put_value(large)), large)

    def test_get_value_of_raw_bytes_raises_type_mismatch(self):
        session = self.connect()
        with self.assertRaises(raysharing.TypeMismatchError):
            session.get_value(session.put(b"\xc1 not msgpack"))
        with self.assertRaises(raysharing.TypeMismatchError):
            session.get_value(session.put(b"\xc1", codec="XLANG"))
        with self.assertRaises(ValueError):
            session.put(b"x", codec="PICKLE")

    def test_borrow_keeps_an_object_alive_after_its_putter_releases_it(self):
        putter = self.connect()
        borrower = self.connect()
        ref = putter.put(pattern(3 << 20, 7))
        borrowed = borrower.borrow(ref.envelope_bytes)
        self.assertEqual(borrowed.envelope, ref.envelope)
        ref.release()
        self.assertTrue(ref.released)
        self.assertEqual(borrower.get(borrowed), pattern(3 << 20, 7))
        with borrowed:
            pass
        with self.assertRaises(raysharing.ObjectFreedError) as raised:
            borrower.get(ref)
        self.assertEqual(raised.exception.object_id, ref.object_id)

    def test_release_of_a_registered_ref_keeps_it_for_the_holder(self):
        session = self.connect()
        holder = self.holder(session)
        ref = session.put(b"kept", holder)
        holder.register("k", [ref])
        ref.release()
        ref.release()
        self.assertEqual(session.get(holder.fetch("k")[0]), b"kept")
        holder.unregister("k")

    def test_envelopes_that_are_not_envelopes_or_do_not_match_are_refused(self):
        session = self.connect()
        with self.assertRaises(raysharing.InvalidEnvelopeError):
            session.borrow(b"\x93\x01\x02\x03")
        ref = session.put(b"abc")
        altered = env.encode(dataclasses.replace(ref.envelope, size=4))
        with self.assertRaises(raysharing.InvalidEnvelopeError) as raised:
            session.borrow(altered)
        self.assertEqual(raised.exception.object_id, ref.object_id)
        unknown = env.encode(env.Envelope(os.urandom(16), ref.owner, ref.location, 3, "RAW", "", ref.checksum))
        with self.assertRaises(raysharing.ObjectNotFoundError):
            session.get(unknown)

    def test_a_ref_of_another_worker_raises_wrong_worker_naming_it(self):
        small = self.connect(SMALL_ADDRESS)
        ref = small.put(b"elsewhere")
        with self.assertRaises(raysharing.WrongWorkerError) as raised:
            self.connect().get(ref)
        self.assertEqual(raised.exception.worker_address, small.worker_address)
        self.assertEqual(raised.exception.worker_id, small.worker_id)

    def test_a_full_store_raises_store_full_and_stores_nothing(self):
        small = self.connect(SMALL_ADDRESS)
        before = small.stats()
        for size in (1000, 6 << 20):
            with self.subTest(size=size):
                filler = [small.put(bytes(1 << 20)) for _ in range(3)] if size == 1000 else []
                try:
                    with self.assertRaises(raysharing.StoreFullError) as raised:
                        small.put(bytes(6 << 20) if size > 1000 else bytes(2 << 20))
                    self.assertTrue(raised.exception.transient)
                finally:
                    small.release(*filler)
        self.assertEqual(small.stats().objects, before.objects)


class ReadmeExampleTests(unittest.TestCase):
    """The examples users copy: clients/python/README.md's "Use" and the repository README's "From Python" run as written."""

    HERE = os.path.dirname(os.path.abspath(__file__))

    def example(self, path, heading):
        with open(os.path.join(self.HERE, path), encoding="utf-8") as file:
            text = file.read()
        found = re.search(re.escape(heading) + r".*?```python\n(.*?)```", text, re.S)
        self.assertIsNotNone(found, f"no python example under {heading} in {path}")
        return found.group(1).replace("http://127.0.0.1:7480", ADDRESS)

    def test_the_package_readme_example_runs(self):
        exec(compile(self.example("../README.md", "## Use"), "clients/python/README.md", "exec"), {})

    def test_the_from_python_example_runs_after_executors_registered(self):
        with raysharing.connect(ADDRESS) as executor:
            holder = executor.get_or_create_holder("spark-job")
            holder.register("stage-1", [executor.put(pattern(100, i), holder) for i in range(3)])
        seen = []
        code = self.example("../../../README.md", "## From Python").replace("...", "seen.append(data)")
        exec(compile(code, "README.md", "exec"), {"seen": seen})
        self.assertEqual(seen, [pattern(100, i) for i in range(3)])


class GrpcOnlySessionTests(SessionTests):
    """Every test again with the binary channel off: small calls on unary gRPC, large bytes on gRPC streams."""

    OPTIONS = {"use_channel": False}


class FailurePathTests(unittest.TestCase):
    """Failures a real worker does not produce on demand: stalls, damaged bytes, reasons from a later worker."""

    def setUp(self):
        self.fake = FakeWorker()
        self.address = self.fake.start()

    def tearDown(self):
        self.fake.stop()

    def test_a_unary_call_past_its_timeout_raises_timeout(self):
        session = raysharing.connect(self.address, timeout=0.5)
        try:
            self.fake.stall.set()
            started = time.monotonic()
            with self.assertRaises(raysharing.RaySharingTimeoutError) as raised:
                session.stats()
            self.assertIsInstance(raised.exception, TimeoutError)
            self.assertLess(time.monotonic() - started, 2.0)
        finally:
            self.fake.stall.clear()
            session.close()

    def test_a_stalled_stream_raises_timeout_after_its_idle_timeout(self):
        session = raysharing.connect(self.address, timeout=5.0, stream_idle_timeout=0.5)
        try:
            started = time.monotonic()
            with self.assertRaises(raysharing.RaySharingTimeoutError):
                session.get(self.fake.envelope(8 << 20))
            self.assertLess(time.monotonic() - started, 3.0)
        finally:
            session.close()

    def test_a_stalled_put_stream_raises_timeout_after_its_idle_timeout(self):
        session = raysharing.connect(self.address, timeout=5.0, stream_idle_timeout=0.5, use_channel=False)
        try:
            started = time.monotonic()
            with self.assertRaises(raysharing.RaySharingTimeoutError):
                session.put(bytes(3 << 20))
            self.assertLess(time.monotonic() - started, 3.0)
        finally:
            session.close()

    def test_calls_in_flight_when_the_session_closes_raise_session_expired(self):
        session = raysharing.connect(self.address, timeout=5.0)
        self.fake.stall.set()
        raised = []
        caller = threading.Thread(target=lambda: raised.append(self.outcome_of(session.stats)))
        caller.start()
        time.sleep(0.3)
        session.close()
        caller.join(5)
        self.assertFalse(caller.is_alive())
        self.assertEqual(raised, [raysharing.SessionExpiredError])

    @staticmethod
    def outcome_of(call):
        try:
            call()
            return None
        except Exception as error:  # the test compares the class
            return type(error)

    def test_damaged_bytes_raise_checksum_mismatch(self):
        session = raysharing.connect(self.address)
        try:
            with self.assertRaises(raysharing.ChecksumMismatchError) as raised:
                session.get(self.fake.envelope(10))
            self.assertTrue(raised.exception.transient)
        finally:
            session.close()

    def test_an_unknown_reason_is_a_generic_error_carrying_it(self):
        session = raysharing.connect(self.address)
        try:
            self.fake.reason = "SOMETHING_NEW"
            with self.assertRaises(raysharing.RaySharingError) as raised:
                session.borrow(self.fake.envelope(1))
            self.assertIs(type(raised.exception), raysharing.RaySharingError)
            self.assertEqual(raised.exception.reason, "SOMETHING_NEW")
        finally:
            session.close()

    def test_every_reason_maps_to_its_own_class_whatever_the_status(self):
        for reason, cls in errors.ERRORS_BY_REASON.items():
            with self.subTest(reason=reason):
                self.fake.reason = reason
                session = raysharing.connect(self.address)
                try:
                    with self.assertRaises(cls) as raised:
                        session.borrow(self.fake.envelope(1))
                    self.assertEqual(raised.exception.reason, reason)
                    self.assertEqual(raised.exception.holder_name, "h é")
                finally:
                    session.close()


class ChannelFailureTests(unittest.TestCase):
    """The binary channel misbehaving: silent, stalled, failing with context, closing with a connection error."""

    def start(self, mode, timeout=0.5, lease=10.0, **options):
        self.fake = FakeWorker(FakeChannel(mode), lease=lease)
        session = raysharing.connect(self.fake.start(), timeout=timeout, **options)
        self.addCleanup(self.fake.stop)
        self.addCleanup(session.close)
        return session

    def test_a_channel_that_never_answers_its_preface_leaves_grpc_within_the_timeout(self):
        started = time.monotonic()
        session = self.start("silent")
        self.assertFalse(session.uses_channel)
        self.assertLess(time.monotonic() - started, 3.0)

    def test_connect_timeout_bounds_a_silent_channel_even_with_a_long_call_timeout(self):
        started = time.monotonic()
        session = self.start("silent", timeout=10.0, connect_timeout=0.5)
        self.assertFalse(session.uses_channel)
        self.assertLess(time.monotonic() - started, 3.0)

    def test_a_channel_that_goes_away_leaves_the_session_on_grpc(self):
        session = self.start("vanish")
        self.assertTrue(session.uses_channel)
        with self.assertRaises(raysharing.WorkerUnavailableError):
            session.borrow(self.fake.envelope(1))  # its connection closed mid-call: not retried, it may have taken effect
        with self.assertRaises(raysharing.OwnerDiedError) as raised:
            session.borrow(self.fake.envelope(1))  # no new connection: the call runs again over gRPC
        self.assertIn("Borrow failed", str(raised.exception))
        self.assertFalse(session.uses_channel)

    def test_a_channel_given_up_is_taken_back_when_it_answers_again(self):
        session = self.start("vanish", lease=0.3)
        with self.assertRaises(raysharing.WorkerUnavailableError):
            session.borrow(self.fake.envelope(1))
        with self.assertRaises(raysharing.OwnerDiedError):
            session.borrow(self.fake.envelope(1))
        self.assertFalse(session.uses_channel)
        self.fake.channel.resume("error")
        deadline = time.monotonic() + 5
        while not session.uses_channel and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(session.uses_channel, "the session did not take the channel back")
        with self.assertRaises(raysharing.OwnerDiedError) as raised:
            session.borrow(self.fake.envelope(1))
        self.assertIn("channel BORROW failed", str(raised.exception))

    def test_a_call_on_a_stalled_channel_raises_timeout(self):
        session = self.start("stall")
        self.assertTrue(session.uses_channel)
        started = time.monotonic()
        with self.assertRaises(raysharing.RaySharingTimeoutError):
            session.borrow(self.fake.envelope(1))
        self.assertLess(time.monotonic() - started, 3.0)

    def test_a_failed_answer_maps_its_reason_and_context(self):
        session = self.start("error")
        envelope = self.fake.envelope(1)
        with self.assertRaises(raysharing.OwnerDiedError) as raised:
            session.borrow(envelope)
        self.assertEqual(raised.exception.holder_name, "h é")  # channel context is not percent-encoded
        self.assertEqual(raised.exception.object_id, bytes(range(16)))
        with self.assertRaises(raysharing.OwnerDiedError):
            session.borrow(envelope)  # the connection stayed usable

    def test_a_connection_error_frame_raises_its_reason_and_the_next_call_reconnects(self):
        session = self.start("connection-error")
        with self.assertRaises(raysharing.RaySharingTimeoutError):
            session.borrow(self.fake.envelope(1))
        with self.assertRaises(raysharing.RaySharingTimeoutError):
            session.borrow(self.fake.envelope(1))
        self.assertGreaterEqual(self.fake.channel.connections, 2)


class FakeChannel:
    """A channel endpoint that accepts a HELLO, then behaves as ``mode`` says."""

    HEADER = struct.Struct("<IIBBHI")

    def __init__(self, mode):
        self.connections = 0
        self.port = 0
        self.resume(mode)

    def resume(self, mode):
        """Listens (again, on the same port) and behaves as ``mode`` says."""
        self.mode = mode
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, args=(self._listener, self._stopped), daemon=True).start()

    def stop(self):
        self._stopped.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept, which a close alone does not
        except OSError:
            pass
        self._listener.close()

    def _accept(self, listener, stopped):
        while not stopped.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection):
        with connection:
            try:
                connection.recv(8)
                if self.mode == "silent":
                    self._stopped.wait(10)
                    return
                connection.sendall(b"RSCH\x01\x00\x00\x00")
                while True:
                    header = self._read(connection, 16)
                    length, request, op, _, _, _ = self.HEADER.unpack(header)
                    self._read(connection, length)
                    if op == 1:
                        connection.sendall(self.HEADER.pack(0, request, op | 0x80, 0, 0, 0))
                    elif self.mode == "vanish":
                        self.stop()
                        return
                    elif self.mode == "stall":
                        self._stopped.wait(10)
                        return
                    elif self.mode == "error":
                        error = msgpack.packb(["OWNER_DIED", "made up", {"rs-holder-name": "h é", "rs-object-id": bytes(range(16)).hex()}])
                        connection.sendall(self.HEADER.pack(len(error), request, op | 0x80, 0, 1, 0) + error)
                    else:
                        error = msgpack.packb(["TIMEOUT", "made up"])
                        connection.sendall(self.HEADER.pack(len(error), request, 0xFF, 0, 2, 0) + error)
                        return
            except OSError:
                return

    @staticmethod
    def _read(connection, count):
        data = b""
        while len(data) < count:
            more = connection.recv(count - len(data))
            if not more:
                raise OSError("closed")
            data += more
        return data


class ErrorTableTests(unittest.TestCase):
    def test_every_reason_of_errors_md_has_its_own_class(self):
        with open(ERRORS_MD, encoding="utf-8") as file:
            text = file.read()
        table = text[text.index("## Reasons"):text.index("## Precedence")]
        reasons = set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.MULTILINE))
        self.assertGreaterEqual(len(reasons), 23)
        self.assertEqual(reasons, set(errors.ERRORS_BY_REASON))
        self.assertEqual(len(set(errors.ERRORS_BY_REASON.values())), len(reasons))

    def test_status_codes_without_a_trailer_map_as_errors_md_says(self):
        expected = {
            grpc.StatusCode.DEADLINE_EXCEEDED: raysharing.RaySharingTimeoutError,
            grpc.StatusCode.UNAVAILABLE: raysharing.WorkerUnavailableError,
            grpc.StatusCode.CANCELLED: raysharing.WorkerUnavailableError,
            grpc.StatusCode.PERMISSION_DENIED: raysharing.UnauthorizedError,
            grpc.StatusCode.UNAUTHENTICATED: raysharing.UnauthorizedError,
            grpc.StatusCode.RESOURCE_EXHAUSTED: raysharing.MessageTooLargeError,
            grpc.StatusCode.INTERNAL: raysharing.WorkerUnavailableError,
        }
        for code, cls in expected.items():
            self.assertIs(type(errors.from_rpc_error(StatusOnly(code), "Call")), cls)
        other = errors.from_rpc_error(StatusOnly(grpc.StatusCode.UNKNOWN), "Call")
        self.assertIs(type(other), raysharing.RaySharingError)
        self.assertEqual(other.reason, "UNKNOWN")


class StatusOnly(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "from a proxy"

    def trailing_metadata(self):
        return ()


class FakeWorker(sessions_pb2_grpc.SessionsServicer, objects_pb2_grpc.ObjectsServicer):
    """A gRPC server that opens sessions, then stalls, damages bytes or fails with a chosen reason."""

    def __init__(self, channel=None, lease=10.0):
        self.channel = channel
        self.lease = lease
        self.stall = threading.Event()
        self._stopped = threading.Event()
        self.reason = "OWNER_DIED"
        self.worker_id = os.urandom(16)
        self._server = None

    def start(self):
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
        sessions_pb2_grpc.add_SessionsServicer_to_server(self, self._server)
        objects_pb2_grpc.add_ObjectsServicer_to_server(self, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.address = f"http://127.0.0.1:{port}"
        return self.address

    def stop(self):
        self._stopped.set()
        self._server.stop(0)
        if self.channel is not None:
            self.channel.stop()

    def envelope(self, size):
        owner = env.Owner(env.OwnerKind.HOLDER, "default", "h", os.urandom(16))
        return env.encode(env.Envelope(os.urandom(16), owner, env.Location(self.address, self.worker_id), size, "RAW", "", 12345))

    def Open(self, request, context):
        channel = None
        if self.channel is not None:
            channel = sessions_pb2.ChannelOffer(host="127.0.0.1", port=self.channel.port, key=os.urandom(32), max_payload_bytes=1 << 24)
        return sessions_pb2.OpenSessionReply(session_id=os.urandom(16), lease_millis=int(self.lease * 1000), worker_id=self.worker_id,
                                             worker_address=self.address, session_token=os.urandom(16), max_unary_object_bytes=1 << 20,
                                             channel=channel)

    def KeepAlive(self, request, context):
        return sessions_pb2.KeepAliveReply(lease_millis=int(self.lease * 1000))

    def Close(self, request, context):
        return sessions_pb2.CloseSessionReply()

    def Stats(self, request, context):
        if self.stall.is_set():
            self._stopped.wait(10)
        return objects_pb2.StatsReply()

    def Get(self, request, context):
        return objects_pb2.GetReply(size=10, data=b"0123456789")  # not the envelope's checksum

    def PutStream(self, request_iterator, context):
        next(request_iterator)  # the header; then never accept, never answer
        self._stopped.wait(10)
        return objects_pb2.PutReply()

    def GetStream(self, request, context):
        yield objects_pb2.GetReply(size=8 << 20, data=bytes(1 << 20))
        self._stopped.wait(10)  # never the rest

    def Borrow(self, request, context):
        context.set_trailing_metadata((("rs-reason", self.reason), ("rs-holder-name", "h%20%C3%A9")))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"made up: {self.reason}")


if __name__ == "__main__":
    unittest.main()
