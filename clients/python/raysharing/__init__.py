"""RaySharing for Python: share objects between processes and languages through named holders.

Open a session with ``connect``; put objects with a holder as owner so they outlive this process; register their
refs under keys; any session, in any language, fetches the refs and gets the bytes::

    import raysharing

    with raysharing.connect("http://127.0.0.1:5000") as session:
        holder = session.get_or_create_holder("partitions")
        ref = session.put(b"partition bytes", owner=holder)
        holder.register("job-1", [ref])
        for part in holder.fetch("job-1"):
            data = session.get(part)

Refs travel as envelopes (``raysharing.envelope``, protos/ENVELOPE.md); failures raise the exception of their reason
(``raysharing.errors``, protos/ERRORS.md).
"""

from raysharing import errors
from raysharing.envelope import (
    CODECS,
    MAX_ENVELOPE_BYTES,
    MAX_STRING_BYTES,
    Envelope,
    Location,
    Owner,
    OwnerKind,
    decode,
    encode,
)
from raysharing.errors import (
    ChecksumMismatchError,
    HolderNotFoundError,
    InvalidEnvelopeError,
    InvalidRequestError,
    KeyNotFoundError,
    ListChangedError,
    MessageTooLargeError,
    NotOwnerError,
    ObjectFreedError,
    ObjectLostError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    OwnerDiedError,
    ProtocolError,
    RaySharingError,
    RaySharingTimeoutError,
    SessionExpiredError,
    StoreFullError,
    TypeMismatchError,
    UnauthorizedError,
    UnimplementedError,
    WorkerInternalError,
    WorkerUnavailableError,
    WrongWorkerError,
)

__all__ = [
    "CODECS", "MAX_ENVELOPE_BYTES", "MAX_STRING_BYTES", "Envelope", "Location", "Owner", "OwnerKind", "decode", "encode",
    "errors", "ChecksumMismatchError", "HolderNotFoundError", "InvalidEnvelopeError", "InvalidRequestError",
    "KeyNotFoundError", "ListChangedError", "MessageTooLargeError", "NotOwnerError", "ObjectFreedError", "ObjectLostError",
    "ObjectNotFoundError", "ObjectTooLargeError", "OwnerDiedError", "ProtocolError", "RaySharingError",
    "RaySharingTimeoutError", "SessionExpiredError", "StoreFullError", "TypeMismatchError", "UnauthorizedError",
    "UnimplementedError", "WorkerInternalError", "WorkerUnavailableError", "WrongWorkerError",
    "connect", "Session", "Holder", "HolderLifetime", "ObjectRef", "LostRef", "Stats",
]


def __getattr__(name: str):
    # The session needs the gRPC stubs generated from protos/ (generate-stubs.sh); the envelope and the errors do not,
    # so they import without them.
    if name in ("connect", "Session", "Holder", "HolderLifetime", "ObjectRef", "LostRef", "Stats"):
        from raysharing import session

        return getattr(session, name)
    raise AttributeError(f"module 'raysharing' has no attribute {name!r}")
