"""The exceptions of RaySharing: one class per reason of protos/ERRORS.md, and how a failed gRPC call maps to them.

Every exception derives from ``RaySharingError``, whose ``reason`` is the stable reason string (branch on the class
or on ``reason``, never on the message). A reason this client does not know, sent by a later worker, is a plain
``RaySharingError`` carrying that reason.
"""

from __future__ import annotations

import urllib.parse
from typing import Dict, Optional, Type

import grpc


class RaySharingError(Exception):
    """A RaySharing call failed. ``reason`` says why (protos/ERRORS.md); the message is for humans.

    Attributes set when the worker sent them (else ``None``): ``object_id`` (16 bytes), ``holder_namespace``,
    ``holder_name``, ``incarnation`` (16 bytes), ``worker_id`` (16 bytes), ``worker_address``; and ``status``, the
    gRPC status code of the call (``None`` for failures the client raises itself).
    """

    reason: str = "UNKNOWN"
    """The reason string; class-wide for the subclasses, per instance for reasons this client does not know."""

    transient: bool = False
    """True when the same call may succeed if tried again (STORE_FULL, CHECKSUM_MISMATCH, UNAVAILABLE, TIMEOUT)."""

    def __init__(
        self,
        message: str,
        *,
        reason: Optional[str] = None,
        status: Optional[grpc.StatusCode] = None,
        object_id: Optional[bytes] = None,
        holder_namespace: Optional[str] = None,
        holder_name: Optional[str] = None,
        incarnation: Optional[bytes] = None,
        worker_id: Optional[bytes] = None,
        worker_address: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.status = status
        self.object_id = object_id
        self.holder_namespace = holder_namespace
        self.holder_name = holder_name
        self.incarnation = incarnation
        self.worker_id = worker_id
        self.worker_address = worker_address


class OwnerDiedError(RaySharingError):
    """The object's owner (a holder, or the session that put it) is dead and its objects were freed with it."""

    reason = "OWNER_DIED"


class ObjectFreedError(RaySharingError):
    """The object was freed by reference counting: no key registered it and no session borrowed it."""

    reason = "OBJECT_FREED"


class ObjectLostError(RaySharingError):
    """The object's bytes are gone although its owner lives (a spill file damaged, or the storing worker died)."""

    reason = "OBJECT_LOST"


class ObjectNotFoundError(RaySharingError):
    """No object with this id exists on the worker, or it was freed so long ago that the worker forgot it."""

    reason = "OBJECT_NOT_FOUND"


class HolderNotFoundError(RaySharingError):
    """No live holder has this namespace and name."""

    reason = "HOLDER_NOT_FOUND"


class KeyNotFoundError(RaySharingError):
    """The holder has no such key in its registry. ``key`` is the key that was asked for."""

    reason = "KEY_NOT_FOUND"
    key: Optional[str] = None


class TypeMismatchError(RaySharingError):
    """The object's codec is not the one the caller asked for, or its bytes do not decode as asked."""

    reason = "TYPE_MISMATCH"


class StoreFullError(RaySharingError):
    """The worker's object store has no room for the object. Transient: others may free room."""

    reason = "STORE_FULL"
    transient = True


class InvalidEnvelopeError(RaySharingError, ValueError):
    """Bytes that were to be a ref envelope are not one, or the envelope does not match the object stored under its id."""

    reason = "INVALID_ENVELOPE"


class NotOwnerError(RaySharingError):
    """A ref given to a holder's register is not owned by that holder; a holder registers only objects it owns."""

    reason = "NOT_OWNER"


class SessionExpiredError(RaySharingError):
    """The session has ended (closed, or its lease lapsed). Open a new one."""

    reason = "SESSION_EXPIRED"


class ChecksumMismatchError(RaySharingError):
    """Bytes did not match their declared CRC-32 or size, on the way to the worker or back. Transient."""

    reason = "CHECKSUM_MISMATCH"
    transient = True


class ObjectTooLargeError(RaySharingError):
    """An object larger than a unary call carries went to a unary call. The client picks streams itself."""

    reason = "OBJECT_TOO_LARGE"


class InvalidRequestError(RaySharingError):
    """The request was malformed: a name that breaks the name rules, a bad size, an unknown codec."""

    reason = "INVALID_REQUEST"


class RaySharingTimeoutError(RaySharingError, TimeoutError):
    """A call or a stream did not complete in time. Also a ``TimeoutError``, so existing timeout handlers catch it."""

    reason = "TIMEOUT"
    transient = True


class WorkerUnavailableError(RaySharingError):
    """The worker could not be reached: nothing listening, or the connection refused or lost. Transient."""

    reason = "UNAVAILABLE"
    transient = True


class WrongWorkerError(RaySharingError):
    """The ref lives on another worker (``worker_address``, ``worker_id``): use it through a session there."""

    reason = "WRONG_WORKER"


class ListChangedError(RaySharingError):
    """A key's list was unregistered while it was read in pages, again on every retry."""

    reason = "LIST_CHANGED"


class MessageTooLargeError(RaySharingError):
    """A gRPC message was larger than its receiver accepts. Send less in one call."""

    reason = "MESSAGE_TOO_LARGE"


class UnimplementedError(RaySharingError):
    """The worker has no such method or service."""

    reason = "UNIMPLEMENTED"


class ProtocolError(RaySharingError):
    """The request broke gRPC's framing: a bug in the caller's gRPC stack."""

    reason = "PROTOCOL_ERROR"


class WorkerInternalError(RaySharingError):
    """The worker failed unexpectedly: a fault in the worker, not in the request. Report it with the worker's log."""

    reason = "INTERNAL_ERROR"


class UnauthorizedError(RaySharingError):
    """The caller is not allowed to do this (shared memory attached with a wrong secret)."""

    reason = "UNAUTHORIZED"


ERRORS_BY_REASON: Dict[str, Type[RaySharingError]] = {
    cls.reason: cls
    for cls in (
        OwnerDiedError, ObjectFreedError, ObjectLostError, ObjectNotFoundError, HolderNotFoundError, KeyNotFoundError,
        TypeMismatchError, StoreFullError, InvalidEnvelopeError, NotOwnerError, SessionExpiredError,
        ChecksumMismatchError, ObjectTooLargeError, InvalidRequestError, RaySharingTimeoutError, WorkerUnavailableError,
        WrongWorkerError, ListChangedError, MessageTooLargeError, UnimplementedError, ProtocolError, WorkerInternalError,
        UnauthorizedError,
    )
}
"""Every reason of protos/ERRORS.md and the exception class it raises."""

# ERRORS.md, "How a client maps a failed call", step 3: the status code decides when there is no rs-reason trailer.
_REASON_BY_STATUS = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "TIMEOUT",
    grpc.StatusCode.UNAVAILABLE: "UNAVAILABLE",
    grpc.StatusCode.CANCELLED: "UNAVAILABLE",
    grpc.StatusCode.PERMISSION_DENIED: "UNAUTHORIZED",
    grpc.StatusCode.UNAUTHENTICATED: "UNAUTHORIZED",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "MESSAGE_TOO_LARGE",
    grpc.StatusCode.INTERNAL: "UNAVAILABLE",
}


def from_rpc_error(error: grpc.RpcError, what: str) -> RaySharingError:
    """The exception for a failed call: its ``rs-reason`` trailer decides, else its status code (ERRORS.md).

    ``what`` names the call for the message, e.g. ``"Put"``.
    """
    code: Optional[grpc.StatusCode] = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    trailers = {}
    if hasattr(error, "trailing_metadata"):
        trailers = {key: value for key, value in (error.trailing_metadata() or ())}
    reason = trailers.get("rs-reason")
    if reason is None:
        reason = _REASON_BY_STATUS.get(code) if code is not None else None
        if reason is None:
            reason = code.name if code is not None else "UNKNOWN"
        message = f"{what} failed: {details} (gRPC status {code.name if code else 'unknown'}, no rs-reason trailer)"
    else:
        message = f"{what} failed: {details}"
    return from_reason(reason, message, {key: value for key, value in trailers.items() if key.startswith("rs-")},
                       status=code, percent_encoded=True)


def from_reason(reason: str, message: str, context: Dict[str, str], *, status: Optional[grpc.StatusCode] = None,
                percent_encoded: bool = False) -> RaySharingError:
    """The exception of a reason with its context (the ``rs-*`` trailers of ERRORS.md, or a channel error's detail map,
    whose names are the same and whose values are not percent-encoded)."""
    text = _text if percent_encoded else (lambda value: value if isinstance(value, str) else None)
    cls = ERRORS_BY_REASON.get(reason, RaySharingError)
    return cls(
        message,
        reason=reason,
        status=status,
        object_id=_hex(context.get("rs-object-id")),
        holder_namespace=text(context.get("rs-holder-namespace")),
        holder_name=text(context.get("rs-holder-name")),
        incarnation=_hex(context.get("rs-incarnation")),
        worker_id=_hex(context.get("rs-worker-id")),
        worker_address=text(context.get("rs-worker-address")),
    )


def _hex(value: Optional[str]) -> Optional[bytes]:
    try:
        return bytes.fromhex(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _text(value: Optional[str]) -> Optional[str]:
    return urllib.parse.unquote(value) if value is not None else None
