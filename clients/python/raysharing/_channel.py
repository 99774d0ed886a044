"""The worker's binary channel (protos/CHANNEL.md): small calls and bulk bodies at a fraction of gRPC's cost.

A connection is a blocking socket bound to the session by HELLO. The server answers one connection's requests in
order, so a connection carries one call at a time here: a session keeps a small pool and each call takes a
connection of its own, so that no call waits behind another (a holder call waiting on another worker, a 1 GiB body).
Every socket operation is bounded by a timeout; a connection that failed mid-call is closed, never reused.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import zlib
from typing import Any, Callable, List, Optional, Tuple

import msgpack

from raysharing.errors import (
    ProtocolError,
    RaySharingError,
    RaySharingTimeoutError,
    WorkerUnavailableError,
    from_reason,
)

PREFACE = b"RSCH\x01\x00\x00\x00"
_HEADER = struct.Struct("<IIBBHI")
_BODY = 0x01
_CONNECTION_ERROR_OP = 0xFF
_PIECE = 1 << 20

HELLO, PUT, GET, BORROW, RELEASE, BULK_GET, BULK_PUT, PING, PIN, UNPIN, HOLDER_GET, REGISTER, FETCH = range(1, 14)
_NAMES = ("HELLO", "PUT", "GET", "BORROW", "RELEASE", "BULK_GET", "BULK_PUT", "PING", "PIN", "UNPIN", "HOLDER_GET", "REGISTER", "FETCH")


def _name(op: int) -> str:
    return f"channel {_NAMES[op - 1]}" if 1 <= op <= len(_NAMES) else f"channel op {op}"

BodyWriter = Callable[[int, memoryview], Any]
"""Receives a response body piece by piece: ``write(position, piece)``."""


class ChannelUnreachableError(WorkerUnavailableError):
    """A new channel connection could not be made (nothing sent): the session turns to gRPC and tries the call there."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out

    def for_caller(self) -> RaySharingError:
        """What a caller sees when no time is left to try gRPC: a timeout, or the worker unavailable."""
        return RaySharingTimeoutError(str(self)) if self.timed_out else WorkerUnavailableError(str(self))


class ChannelConnection:
    """One connection to a worker's channel, bound to a session. Not thread-safe: the pool hands it to one caller."""

    def __init__(self, endpoint: Tuple[str, Any], token: bytes, key: bytes, timeout: float, max_payload: int,
                 connect_timeout: float) -> None:
        family, address = endpoint
        self._timeout = timeout
        self._max_payload = max_payload
        self._next_id = 0
        self._active_bound = timeout
        self.broken = False
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Connecting, the prefaces and HELLO get the shorter bound: a port that drops packets must not hold up a
            # session's start (which then uses gRPC) for a whole call timeout.
            self._bound(min(timeout, connect_timeout))
            if family == socket.AF_INET or family == socket.AF_INET6:
                self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket.connect(address)
            self._socket.sendall(PREFACE)
            preface = self._read_exactly(len(PREFACE), "the channel's preface")
            if preface[:4] != PREFACE[:4] or preface[4] < 1:
                raise ProtocolError(f"the channel at {address} answered {bytes(preface).hex()}, not a channel preface")
            self.call(HELLO, token + key)
            self._bound(timeout)
        except socket.timeout:
            self.close()
            raise ChannelUnreachableError(f"the channel at {address} did not answer within {self._active_bound} s", timed_out=True) from None
        except (OSError, RaySharingError) as error:
            self.close()
            if isinstance(error, (RaySharingTimeoutError, WorkerUnavailableError)):
                raise ChannelUnreachableError(f"the channel at {address} is not reachable: {error}",
                                              timed_out=isinstance(error, RaySharingTimeoutError)) from None
            if isinstance(error, RaySharingError):
                raise
            raise ChannelUnreachableError(f"connecting to the channel at {address} failed: {error}") from None

    def call(self, op: int, payload: bytes, body: Optional[Any] = None, *, body_timeout: Optional[float] = None,
             receive_body: Optional[BodyWriter] = None) -> Tuple[bytes, int]:
        """Sends one request and reads its response: (payload, body length). A response body goes to ``receive_body``.

        A request ``body`` (``len()`` bytes, given by ``body.pieces(size)``) is sent as the frame's body; each piece of a
        body, either way, is bounded by
        ``body_timeout``. Raises the error of a failed response (the connection stays usable), or
        ``WorkerUnavailableError`` / ``RaySharingTimeoutError`` when the connection fails (it is then closed).
        """
        if self.broken:
            raise WorkerUnavailableError("the channel connection is closed")
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        request_id = self._next_id
        try:
            flags = 0
            if body is not None:
                flags = _BODY
                payload = struct.pack("<Q", len(body)) + payload
            self._socket.sendall(_HEADER.pack(len(payload), request_id, op, flags, 0, 0) + payload)
            if body is not None:
                self._bound(body_timeout or self._timeout)
                for piece in body.pieces(_PIECE):
                    self._socket.sendall(piece)
                self._bound(self._timeout)
            header = self._read_exactly(_HEADER.size, "a response header")
            length, answered, answer_op, answer_flags, status, _ = _HEADER.unpack(header)
            if length > self._max_payload:
                raise ProtocolError(f"a channel response of {length} bytes is over the limit of {self._max_payload}")
            answer = bytes(self._read_exactly(length, "a response payload"))
            if answer_op == _CONNECTION_ERROR_OP:
                self.close()
                raise _error(answer, "the channel closed the connection")
            if answered != request_id or answer_op != (op | 0x80):
                raise ProtocolError(f"the channel answered request {answered} op {answer_op:#x}, not {request_id} op {op | 0x80:#x}")
            if status != 0:
                raise _error(answer, _name(op))
            body_length = 0
            if answer_flags & _BODY:
                (body_length,) = struct.unpack_from("<Q", answer)
                answer = answer[8:]
                self._receive_body(body_length, receive_body, body_timeout)
            return answer, body_length
        except socket.timeout as error:
            self.close()
            raise RaySharingTimeoutError(f"{_name(op)} made no progress within {self._active_bound} s") from error
        except OSError as error:
            self.close()
            raise _unavailable(error, _name(op)) from None
        except ProtocolError:
            self.close()
            raise

    def _receive_body(self, length: int, write: Optional[BodyWriter], timeout: Optional[float]) -> None:
        self._bound(timeout or self._timeout)
        piece = bytearray(min(length, _PIECE))
        view = memoryview(piece)
        position = 0
        while position < length:
            count = min(len(piece), length - position)
            self._read_into(view[:count], "a response body")
            if write is not None:
                write(position, view[:count])
            position += count
        self._bound(self._timeout)

    def _bound(self, seconds: float) -> None:
        """Bounds each socket operation from now on (the bound a timeout error names)."""
        self._active_bound = seconds
        self._socket.settimeout(seconds)

    def _read_exactly(self, count: int, what: str) -> memoryview:
        buffer = memoryview(bytearray(count))
        self._read_into(buffer, what)
        return buffer

    def _read_into(self, view: memoryview, what: str) -> None:
        read = 0
        while read < len(view):
            got = self._socket.recv_into(view[read:])
            if got == 0:
                raise ConnectionResetError(f"the channel closed the connection while sending {what}")
            read += got

    def close(self) -> None:
        self.broken = True
        try:
            self._socket.close()
        except OSError:
            pass


class ChannelPool:
    """The session's channel connections: a call takes an idle one (or opens one) and gives it back when it is done."""

    _IDLE = 4

    def __init__(self, endpoints: List[Tuple[str, Any]], token: bytes, key: bytes, timeout: float, max_payload: int,
                 connect_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._token = token
        self._key = key
        self._timeout = timeout
        self.max_payload = max_payload
        self._idle: List[ChannelConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        # The first endpoint that takes a HELLO serves the session (the Unix socket first, on the worker's host).
        last: Optional[RaySharingError] = None
        for endpoint in endpoints:
            try:
                self._idle.append(ChannelConnection(endpoint, token, key, timeout, max_payload, connect_timeout))
                self._endpoint = endpoint
                return
            except RaySharingError as error:
                last = error
        raise last or WorkerUnavailableError("the worker offers no channel endpoint")

    @property
    def endpoint(self) -> Tuple[str, Any]:
        """The endpoint the session's connections use."""
        return self._endpoint

    def call(self, op: int, payload: bytes, **options: Any) -> Tuple[bytes, int]:
        """One call on a connection of its own; see ``ChannelConnection.call``."""
        with self._lock:
            if self._closed:
                raise WorkerUnavailableError("the session's channel is closed")
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = ChannelConnection(self._endpoint, self._token, self._key, self._timeout, self.max_payload, self._connect_timeout)
        try:
            return connection.call(op, payload, **options)
        finally:
            with self._lock:
                if connection.broken or self._closed or len(self._idle) >= self._IDLE:
                    connection.close()
                else:
                    self._idle.append(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def endpoints(host: str, port: int, unix_socket_path: str) -> List[Tuple[str, Any]]:
    """Where to reach a channel: its Unix socket when this host has it, then TCP."""
    found: List[Tuple[str, Any]] = []
    if unix_socket_path and os.path.exists(unix_socket_path):
        found.append((socket.AF_UNIX, unix_socket_path))
    if host and port:
        found.append((socket.AF_INET6 if ":" in host else socket.AF_INET, (host.strip("[]"), port)))
    return found


def pack(*values: Any) -> bytes:
    """An op's metadata: one MessagePack array."""
    return msgpack.packb(list(values), use_bin_type=True)


def unpack(payload: bytes) -> Tuple[list, int]:
    """An answer's metadata array, and the offset of the raw bytes that follow it."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(payload)
    value = unpacker.unpack()
    if not isinstance(value, list):
        raise ProtocolError(f"a channel answer's metadata is {type(value).__name__}, not an array")
    return value, unpacker.tell()


def crc32_trailer(data: memoryview) -> bytes:
    """BULK_PUT's body ends with the CRC-32 of the bytes, little-endian."""
    return struct.pack("<I", zlib.crc32(data))


def _error(payload: bytes, what: str) -> RaySharingError:
    try:
        value, _ = unpack(payload)
        reason, message = str(value[0]), str(value[1])
        detail = value[2] if len(value) > 2 and isinstance(value[2], dict) else {}
    except (ValueError, IndexError, msgpack.UnpackException, ProtocolError):
        return ProtocolError(f"{what} failed with an error payload that does not decode: {payload[:64].hex()}")
    return from_reason(reason, f"{what} failed: {message}", detail)


def _unavailable(error: OSError, what: str) -> WorkerUnavailableError:
    return WorkerUnavailableError(f"{what} failed: {error}")
