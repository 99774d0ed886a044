"""RaySharing for Python: share objects between processes and languages through named holders.

This first part of the package is the ref envelope (protos/ENVELOPE.md), the MessagePack value every
language hands around to name an object, its owner and the worker that stores it.
"""

from raysharing.envelope import (
    CODECS,
    MAX_ENVELOPE_BYTES,
    MAX_STRING_BYTES,
    Envelope,
    InvalidEnvelopeError,
    Location,
    Owner,
    OwnerKind,
    decode,
    encode,
)

__all__ = [
    "CODECS",
    "MAX_ENVELOPE_BYTES",
    "MAX_STRING_BYTES",
    "Envelope",
    "InvalidEnvelopeError",
    "Location",
    "Owner",
    "OwnerKind",
    "decode",
    "encode",
]
