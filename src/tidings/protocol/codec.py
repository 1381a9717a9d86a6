"""The frame byte layout: turning frames into buffers and received bytes into frames.

All integers are little-endian, as in the record-batch format. A frame is a
9-byte prefix, a msgpack header and a raw payload::

    off  size  field          meaning
      0     4  length         uint32  bytes after this field: 5 + header_length + payload bytes
      4     1  kind           uint8   which frame (FrameKind): 1 Hello, 10 Produce, 24 Deliver, ...
      5     4  header_length  uint32  bytes of the header
      9     H  header         msgpack array of the frame's fields, in declaration order (msgspec
                              ``array_like``), without the payload field
    9+H     P  payload        record batches, concatenated, exactly as ``tidings.records`` built them;
                              empty for every kind but Produce, Deliver, Request and Reply

``length`` is what the receiver's ``max_frame_size`` bounds, so the receiver
can refuse an oversized frame from its first four bytes, before buffering it.
The payload needs no length table. Each batch starts with its own 64-byte
header, whose uint32 at offset 16 is the batch's length (see
``tidings.records.layout``), so the decoder walks the payload batch by batch.
It checks that the batches tile the payload exactly and that each is at
least a batch header long. It does not check CRCs or records. The broker
runs ``check_batch`` on each batch it receives, and only once.

Why this shape:

* **No copies of batches.** ``encode`` returns ``[prefix + header, batch, batch, ...]``.
  The header is a fresh ``bytearray``; the batches are the caller's own
  buffers, ready for ``writev``/``transport.writelines``. ``decode_frame``
  returns batches as ``memoryview`` slices of the frame's bytes.
* **Typed headers, validated once.** One ``msgspec.msgpack.Decoder`` per
  kind, typed with the frame's struct, does the parsing, the type checks and
  the range checks in C, with no per-call setup. One shared ``Encoder``
  writes every header.
* **Extensible.** Arrays rather than maps keep headers small. A decoder
  ignores trailing fields it does not know, so fields may be appended within
  a protocol version. Kinds unknown to the receiver are malformed.

Nothing a peer sends can make these functions raise anything but
``MalformedFrame``. The fuzz tests in ``tests/protocol`` hold them to that.
"""

from __future__ import annotations

import enum
import operator
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from tidings.errors import FrameTooLarge, MalformedFrame
from tidings.protocol import frames as F
from tidings.records import Buffer
from tidings.records import layout as L

LENGTH: Final = struct.Struct("<I")
PREFIX: Final = struct.Struct("<IBI")  # length, kind, header_length
LENGTH_SIZE: Final = LENGTH.size  # 4
PREFIX_SIZE: Final = PREFIX.size  # 9
KIND_AND_HEADER_LENGTH: Final = struct.Struct("<BI")
MIN_FRAME_LENGTH: Final = KIND_AND_HEADER_LENGTH.size  # 5: a frame with an empty header
DEFAULT_MAX_FRAME_SIZE: Final = 8 * 1024 * 1024

BATCH_LENGTH: Final = struct.Struct("<I")
BATCH_LENGTH_OFFSET: Final = 16  # layout.HEADER: base_offset int64, append_time int64, then length uint32


class Payload(enum.Enum):
    """What a kind carries after its header."""

    NONE = "none"
    BATCHES = "batches"  # one or more batches, in the field ``batches``
    BATCH = "batch"  # exactly one batch, in the field ``batch``


@dataclass(frozen=True, slots=True)
class KindCodec:
    """How one frame kind is written and read: built once, at import."""

    kind: F.FrameKind
    frame_type: type[F.Frame]
    payload: Payload
    decoder: msgspec.msgpack.Decoder[Any]
    header_of: Callable[[F.Frame], Any]
    """What ``encode`` writes as the header: the frame itself, or its header fields as a tuple."""


FRAME_TYPES: Final[Mapping[F.FrameKind, tuple[type[F.Frame], Payload]]] = {
    F.FrameKind.HELLO: (F.Hello, Payload.NONE),
    F.FrameKind.WELCOME: (F.Welcome, Payload.NONE),
    F.FrameKind.CLOSE: (F.Close, Payload.NONE),
    F.FrameKind.ERROR: (F.Error, Payload.NONE),
    F.FrameKind.PING: (F.Ping, Payload.NONE),
    F.FrameKind.PONG: (F.Pong, Payload.NONE),
    F.FrameKind.PRODUCE: (F.Produce, Payload.BATCHES),
    F.FrameKind.PRODUCE_RESULT: (F.ProduceResult, Payload.NONE),
    F.FrameKind.SUBSCRIBE: (F.Subscribe, Payload.NONE),
    F.FrameKind.SUBSCRIBED: (F.Subscribed, Payload.NONE),
    F.FrameKind.UNSUBSCRIBE: (F.Unsubscribe, Payload.NONE),
    F.FrameKind.UNSUBSCRIBED: (F.Unsubscribed, Payload.NONE),
    F.FrameKind.DELIVER: (F.Deliver, Payload.BATCHES),
    F.FrameKind.CREDIT: (F.Credit, Payload.NONE),
    F.FrameKind.ACK: (F.Ack, Payload.NONE),
    F.FrameKind.NACK: (F.Nack, Payload.NONE),
    F.FrameKind.TERM: (F.Term, Payload.NONE),
    F.FrameKind.REQUEST: (F.Request, Payload.BATCH),
    F.FrameKind.REPLY: (F.Reply, Payload.BATCH),
    F.FrameKind.NO_RESPONDERS: (F.NoResponders, Payload.NONE),
    F.FrameKind.ADMIN_REQUEST: (F.AdminRequest, Payload.NONE),
    F.FrameKind.ADMIN_RESPONSE: (F.AdminResponse, Payload.NONE),
}
"""Every frame kind, its struct and its payload: the one table the codec works from."""


def _kind_codec(kind: F.FrameKind, frame_type: type[F.Frame], payload: Payload) -> KindCodec:
    if frame_type.kind is not kind:
        raise AssertionError(f"{frame_type.__name__}.kind is {frame_type.kind!r}, the table says {kind!r}")
    if payload is Payload.NONE:
        # Frames without a payload are their own header: decode straight into the frame.
        return KindCodec(kind, frame_type, payload, msgspec.msgpack.Decoder(frame_type), _itself)
    # The header of a payload kind is the frame without its payload field: an array-like
    # struct made from the frame's own field list, so the two cannot drift apart.
    header_fields = [f for f in msgspec.structs.fields(frame_type) if f.name != payload.value]
    header_type = msgspec.defstruct(
        f"{frame_type.__name__}Header",
        [_field_spec(f) for f in header_fields],
        array_like=True,
        frozen=True,
    )
    fields = tuple(f.name for f in header_fields)
    return KindCodec(kind, frame_type, payload, msgspec.msgpack.Decoder(header_type), _fields_getter(fields))


def _itself(frame: F.Frame) -> F.Frame:
    return frame


def _fields_getter(fields: tuple[str, ...]) -> Callable[[F.Frame], tuple[Any, ...]]:
    """The named fields of a frame as a tuple (msgpack writes it as the header array), in C."""
    getter = operator.attrgetter(*fields)
    if len(fields) > 1:
        return getter  # attrgetter of several names returns a tuple already
    return lambda frame: (getter(frame),)


def _field_spec(field: msgspec.structs.FieldInfo) -> tuple[str, Any] | tuple[str, Any, Any]:
    if field.required:
        return (field.name, field.type)
    if field.default_factory is not msgspec.NODEFAULT:
        return (field.name, field.type, msgspec.field(default_factory=field.default_factory))
    return (field.name, field.type, field.default)


CODECS: Final[Mapping[int, KindCodec]] = {
    int(kind): _kind_codec(kind, frame_type, payload) for kind, (frame_type, payload) in FRAME_TYPES.items()
}

_encoder: Final = msgspec.msgpack.Encoder()


def encode(frame: F.Frame, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> list[Buffer]:
    """The buffers that carry ``frame``: prefix and header first, then the caller's batches.

    Nothing is copied but the header. Raises ``FrameTooLarge`` if the frame's
    length field would exceed ``max_frame_size`` (the peer's limit). Raises
    ``MalformedFrame`` if a batch's own length disagrees with its buffer,
    because the peer would reject the frame for it.
    """
    codec = CODECS[frame.kind]
    payload = codec.payload
    batches: tuple[Buffer, ...]
    if payload is Payload.NONE:
        batches = ()
    elif payload is Payload.BATCH:
        batches = (getattr(frame, "batch"),)  # noqa: B009 - typed per kind
    else:
        batches = getattr(frame, "batches")  # noqa: B009
    out = bytearray(PREFIX_SIZE)
    _encoder.encode_into(codec.header_of(frame), out, PREFIX_SIZE)
    header_length = len(out) - PREFIX_SIZE
    payload_length = 0
    for index, batch in enumerate(batches):
        size = batch.nbytes if type(batch) is memoryview else len(batch)
        if size < L.HEADER_SIZE or BATCH_LENGTH.unpack_from(batch, BATCH_LENGTH_OFFSET)[0] != size:
            raise MalformedFrame(
                f"{type(frame).__name__} batch {index} is {size} bytes, which is not one whole record batch"
            )
        payload_length += size
    length = MIN_FRAME_LENGTH + header_length + payload_length
    if length > max_frame_size:
        raise FrameTooLarge(
            f"{type(frame).__name__} frame of {length} bytes exceeds the peer's limit of {max_frame_size}"
        )
    PREFIX.pack_into(out, 0, length, frame.kind, header_length)
    return [out, *batches]


def encode_bytes(frame: F.Frame, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """``encode`` joined into one ``bytes``: for tests and tools, not the hot path."""
    return b"".join(encode(frame, max_frame_size=max_frame_size))


def split_batches(payload: memoryview, kind_name: str) -> list[memoryview]:
    """Cut a payload into its batches by their own length fields: slices, no copies."""
    out: list[memoryview] = []
    position = 0
    end = len(payload)
    while position < end:
        if end - position < L.HEADER_SIZE:
            raise MalformedFrame(
                f"{kind_name} payload ends with {end - position} bytes at position {position}, "
                f"less than a {L.HEADER_SIZE}-byte batch header"
            )
        (length,) = BATCH_LENGTH.unpack_from(payload, position + BATCH_LENGTH_OFFSET)
        if length < L.HEADER_SIZE or length > end - position:
            raise MalformedFrame(
                f"{kind_name} batch {len(out)} at payload position {position} claims {length} bytes; "
                f"{end - position} remain"
            )
        out.append(payload[position : position + length])
        position += length
    return out


def decode_frame(body: memoryview) -> F.Frame:
    """Decode one frame from ``body``, the ``length`` bytes after its length field.

    Raises ``MalformedFrame`` naming the problem, whatever ``body`` holds.
    """
    if len(body) < MIN_FRAME_LENGTH:
        raise MalformedFrame(f"{len(body)}-byte frame is shorter than the {MIN_FRAME_LENGTH}-byte minimum")
    kind, header_length = KIND_AND_HEADER_LENGTH.unpack_from(body, 0)
    codec = CODECS.get(kind)
    if codec is None:
        raise MalformedFrame(f"unknown frame kind {kind}")
    name = codec.frame_type.__name__
    if header_length > len(body) - MIN_FRAME_LENGTH:
        raise MalformedFrame(
            f"{name} header length {header_length} exceeds the frame's {len(body) - MIN_FRAME_LENGTH} bytes"
        )
    header_end = MIN_FRAME_LENGTH + header_length
    try:
        header = codec.decoder.decode(body[MIN_FRAME_LENGTH:header_end])
    except (msgspec.DecodeError, ValueError) as exc:
        # ValidationError is a DecodeError; invalid UTF-8 in a str field is a UnicodeDecodeError
        # (a ValueError), which msgspec lets through: the fuzz tests found it.
        raise MalformedFrame(f"bad {name} header: {exc}") from None
    payload = body[header_end:]
    if codec.payload is Payload.NONE:
        if payload:
            raise MalformedFrame(f"{name} frame carries {len(payload)} payload bytes; it has no payload")
        frame: F.Frame = header
        return frame
    batches = split_batches(payload, name)
    values = msgspec.structs.asdict(header)
    if codec.payload is Payload.BATCH:
        if len(batches) != 1:
            raise MalformedFrame(f"{name} frame carries {len(batches)} batches; it carries exactly one")
        values["batch"] = batches[0]
    else:
        values["batches"] = tuple(batches)
    try:
        return codec.frame_type(**values)
    except ValueError as exc:
        raise MalformedFrame(f"bad {name} frame: {exc}") from None
