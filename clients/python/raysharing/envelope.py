"""The ref envelope, version 1 (protos/ENVELOPE.md).

An envelope is one MessagePack array of 9 elements: version, object id, owner, location, size, codec,
type name, checksum and integrity tag. ``encode`` writes every value in its smallest MessagePack form,
so one envelope has exactly one encoding (the golden vectors are compared byte for byte); ``decode``
accepts every format of the right type, skips elements a later version appends, and refuses anything
else with ``InvalidEnvelopeError`` (raysharing.errors).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Optional

import msgpack

from raysharing.errors import InvalidEnvelopeError

MAX_ENVELOPE_BYTES = 16384
"""The largest envelope a reader accepts, in bytes."""

MAX_STRING_BYTES = 1024
"""The longest string (and integrity tag) an envelope may hold, in UTF-8 bytes."""

CODECS = ("XLANG", "RAW", "ARROW")
"""How an object's bytes are read: plain MessagePack, opaque bytes, or an Arrow IPC stream."""

_VERSION = 1
_ID_BYTES = 16
_MAX_SIZE = 2**63 - 1
_MAX_CHECKSUM = 2**32 - 1




class OwnerKind(enum.IntEnum):
    """Who owns an object: a named holder, or the session that put it."""

    HOLDER = 1
    SESSION = 2


@dataclasses.dataclass(frozen=True)
class Owner:
    """The owner of an object. For a session, ``name`` is empty and ``incarnation`` is the session id."""

    kind: OwnerKind
    namespace: str
    name: str
    incarnation: bytes


@dataclasses.dataclass(frozen=True)
class Location:
    """The worker that stores an object's bytes: its gRPC address and its instance id."""

    address: str
    worker_id: bytes


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One ref envelope. Ids are 16 bytes; ``checksum`` is the CRC-32 of the object's bytes (``zlib.crc32``)."""

    object_id: bytes
    owner: Owner
    location: Location
    size: int
    codec: str
    type_name: str
    checksum: int
    integrity_tag: Optional[bytes] = None


def encode(envelope: Envelope) -> bytes:
    """Returns the envelope's bytes, every value in its smallest MessagePack form.

    Raises InvalidEnvelopeError when a field breaks the format's rules (an id that is not 16 bytes, a
    string over 1024 UTF-8 bytes, a holder without a name, ...): nothing invalid is ever written.
    """
    _check(envelope)
    owner, location = envelope.owner, envelope.location
    value = [
        _VERSION,
        envelope.object_id,
        [int(owner.kind), owner.namespace, owner.name, owner.incarnation],
        [location.address, location.worker_id],
        envelope.size,
        envelope.codec,
        envelope.type_name,
        envelope.checksum,
        envelope.integrity_tag,
    ]
    data = msgpack.packb(value, use_bin_type=True)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InvalidEnvelopeError(f"the envelope would be {len(data)} bytes; the limit is {MAX_ENVELOPE_BYTES}")
    return data


def decode(data: bytes) -> Envelope:
    """Reads one envelope, as strictly as protos/ENVELOPE.md's rules for readers say.

    Raises InvalidEnvelopeError, saying which rule the bytes break.
    """
    data = bytes(data)
    if not data:
        raise InvalidEnvelopeError("no bytes")
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InvalidEnvelopeError(f"{len(data)} bytes; an envelope is at most {MAX_ENVELOPE_BYTES}")
    try:
        # raw=False: str is text and bin is bytes, so the two are told apart. Strings that are not UTF-8 decode with
        # surrogates, refused where the envelope's own strings are read (_str) and skipped in appended elements, as
        # maps are, which stay pairs so that keys of any type decode (rule 8: appended elements are skipped).
        value = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True, unicode_errors="surrogateescape",
                                object_pairs_hook=MessagePackMap)
    except msgpack.ExtraData as error:
        raise InvalidEnvelopeError("bytes follow the envelope's one MessagePack value") from error
    except (ValueError, msgpack.UnpackException) as error:
        raise InvalidEnvelopeError(f"not one complete MessagePack value: {error}") from error

    fields = _array(value, 9, "the envelope")
    if not _is_int(fields[0]) or fields[0] != _VERSION:
        raise InvalidEnvelopeError(f"version {fields[0]!r}; this reader reads version {_VERSION}")
    owner_fields = _array(fields[2], 4, "the owner")
    location_fields = _array(fields[3], 2, "the location")
    kind = _int(owner_fields[0], "owner kind", 1, 2)
    envelope = Envelope(
        object_id=_id(fields[1], "object id"),
        owner=Owner(OwnerKind(kind), _str(owner_fields[1], "namespace"), _str(owner_fields[2], "name"), _id(owner_fields[3], "incarnation")),
        location=Location(_str(location_fields[0], "address"), _id(location_fields[1], "worker id")),
        size=_int(fields[4], "size", 0, _MAX_SIZE),
        codec=_str(fields[5], "codec"),
        type_name=_str(fields[6], "type name"),
        checksum=_int(fields[7], "checksum", 0, _MAX_CHECKSUM),
        integrity_tag=_tag(fields[8]),
    )
    if envelope.codec not in CODECS:
        raise InvalidEnvelopeError(f"codec {envelope.codec!r} is not one of {', '.join(CODECS)}")
    if envelope.owner.kind == OwnerKind.HOLDER and not envelope.owner.name:
        raise InvalidEnvelopeError("a holder owner has a name")
    return envelope


def _check(envelope: Envelope) -> None:
    owner, location = envelope.owner, envelope.location
    for value, what in ((envelope.object_id, "object id"), (owner.incarnation, "incarnation"), (location.worker_id, "worker id")):
        if not isinstance(value, (bytes, bytearray)) or len(value) != _ID_BYTES:
            got = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
            raise InvalidEnvelopeError(f"the {what} must be {_ID_BYTES} bytes; got {got}")
    for value, what in ((owner.namespace, "namespace"), (owner.name, "name"), (location.address, "address"),
                        (envelope.codec, "codec"), (envelope.type_name, "type name")):
        _str(value, what)
    if not isinstance(owner.kind, int) or isinstance(owner.kind, bool) or owner.kind not in (OwnerKind.HOLDER, OwnerKind.SESSION):
        raise InvalidEnvelopeError(f"owner kind {owner.kind!r} is not 1 (holder) or 2 (session)")
    if owner.kind == OwnerKind.HOLDER and not owner.name:
        raise InvalidEnvelopeError("a holder owner has a name")
    if owner.kind == OwnerKind.SESSION and owner.name:
        raise InvalidEnvelopeError("a session owner's name is empty")
    _int(envelope.size, "size", 0, _MAX_SIZE)
    _int(envelope.checksum, "checksum", 0, _MAX_CHECKSUM)
    if envelope.codec not in CODECS:
        raise InvalidEnvelopeError(f"codec {envelope.codec!r} is not one of {', '.join(CODECS)}")
    if envelope.integrity_tag is not None:
        if not isinstance(envelope.integrity_tag, (bytes, bytearray)) or len(envelope.integrity_tag) > MAX_STRING_BYTES:
            raise InvalidEnvelopeError(f"the integrity tag is None or at most {MAX_STRING_BYTES} bytes")


class MessagePackMap:
    """A MessagePack map as read: its pairs, unhashed (an appended element's keys may be arrays)."""

    def __init__(self, pairs: list) -> None:
        self.pairs = pairs


def _array(value: Any, count: int, what: str) -> list:
    if not isinstance(value, list):
        raise InvalidEnvelopeError(f"{what} is an array; got {type(value).__name__}")
    if len(value) < count:
        raise InvalidEnvelopeError(f"{what} has {count} elements; got {len(value)}")
    # Elements a later version appends are skipped, whatever their type (rule 8).
    return value[:count]


def _is_int(value: Any) -> bool:
    # A MessagePack boolean reads as a Python bool, which is an int too: not an integer here.
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, what: str, low: int, high: int) -> int:
    if not _is_int(value):
        raise InvalidEnvelopeError(f"the {what} is an integer; got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidEnvelopeError(f"the {what} {value} is outside {low} ... {high}")
    return value


def _id(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidEnvelopeError(f"the {what} is a bin; got {type(value).__name__}")
    if len(value) != _ID_BYTES:
        raise InvalidEnvelopeError(f"the {what} is {_ID_BYTES} bytes; got {len(value)}")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidEnvelopeError(f"the {what} is a str; got {type(value).__name__}")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as error:
        # A reader's bytes that are not UTF-8 decode with surrogates (decode), as does a writer's lone surrogate.
        raise InvalidEnvelopeError(f"the {what} is not well-formed UTF-8 (or holds a lone surrogate)") from error
    _string_length(encoded, what)
    return value


def _string_length(encoded: bytes, what: str) -> None:
    if len(encoded) > MAX_STRING_BYTES:
        raise InvalidEnvelopeError(f"the {what} is {len(encoded)} UTF-8 bytes; the limit is {MAX_STRING_BYTES}")


def _tag(value: Any) -> Optional[bytes]:
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise InvalidEnvelopeError(f"the integrity tag is nil or a bin; got {type(value).__name__}")
    if len(value) > MAX_STRING_BYTES:
        raise InvalidEnvelopeError(f"the integrity tag is {len(value)} bytes; the limit is {MAX_STRING_BYTES}")
    return value
