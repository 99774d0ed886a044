"""A RaySharing session over the worker's gRPC contract (protos/raysharing/v1): holders, puts, gets, borrows.

``connect`` opens a session and keeps its lease in a background thread. Objects are put with a holder as owner so
they outlive this process; a holder registers refs under keys; any session, in any language, fetches them and gets
the bytes. Same-host sessions move bytes through the worker's shared-memory arena; others use gRPC, streaming past
the unary limit. Every call is bounded: unary calls by ``timeout``, streams by ``stream_idle_timeout`` of silence.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import logging
import contextlib
import threading
import time
import zlib
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import grpc
import msgpack

from raysharing import _channel
from raysharing import envelope as _envelope
from raysharing._arena import Arena
from raysharing.errors import (
    ChecksumMismatchError,
    KeyNotFoundError,
    ListChangedError,
    RaySharingError,
    RaySharingTimeoutError,
    SessionExpiredError,
    TypeMismatchError,
    WorkerUnavailableError,
    from_rpc_error,
)

try:
    from raysharing.v1 import common_pb2, holders_pb2, holders_pb2_grpc, objects_pb2, objects_pb2_grpc
    from raysharing.v1 import sessions_pb2, sessions_pb2_grpc
except ImportError as missing:  # pragma: no cover - a checkout without generated stubs
    raise ImportError(
        "raysharing's gRPC stubs are not generated: run clients/python/generate-stubs.sh (test.sh does)"
    ) from missing

_log = logging.getLogger("raysharing")

_T = TypeVar("_T")
BytesLike = Union[bytes, bytearray, memoryview]

_TOKEN_HEADER = "rs-session-token"
_PUT_ACCEPTED = "rs-put-accepted"
_CHUNK_BYTES = 1 << 20
_REGISTER_BATCH_BYTES = 4 << 20
_RECEIVE_LIMIT = 16 << 20
_FETCH_PAGE_BYTES = 4 << 20
_FETCH_ATTEMPTS = 3
_RELEASE_BATCH = 65536  # ids of 16 bytes: about 1.2 MiB a call
# Objects up to this size go in one unary call even with shared memory: Create+Seal or Pin+Unpin are two calls where a
# unary Put or Get is one, and copying a few KiB through gRPC costs less than the second call.
_SHARED_MEMORY_MIN_BYTES = 64 << 10
_CODECS = {"XLANG": common_pb2.CODEC_XLANG, "RAW": common_pb2.CODEC_RAW, "ARROW": common_pb2.CODEC_ARROW}
_CODEC_NAMES = {value: name for name, value in _CODECS.items()}


def _named(error: RaySharingError, method: Callable[..., Any]) -> RaySharingError:
    """Prefixes the message with the call the user made (``Session.get``), once: the transport's own step (``channel
    PIN``, ``IssueGetTicket``) follows it, so the message says both what the user did and what failed."""
    if not getattr(error, "_named", False) and error.args:
        error.args = (f"{method.__qualname__}: {error.args[0]}",) + tuple(error.args[1:])
        error._named = True  # type: ignore[attr-defined]
    return error


class _TurnedToGrpc(Exception):
    """Raised inside a call when the channel could not be reached; the outermost public call starts again on gRPC."""

    def __init__(self, error: RaySharingError) -> None:
        super().__init__(str(error))
        self.error = error


def _ends_with_session(method: Callable[..., _T]) -> Callable[..., _T]:
    """A call that fails because its session was closed meanwhile (by another thread) raises SessionExpiredError, not
    whatever the closed transport raised (a closed gRPC channel's ValueError, an unmapped arena, a closed socket)."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        session = self if isinstance(self, Session) else self._session
        started = time.monotonic()
        try:
            try:
                return method(self, *args, **kwargs)
            except _TurnedToGrpc as turned:
                # The channel became unreachable before this call's request went out on it: the session now uses gRPC,
                # and the call starts again there, within what is left of its timeout.
                remaining = session.timeout - (time.monotonic() - started)
                if remaining <= 0.05:
                    error = turned.error
                    raise (error.for_caller() if isinstance(error, _channel.ChannelUnreachableError) else error) from None
                with session._budget(remaining):
                    return method(self, *args, **kwargs)
        except SessionExpiredError as error:
            raise _named(error, method)
        except (RaySharingError, ValueError, BufferError, OSError, grpc.RpcError, grpc.FutureCancelledError) as error:
            if session.closed:
                raise _named(SessionExpiredError(f"session {session.session_id.hex()} was closed while the call was in flight"), method) from error
            if isinstance(error, RaySharingError):
                raise _named(error, method)
            raise

    return call


class HolderLifetime(enum.IntEnum):
    """How long a holder lives: until killed (``DETACHED``), or until the session that created it ends."""

    DETACHED = common_pb2.HOLDER_LIFETIME_DETACHED
    SESSION = common_pb2.HOLDER_LIFETIME_SESSION


@dataclasses.dataclass(frozen=True)
class Stats:
    """The worker's store usage and counts (``Objects.Stats``)."""

    used_bytes: int
    capacity_bytes: int
    objects: int
    sessions: int
    holders: int
    spilled_bytes: int
    spill_capacity_bytes: int


@dataclasses.dataclass(frozen=True)
class LostRef:
    """A registered ref whose bytes are lost (its storing worker died while the holder lives)."""

    key: str
    index: int
    ref: "ObjectRef"


class ObjectRef:
    """A ref: the envelope naming an object, its owner and the worker that stores it.

    Refs a call returned are borrowed by this session, which keeps the object alive until ``release`` (or the end of
    the session). Use it as a context manager to release it on exit. ``envelope_bytes`` is what to hand to another
    process or language; it borrows the ref there with ``Session.borrow``.
    """

    __slots__ = ("_session", "envelope_bytes", "_envelope", "_released")

    # A canonical envelope starts with a 9-element array, version 1 and a 16-byte bin: the id is at bytes 4 to 20.
    _CANONICAL_PREFIX = b"\x99\x01\xc4\x10"

    def __init__(self, session: Optional["Session"], envelope_bytes: bytes, decoded: Optional[_envelope.Envelope]) -> None:
        self._session = session
        self.envelope_bytes: bytes = envelope_bytes
        """The envelope as MessagePack bytes (protos/ENVELOPE.md): the ref, for any language."""
        self._envelope = decoded
        self._released = session is None

    @property
    def envelope(self) -> _envelope.Envelope:
        """The decoded envelope. Refs a worker sent (a fetch's) are decoded when first used: a fetch of a million
        refs would otherwise spend most of its time decoding envelopes nobody reads."""
        if self._envelope is None:
            self._envelope = _envelope.decode(self.envelope_bytes)
        return self._envelope

    @property
    def object_id(self) -> bytes:
        """The object's 16-byte id."""
        if self._envelope is None and self.envelope_bytes[:4] == self._CANONICAL_PREFIX:
            return self.envelope_bytes[4:20]
        return self.envelope.object_id

    @property
    def size(self) -> int:
        """The object's size in bytes."""
        return self.envelope.size

    @property
    def codec(self) -> str:
        """How its bytes are read: ``"RAW"``, ``"XLANG"`` (MessagePack) or ``"ARROW"``."""
        return self.envelope.codec

    @property
    def checksum(self) -> int:
        """The CRC-32 of its bytes (``zlib.crc32``)."""
        return self.envelope.checksum

    @property
    def owner(self) -> _envelope.Owner:
        """Who owns it: a holder or a session."""
        return self.envelope.owner

    @property
    def location(self) -> _envelope.Location:
        """The worker that stores its bytes."""
        return self.envelope.location

    @property
    def released(self) -> bool:
        """True once this session's borrow was given back."""
        return self._released

    @_ends_with_session
    def release(self) -> None:
        """Gives this session's borrow back; the object is freed once nobody registers or borrows it. Idempotent."""
        if not self._released and self._session is not None:
            self._session.release(self)

    def __enter__(self) -> "ObjectRef":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        owner = self.owner
        who = f"holder {owner.namespace}/{owner.name}" if owner.kind == _envelope.OwnerKind.HOLDER else "a session"
        return f"ObjectRef({self.object_id.hex()}, {self.size} bytes {self.codec}, owned by {who}, on {self.location.address})"


class Holder:
    """A named holder: it owns objects put with it as owner and registers refs under keys.

    A handle is pinned to the incarnation it was looked up with: once that incarnation is killed, calls through the
    handle fail with ``OwnerDiedError`` even if a holder of the same name is created again.
    """

    def __init__(self, session: "Session", info: holders_pb2.HolderInfo) -> None:
        self._session = session
        self.namespace: str = info.namespace
        self.name: str = info.name
        self.incarnation: bytes = bytes(info.incarnation)
        self.lifetime = HolderLifetime(info.lifetime) if info.lifetime else HolderLifetime.DETACHED
        self.worker_address: str = info.worker_address
        """The address of the worker the holder lives on."""
        self.owned_objects: int = info.owned_objects
        """Objects it owned when this handle was made."""

    def _ref(self) -> common_pb2.HolderRef:
        return common_pb2.HolderRef(namespace=self.namespace, name=self.name, incarnation=self.incarnation)

    def _channel_ref(self) -> list:
        return [self.namespace, self.name, self.incarnation]

    @_ends_with_session
    def register(self, key: str, refs: Sequence[ObjectRef]) -> int:
        """Appends ``refs`` to the list under ``key``; returns the list's length. Every ref must be owned by this holder.

        A list that fits one call (4 MiB of envelopes) is appended atomically; a longer one in batches, each atomic,
        so a failure may leave the earlier batches registered.
        """
        _check_name(key, "key")
        for ref in refs:
            if not isinstance(ref, ObjectRef):
                raise TypeError(f"register takes ObjectRefs (session.borrow(envelope_bytes) makes one), not {type(ref).__name__}")
        count = 0
        channel = self._session._channel
        for batch in _batches([ref.envelope_bytes for ref in refs], _REGISTER_BATCH_BYTES):
            if channel is not None:
                count = self._session._channel_call(_channel.REGISTER, _channel.pack(self._channel_ref(), key, batch))[0]
            else:
                count = self._session._call(
                    self._session._holders.Register, holders_pb2.RegisterRequest(holder=self._ref(), key=key, envelopes=batch), "Register").count
        return count

    @_ends_with_session
    def fetch(self, key: str) -> List[ObjectRef]:
        """The refs registered under ``key``, in order, each borrowed by this session (release them when done).

        Raises ``KeyNotFoundError`` when the holder has no such key.
        """
        _check_name(key, "key")
        for attempt in range(_FETCH_ATTEMPTS):
            refs: List[ObjectRef] = []
            version = 0
            total: Optional[int] = None
            try:
                while total is None or len(refs) < total:
                    max_count = 0 if total is None else total - len(refs)
                    if self._session._channel is not None:
                        envelopes, page_total, page_version = self._session._channel_call(_channel.FETCH, _channel.pack(
                            self._channel_ref(), key, len(refs), max_count, _FETCH_PAGE_BYTES, version))[:3]
                    else:
                        reply = self._session._call(self._session._holders.Fetch, holders_pb2.FetchRequest(
                            holder=self._ref(), key=key, start=len(refs), max_bytes=_FETCH_PAGE_BYTES, list_version=version,
                            max_count=max_count), "Fetch")
                        envelopes, page_total, page_version = reply.envelopes, reply.total, reply.list_version
                    if total is None:
                        total, version = page_total, page_version
                    session = self._session
                    refs.extend(ObjectRef(session, bytes(e), None) for e in envelopes)
                    if not envelopes:
                        break
                return refs
            except KeyNotFoundError as error:
                self._session._release_quietly(refs)
                error.key = key
                raise
            except ListChangedError:
                self._session._release_quietly(refs)
                if attempt == _FETCH_ATTEMPTS - 1:
                    raise
            except BaseException as error:
                self._session._release_quietly(refs, after=error)
                raise
        raise AssertionError("unreachable")

    @_ends_with_session
    def keys(self) -> List[str]:
        """The keys of the holder's registry."""
        return list(self._session._call(self._session._holders.ListKeys, holders_pb2.ListKeysRequest(holder=self._ref()), "ListKeys").keys)

    @_ends_with_session
    def unregister(self, key: str) -> int:
        """Removes ``key``; returns how many refs it held (0 when it did not exist). Objects nobody borrows are freed."""
        _check_name(key, "key")
        return self._session._call(self._session._holders.Unregister, holders_pb2.UnregisterRequest(holder=self._ref(), key=key), "Unregister").removed

    @_ends_with_session
    def lost_refs(self) -> List[LostRef]:
        """Registered refs whose bytes are lost: stored by another worker of a cluster that died while this holder lives."""
        reply = self._session._call(self._session._holders.ListLost, holders_pb2.ListLostRequest(holder=self._ref()), "ListLost")
        return [LostRef(lost.key, lost.index, ObjectRef(None, bytes(lost.envelope), _envelope.decode(bytes(lost.envelope)))) for lost in reply.refs]

    @_ends_with_session
    def kill(self) -> int:
        """Kills the holder: every object it owns is freed and later use of its refs fails with ``OwnerDiedError``.

        Returns how many objects its worker freed (in a cluster, objects other workers store for it are freed there).
        """
        return self._session._call(self._session._holders.Kill, holders_pb2.KillHolderRequest(holder=self._ref()), "Kill").freed_objects

    def __repr__(self) -> str:
        return f"Holder({self.namespace}/{self.name}, incarnation {self.incarnation.hex()}, on {self.worker_address})"


class _StreamIdleGuard:
    """Cancels a streaming call that makes no progress for ``timeout`` seconds, so a stalled stream ends typed."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._call: Optional[grpc.Call] = None
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.Lock()
        self.fired = False

    def start(self, call: grpc.Call) -> None:
        self._call = call
        self.progress()

    def progress(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._call is None or self.fired:
                return
            self._timer = threading.Timer(self._timeout, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
        if self._call is not None:
            self._call.cancel()

    def stop(self) -> None:
        with self._lock:
            self._call = None
            if self._timer is not None:
                self._timer.cancel()


class Session:
    """A session on one worker: made by ``connect``; close it (or use ``with``) to end it.

    Objects the session puts without an owner, the refs it borrows and the session-lifetime holders it creates end
    with it. Its lease is renewed in a background thread at a third of the lease the worker granted. A Session may be
    used from several threads.
    """

    def __init__(self, address: str, *, namespace: str = "", lease: float = 10.0, timeout: float = 10.0,
                 stream_idle_timeout: float = 30.0, client_name: str = "python", use_shared_memory: bool = True,
                 use_channel: bool = True, connect_timeout: float = 5.0) -> None:
        if timeout <= 0 or stream_idle_timeout <= 0 or connect_timeout <= 0 or lease < 0:
            raise ValueError("timeout, stream_idle_timeout and connect_timeout must be positive, lease not negative")
        self.connect_timeout = connect_timeout
        _check_text(namespace, "namespace", allow_empty=True)
        _check_text(client_name, "client_name", allow_empty=True)
        self.address = address
        self.timeout = timeout
        self.stream_idle_timeout = stream_idle_timeout
        self._grpc = grpc.insecure_channel(_target(address), options=[
            ("grpc.max_receive_message_length", _RECEIVE_LIMIT),
            ("grpc.max_send_message_length", 64 << 20),
        ])
        self._sessions = sessions_pb2_grpc.SessionsStub(self._grpc)
        self._objects = objects_pb2_grpc.ObjectsStub(self._grpc)
        self._holders = holders_pb2_grpc.HoldersStub(self._grpc)
        self._closed = threading.Event()
        self._expired: Optional[SessionExpiredError] = None
        self._arena: Optional[Arena] = None
        self._channel: Optional[_channel.ChannelPool] = None
        self._channel_lock = threading.Lock()
        self._channel_lost = False
        self._channel_offer: Optional[Tuple[Any, bytes]] = None
        self._probe: Optional[threading.Thread] = None
        self._local = threading.local()
        try:
            reply = self._invoke(self._sessions.Open, sessions_pb2.OpenSessionRequest(
                namespace=namespace, lease_millis=int(lease * 1000), client_name=client_name), "Open", metadata=())
        except BaseException:
            self._grpc.close()
            raise
        self.session_id: bytes = bytes(reply.session_id)
        """The session's public id: it names the owner of objects put without a holder."""
        self.worker_id: bytes = bytes(reply.worker_id)
        """The id of the worker instance the session lives on."""
        self.worker_address: str = reply.worker_address
        """The address other sessions use to reach this worker."""
        self.lease: float = reply.lease_millis / 1000.0
        """The lease the worker granted, in seconds."""
        self.max_unary_object_bytes: int = reply.max_unary_object_bytes
        """Objects up to this size go in one unary call; larger ones stream."""
        self._metadata = ((_TOKEN_HEADER, bytes(reply.session_token).hex()),)
        if use_shared_memory and reply.HasField("shared_memory"):
            self._attach(reply.shared_memory)
        if use_channel and reply.HasField("channel"):
            self._open_channel(reply.channel, bytes(reply.session_token))
        self._keepalive = threading.Thread(target=self._keep_alive, name="raysharing-lease", daemon=True)
        self._keepalive.start()

    # ---- Session ----

    @property
    def uses_shared_memory(self) -> bool:
        """True when bytes move through the worker's arena (same host), not through gRPC."""
        return self._arena is not None

    @property
    def uses_channel(self) -> bool:
        """True when small calls and bulk bytes go over the worker's binary channel (CHANNEL.md), not gRPC."""
        return self._channel is not None

    @property
    def expired(self) -> bool:
        """True once the worker said the session ended (its lease lapsed): every later call raises SessionExpiredError."""
        return self._expired is not None

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """Ends the session at once: its session-owned objects, borrows and session holders go with it. Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._invoke(self._sessions.Close, sessions_pb2.CloseSessionRequest(), "Close", metadata=self._metadata)
        except RaySharingError as error:
            # The worker ends the session at its lease anyway; closing must not fail the caller's cleanup.
            _log.warning("raysharing: closing session %s failed (%s); the worker ends it when its lease lapses",
                         self.session_id.hex(), error.reason)
        finally:
            if self._arena is not None:
                self._arena.close()
                self._arena = None
            if self._channel is not None:
                self._channel.close()
            self._grpc.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _keep_alive(self) -> None:
        interval = max(self.lease / 3.0, 0.05)
        while not self._closed.wait(interval):
            try:
                reply = self._invoke(self._sessions.KeepAlive, sessions_pb2.KeepAliveRequest(), "KeepAlive",
                                     metadata=self._metadata, timeout=min(self.timeout, max(self.lease / 2.0, 0.1)))
                interval = max(reply.lease_millis / 3000.0, 0.05)
                if self._channel_lost and self._channel is None:
                    self._probe_channel()
            except SessionExpiredError as error:
                self._expired = error
                _log.error("raysharing: session %s has ended: its lease lapsed", self.session_id.hex())
                return
            except RaySharingError as error:
                # Transient: the next renewal may get through within the lease.
                _log.warning("raysharing: renewing session %s failed (%s); trying again", self.session_id.hex(), error.reason)

    def _attach(self, offer: sessions_pb2.SharedMemoryOffer) -> None:
        arena = Arena.try_open(offer.worker_pid, offer.arena_fd, offer.arena_bytes)
        if arena is None:
            return
        try:
            self._call(self._sessions.AttachSharedMemory, sessions_pb2.AttachSharedMemoryRequest(secret=arena.secret), "AttachSharedMemory")
        except RaySharingError as error:
            # Another host or PID namespace mapped some other file: the network paths serve.
            _log.info("raysharing: shared memory not attached (%s); using gRPC", error.reason)
            arena.close()
            return
        self._arena = arena

    def _open_channel(self, offer: sessions_pb2.ChannelOffer, token: bytes) -> None:
        where = _channel.endpoints(offer.host, offer.port, offer.unix_socket_path)
        self._channel_offer = (offer, token)
        try:
            self._channel = _channel.ChannelPool(where, token, bytes(offer.key), self.timeout, offer.max_payload_bytes or (16 << 20),
                                                self.connect_timeout)
        except RaySharingError as error:
            # A channel this host cannot reach (a firewall, another network) leaves gRPC to serve every call.
            _log.info("raysharing: the worker's channel is not reachable (%s); using gRPC", error)

    # ---- Holders ----

    @_ends_with_session
    def get_or_create_holder(self, name: str, *, namespace: str = "", lifetime: HolderLifetime = HolderLifetime.DETACHED) -> Holder:
        """The live holder with this name, created (with a fresh incarnation) when there is none.

        ``namespace`` empty means the session's. A ``SESSION`` holder dies when this session ends.
        """
        _check_name(name, "holder name")
        _check_text(namespace, "namespace", allow_empty=True)
        reply = self._call(self._holders.GetOrCreate, holders_pb2.GetOrCreateHolderRequest(namespace=namespace, name=name, lifetime=int(lifetime)), "GetOrCreate")
        return Holder(self, reply.holder)

    @_ends_with_session
    def get_holder(self, name: str, *, namespace: str = "") -> Holder:
        """The live holder with this name; ``HolderNotFoundError`` when there is none."""
        _check_name(name, "holder name")
        _check_text(namespace, "namespace", allow_empty=True)
        if self._channel is not None:
            fields = self._channel_call(_channel.HOLDER_GET, _channel.pack(namespace, name))
            return Holder(self, holders_pb2.HolderInfo(
                namespace=fields[0], name=fields[1], incarnation=fields[2], lifetime=fields[3], worker_address=fields[4],
                worker_id=fields[5], owned_objects=fields[6], keys=fields[7]))
        return Holder(self, self._call(self._holders.Get, holders_pb2.GetHolderRequest(namespace=namespace, name=name), "Get").holder)

    @_ends_with_session
    def list_holders(self, *, namespace: str = "") -> List[Holder]:
        """The live holders of a namespace (the session's when empty)."""
        return [Holder(self, info) for info in self._call(self._holders.List, holders_pb2.ListHoldersRequest(namespace=namespace), "List").holders]

    # ---- Objects ----

    @_ends_with_session
    def put(self, data: BytesLike, owner: Optional[Holder] = None, *, codec: str = "RAW", type_name: str = "") -> ObjectRef:
        """Puts ``data`` as one object and returns its ref, borrowed by this session.

        With ``owner`` the holder owns the object: it outlives this session while the holder lives and registers or
        anyone borrows it. Without, this session owns it and it dies with the session. ``codec`` says how readers
        read the bytes (``RAW``, ``XLANG`` or ``ARROW``); for values use ``put_value``.
        """
        if codec not in _CODECS:
            raise ValueError(f"codec must be one of {sorted(_CODECS)}, not {codec!r}")
        if owner is not None and not isinstance(owner, Holder):
            raise TypeError(f"owner must be a Holder (or None for this session), not {type(owner).__name__}")
        if owner is not None and owner._session is not self:
            raise ValueError(f"{owner!r} was looked up through another session: look it up through this one "
                             f"(get_holder), which reaches it wherever it lives")
        _check_text(type_name, "type_name", allow_empty=True)
        view = memoryview(data).cast("B")
        header = objects_pb2.PutHeader(
            owner_holder=owner._ref() if owner is not None else None, codec=_CODECS[codec], type_name=type_name,
            size=len(view), checksum=zlib.crc32(view))
        if self._arena is not None and len(view) > _SHARED_MEMORY_MIN_BYTES:
            return self._put_shared(header, view)
        if len(view) <= self.max_unary_object_bytes:
            if self._channel is not None:
                owner_ref = owner._channel_ref() if owner is not None else None
                metadata = _channel.pack(owner_ref, header.codec, type_name, header.checksum)
                return self._ref(bytes(self._channel_call(_channel.PUT, metadata + view.tobytes())[0]))
            return self._ref(bytes(self._call(self._objects.Put, objects_pb2.PutRequest(header=header, data=bytes(view)), "Put").envelope))
        if self._channel is not None:
            ticket = self._call(self._objects.IssuePutTicket, objects_pb2.IssuePutTicketRequest(header=header), "IssuePutTicket").ticket
            body = _ConcatenatedBody(view, _channel.crc32_trailer(view))
            return self._ref(bytes(self._channel_call(_channel.BULK_PUT, bytes(ticket), body=body)[0]))
        return self._put_stream(header, view)

    @_ends_with_session
    def put_value(self, value: Any, owner: Optional[Holder] = None, *, type_name: str = "") -> ObjectRef:
        """Puts ``value`` as plain MessagePack (codec ``XLANG``), readable by every language. See ``put``.

        ``type_name`` is advisory; leave it empty unless a .NET reader expects a type (protos/ENVELOPE.md).
        """
        return self.put(msgpack.packb(value, use_bin_type=True), owner, codec="XLANG", type_name=type_name)

    @_ends_with_session
    def get(self, ref: Union[ObjectRef, BytesLike]) -> bytes:
        """The object's bytes, checked against the envelope's size and CRC-32 (``ChecksumMismatchError`` otherwise).

        ``ref`` is a ref or envelope bytes (this session need not borrow it, but nothing keeps it alive then). Each call
        returns new memory; to read large objects repeatedly, ``get_into`` a buffer you keep is several times faster
        (a fresh buffer's first touch of each page costs more than the copy itself).
        """
        ref = self._as_ref(ref)
        parts: List[bytes] = []

        def keep(position: int, chunk: BytesLike) -> BytesLike:
            part = bytes(chunk)
            parts.append(part)
            return part

        self._read(ref, keep)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @_ends_with_session
    def get_into(self, ref: Union[ObjectRef, BytesLike], buffer: Any) -> int:
        """Reads the object's bytes into ``buffer`` (any writable buffer of at least ``ref.size`` bytes: a bytearray, a
        memoryview, a NumPy array) and returns their count. Checked as ``get`` checks; on failure the buffer's contents
        are undefined."""
        ref = self._as_ref(ref)
        view = memoryview(buffer).cast("B")
        if view.readonly:
            raise TypeError("buffer must be writable")
        if len(view) < ref.size:
            raise ValueError(f"buffer holds {len(view)} bytes; object {ref.object_id.hex()} is {ref.size}")

        def copy(position: int, chunk: BytesLike) -> BytesLike:
            target = view[position:position + len(chunk)]
            target[:] = chunk
            return target

        self._read(ref, copy)
        return ref.size

    @_ends_with_session
    def get_value(self, ref: Union[ObjectRef, BytesLike]) -> Any:
        """The object decoded as MessagePack; ``TypeMismatchError`` when its codec is not ``XLANG`` or it does not decode."""
        ref = self._as_ref(ref)
        if ref.codec != "XLANG":
            raise TypeMismatchError(f"Object {ref.object_id.hex()} is {ref.codec}, not XLANG: read it with get()", object_id=ref.object_id)
        data = self.get(ref)
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as error:
            raise TypeMismatchError(f"Object {ref.object_id.hex()} is not one MessagePack value: {error}", object_id=ref.object_id) from error

    @_ends_with_session
    def borrow(self, envelope_bytes: BytesLike) -> ObjectRef:
        """Borrows the ref that ``envelope_bytes`` name (made by any session, in any language) and returns it.

        Envelope bytes that are not an envelope raise ``InvalidEnvelopeError`` before any call; a ref whose object or
        owner is gone raises what ERRORS.md says (``OwnerDiedError``, ``ObjectFreedError``, ...).
        """
        data = bytes(envelope_bytes)
        ref = self._ref(data)
        try:
            if self._channel is not None:
                self._channel_call(_channel.BORROW, _channel.pack([data]))
            else:
                self._call(self._objects.Borrow, objects_pb2.BorrowRequest(envelopes=[data]), "Borrow")
        except BaseException:
            ref._released = True
            raise
        return ref

    @_ends_with_session
    def release(self, *refs: ObjectRef) -> None:
        """Gives back this session's borrows of ``refs``. Refs already released are skipped."""
        for ref in refs:
            if not isinstance(ref, ObjectRef):
                raise TypeError(f"release takes ObjectRefs, not {type(ref).__name__}")
            if ref._session is not self and not ref._released:
                raise ValueError(f"{ref!r} is borrowed by another session: release it through that session")
        pending = [ref for ref in refs if not ref._released]
        if not pending:
            return
        ids = [ref.object_id for ref in pending]
        # In batches that fit one channel frame (or gRPC message) however many refs a fetch returned.
        for start in range(0, len(ids), _RELEASE_BATCH):
            batch = ids[start:start + _RELEASE_BATCH]
            if self._channel is not None:
                self._channel_call(_channel.RELEASE, _channel.pack(batch))
            else:
                self._call(self._objects.Release, objects_pb2.ReleaseRequest(object_ids=batch), "Release")
            for ref in pending[start:start + _RELEASE_BATCH]:
                ref._released = True

    @_ends_with_session
    def stats(self) -> Stats:
        """The worker's store usage and counts."""
        reply = self._call(self._objects.Stats, objects_pb2.StatsRequest(), "Stats")
        return Stats(reply.used_bytes, reply.capacity_bytes, reply.objects, reply.sessions, reply.holders,
                     reply.spilled_bytes, reply.spill_capacity_bytes)

    # ---- Transfers ----

    def _put_shared(self, header: objects_pb2.PutHeader, view: memoryview) -> ObjectRef:
        assert self._arena is not None
        created = self._call(self._objects.Create, objects_pb2.CreateRequest(header=header), "Create")
        try:
            self._arena.write(created.offset, view)
            reply = self._call(self._objects.Seal, objects_pb2.SealRequest(handle=created.handle, checksum=header.checksum), "Seal")
        except BaseException as error:
            # The worker drops an unsealed object at its stream idle timeout or the session's end anyway; an Abort to a
            # worker that just timed out or vanished would only make the caller wait another timeout.
            if not isinstance(error, (RaySharingTimeoutError, WorkerUnavailableError)):
                try:
                    self._call(self._objects.Abort, objects_pb2.AbortRequest(handle=created.handle), "Abort")
                except RaySharingError:
                    pass
            raise
        return self._ref(bytes(reply.envelope))

    def _put_stream(self, header: objects_pb2.PutHeader, view: memoryview) -> ObjectRef:
        guard = _StreamIdleGuard(self.stream_idle_timeout)
        started = threading.Event()
        holder: List[grpc.Future] = []

        def messages() -> Iterator[objects_pb2.PutRequest]:
            # The header alone first: the worker accepts (response header rs-put-accepted) or refuses before any byte
            # flows, as objects.proto asks; bytes sent after a refusal would close the whole connection.
            yield objects_pb2.PutRequest(header=header)
            started.wait()
            call = holder[0]
            accepted = dict(call.initial_metadata() or ()).get(_PUT_ACCEPTED) == "1"
            if not accepted:
                return
            for offset in range(0, len(view), _CHUNK_BYTES):
                guard.progress()
                yield objects_pb2.PutRequest(data=bytes(view[offset:offset + _CHUNK_BYTES]))

        call = self._objects.PutStream.future(messages(), metadata=self._metadata)
        holder.append(call)
        started.set()
        guard.start(call)
        try:
            reply = call.result()
        except grpc.FutureCancelledError:
            # The idle guard (or close) canceled the call: result() then raises this, not an RpcError.
            if guard.fired:
                raise RaySharingTimeoutError(f"PutStream made no progress for {self.stream_idle_timeout} s (stream_idle_timeout)") from None
            raise SessionExpiredError(f"PutStream: session {self.session_id.hex()} was closed while the call was in flight") from None
        except grpc.RpcError as error:
            raise self._stream_error(error, guard, "PutStream") from None
        finally:
            guard.stop()
        return self._ref(bytes(reply.envelope))

    def _read(self, ref: ObjectRef, write: Callable[[int, BytesLike], BytesLike]) -> None:
        """Moves the object's bytes to ``write(position, chunk)``, which returns where it put them; checks their size and
        CRC-32 there against the envelope."""
        position, crc = 0, 0

        def sink(chunk: BytesLike) -> None:
            nonlocal position, crc
            if position + len(chunk) > ref.size:
                raise ChecksumMismatchError(f"Get of object {ref.object_id.hex()} returned more than the {ref.size} bytes its envelope says. Try again.",
                                            object_id=ref.object_id)
            crc = zlib.crc32(write(position, chunk), crc)
            position += len(chunk)

        self._transfer_out(ref, sink)
        if position != ref.size or crc != ref.checksum:
            raise ChecksumMismatchError(
                f"Get of object {ref.object_id.hex()} returned {position} bytes with CRC-32 {crc:08x}; "
                f"its envelope says {ref.size} bytes with {ref.checksum:08x}. Try again.", object_id=ref.object_id)

    def _transfer_out(self, ref: ObjectRef, sink: Callable[[BytesLike], None]) -> None:
        """Gives the object's bytes to ``sink`` in order: one pinned view of the arena, one small reply, a channel body's
        pieces or a stream's chunks."""
        channel = self._channel
        if self._arena is not None and ref.size > _SHARED_MEMORY_MIN_BYTES:
            if channel is not None:
                pinned = self._channel_call(_channel.PIN, _channel.pack(ref.envelope_bytes))
                offset, size = pinned[0], pinned[1]
            else:
                reply = self._call(self._objects.Pin, objects_pb2.PinRequest(envelope=ref.envelope_bytes), "Pin")
                offset, size = reply.offset, reply.size
            try:
                with self._arena.view(offset, size) as view:
                    sink(view)
            except BaseException:
                self._unpin_quietly(ref)
                raise
            # The bytes are copied (and are checked next): an Unpin that fails leaves a pin the session's end drops.
            self._unpin_quietly(ref)
        elif ref.size <= self.max_unary_object_bytes:
            if channel is not None:
                payload, _ = self._channel_raw(_channel.GET, _channel.pack(ref.envelope_bytes))
                _, start = _channel.unpack(payload)
                sink(memoryview(payload)[start:])
            else:
                sink(self._call(self._objects.Get, objects_pb2.GetRequest(envelope=ref.envelope_bytes), "Get").data)
        elif channel is not None:
            ticket = self._call(self._objects.IssueGetTicket, objects_pb2.IssueGetTicketRequest(envelope=ref.envelope_bytes), "IssueGetTicket").ticket
            self._channel_raw(_channel.BULK_GET, bytes(ticket), receive_body=lambda position, piece: sink(piece))
        else:
            guard = _StreamIdleGuard(self.stream_idle_timeout)
            call = self._objects.GetStream(objects_pb2.GetRequest(envelope=ref.envelope_bytes, chunk_bytes=4 << 20), metadata=self._metadata)
            guard.start(call)
            try:
                for reply in call:
                    guard.progress()
                    sink(reply.data)
            except grpc.RpcError as error:
                raise self._stream_error(error, guard, "GetStream") from None
            finally:
                guard.stop()
                call.cancel()  # a no-op once the stream ended; ends it when the sink failed

    def _stream_error(self, error: grpc.RpcError, guard: _StreamIdleGuard, what: str) -> RaySharingError:
        if guard.fired:
            return RaySharingTimeoutError(f"{what} made no progress for {self.stream_idle_timeout} s (stream_idle_timeout)")
        return from_rpc_error(error, what)

    # ---- Plumbing ----

    def _ref(self, envelope_bytes: bytes) -> ObjectRef:
        return ObjectRef(self, envelope_bytes, _envelope.decode(envelope_bytes))

    def _as_ref(self, ref: Union[ObjectRef, BytesLike]) -> ObjectRef:
        if isinstance(ref, ObjectRef):
            return ref
        if not isinstance(ref, (bytes, bytearray, memoryview)):
            raise TypeError(f"a ref is an ObjectRef or envelope bytes, not {type(ref).__name__}")
        data = bytes(ref)
        return ObjectRef(None, data, _envelope.decode(data))

    def _unpin_quietly(self, ref: ObjectRef) -> None:
        try:
            if self._channel is not None:
                self._channel_call(_channel.UNPIN, _channel.pack([ref.object_id]))
            else:
                self._call(self._objects.Unpin, objects_pb2.UnpinRequest(object_ids=[ref.object_id]), "Unpin")
        except RaySharingError as error:
            if not self.closed:
                _log.warning("raysharing: unpinning object %s failed (%s); the pin ends with the session", ref.object_id.hex(), error.reason)

    def _release_quietly(self, refs: Iterable[ObjectRef], after: Optional[BaseException] = None) -> None:
        if isinstance(after, (RaySharingTimeoutError, WorkerUnavailableError)) and not isinstance(after, _channel.ChannelUnreachableError):
            # The worker did not answer or is gone: another call would only wait again. The borrows end with the session.
            _log.info("raysharing: leaving %s borrows to the session's end after %s", len(list(refs)), after.reason)
            return
        try:
            self.release(*refs)
        except RaySharingError as error:
            _log.warning("raysharing: giving back borrows failed (%s); they end with the session", error.reason)

    def _channel_call(self, op: int, payload: bytes, **options: Any) -> list:
        """A channel call; its answer's metadata array."""
        return _channel.unpack(self._channel_raw(op, payload, **options)[0])[0]

    def _channel_raw(self, op: int, payload: bytes, **options: Any) -> Tuple[bytes, int]:
        """A channel call; its raw answer payload and body length. Bodies are bounded by ``stream_idle_timeout``."""
        if self._closed.is_set():
            raise SessionExpiredError(f"session {self.session_id.hex()} is closed")
        channel = self._channel
        if channel is None:
            raise _TurnedToGrpc(WorkerUnavailableError("the session's channel was given up"))
        try:
            return channel.call(op, payload, body_timeout=self.stream_idle_timeout, **options)
        except _channel.ChannelUnreachableError as error:
            self._turn_to_grpc(channel, error)
            raise _TurnedToGrpc(error) from error

    def _turn_to_grpc(self, channel: "_channel.ChannelPool", error: RaySharingError) -> None:
        with self._channel_lock:
            if self._channel is channel:
                self._channel = None
                self._channel_lost = True
                channel.close()
                _log.warning("raysharing: session %s cannot reach the worker's channel (%s); its calls go over gRPC until the "
                             "channel answers again", self.session_id.hex(), error)

    def _probe_channel(self) -> None:
        """After the channel was given up, tries it again in the background (never holding up the lease's renewal)."""
        if self._probe is not None and self._probe.is_alive():
            return

        def probe() -> None:
            offer, token = self._channel_offer
            try:
                pool = _channel.ChannelPool(_channel.endpoints(offer.host, offer.port, offer.unix_socket_path), token,
                                            bytes(offer.key), self.timeout, offer.max_payload_bytes or (16 << 20), self.connect_timeout)
            except RaySharingError:
                return
            with self._channel_lock:
                if self._closed.is_set() or self._channel is not None:
                    pool.close()
                    return
                self._channel = pool
                self._channel_lost = False
            _log.info("raysharing: session %s reaches the worker's channel again", self.session_id.hex())

        self._probe = threading.Thread(target=probe, name="raysharing-channel-probe", daemon=True)
        self._probe.start()

    @contextlib.contextmanager
    def _budget(self, seconds: float) -> Iterator[None]:
        """Bounds this thread's gRPC calls by ``seconds`` (what is left of a call that started on the channel)."""
        self._local.budget = seconds
        try:
            yield
        finally:
            self._local.budget = None

    def _call(self, method: Callable[..., _T], request: Any, what: str) -> _T:
        if self._closed.is_set():
            raise SessionExpiredError(f"{what}: session {self.session_id.hex()} is closed")
        return self._invoke(method, request, what, metadata=self._metadata)

    def _invoke(self, method: Callable[..., _T], request: Any, what: str, *, metadata: Any, timeout: Optional[float] = None) -> _T:
        if timeout is None:
            budget = getattr(self._local, "budget", None)
            timeout = self.timeout if budget is None else min(self.timeout, budget)
        try:
            return method(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error, what) from None


def connect(address: str, *, namespace: str = "", lease: float = 10.0, timeout: float = 10.0,
            stream_idle_timeout: float = 30.0, client_name: str = "python", use_shared_memory: bool = True,
            use_channel: bool = True, connect_timeout: float = 5.0) -> Session:
    """Opens a session on the worker at ``address`` (``http://host:port`` or ``host:port``).

    ``namespace``: the session's default namespace ("" is the worker's ``default``). ``lease``: seconds the session
    survives without renewal (0: the worker's default; the worker clamps it into its range). ``timeout``: the bound of
    every unary call, in seconds. ``stream_idle_timeout``: how long a streamed put or get may make no progress.
    ``use_shared_memory``: move bytes through the worker's arena when on its host. ``use_channel``: small calls and bulk
    bytes over the worker's binary channel when it serves one and this host reaches it within ``connect_timeout``
    (else gRPC). Raises ``WorkerUnavailableError``
    when nothing listens at ``address``, ``RaySharingTimeoutError`` when it does not answer within ``timeout``.
    """
    return Session(address, namespace=namespace, lease=lease, timeout=timeout, stream_idle_timeout=stream_idle_timeout,
                   client_name=client_name, use_shared_memory=use_shared_memory, use_channel=use_channel,
                   connect_timeout=connect_timeout)


class _ConcatenatedBody:
    """A BULK_PUT body, the object's bytes then their CRC-32, sent piece by piece without joining them."""

    def __init__(self, data: memoryview, trailer: bytes) -> None:
        self._data = data
        self._trailer = trailer

    def __len__(self) -> int:
        return len(self._data) + len(self._trailer)

    def pieces(self, size: int) -> Iterator[BytesLike]:
        for offset in range(0, len(self._data), size):
            yield self._data[offset:offset + size]
        yield self._trailer


def _target(address: str) -> str:
    if not isinstance(address, str):
        raise TypeError(f"address must be a str such as http://127.0.0.1:7480, not {type(address).__name__}")
    if address.startswith("https://"):
        raise ValueError(f"{address}: workers speak HTTP/2 without TLS (version 1); use http://")
    if address.startswith("http://"):
        address = address[len("http://"):]
    address = address.rstrip("/")
    if not address or "/" in address or "://" in address:
        raise ValueError(f"address must be http://host:port or host:port, not {address!r}")
    return address


def _check_name(value: str, what: str) -> None:
    _check_text(value, what, allow_empty=False)


def _check_text(value: str, what: str, *, allow_empty: bool) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{what} is not well-formed Unicode: {error.reason} at index {error.start}") from None


def _batches(items: List[bytes], limit: int) -> Iterator[List[bytes]]:
    batch: List[bytes] = []
    size = 0
    for item in items:
        if batch and size + len(item) + 8 > limit:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item) + 8
    if batch or not items:
        yield batch
