"""What the SDK hands to user code: ``Message`` and ``PublishResult``, and how data becomes bytes.

A record on the wire is bytes. Users publish ``bytes``, ``str`` (UTF-8) or
any JSON-serialisable object (encoded with ``msgspec.json``, which also
takes dataclasses, msgspec Structs, datetimes and UUIDs). Consumers get the
bytes back as ``Message.data`` and decode with ``.text()`` or ``.json()``:
the SDK does not guess, because a payload that happens to parse as JSON is
not necessarily JSON.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Literal, Protocol, overload

import msgspec

from tidings.errors import TidingsError
from tidings.protocol import AtOffset, AtTime, Earliest, Latest, Start
from tidings.records import Record

HeadersIn = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]]
StartIn = Literal["earliest", "latest"] | int | datetime
Settlement = Literal["ack", "nack", "term"]


class PublishResult(msgspec.Struct, frozen=True):
    """Where a published event was stored, once the broker made it durable.

    A frozen ``msgspec.Struct`` rather than a frozen dataclass: ``publish_many``
    makes one per event, and a frozen dataclass's ``__init__`` (an
    ``object.__setattr__`` per field) cost about a fifth of the client's time
    for a chunk of a thousand 1 KiB events; the Struct is built in C. It
    compares, hashes and prints the same way.
    """

    topic: str
    partition: int
    offset: int


class PublishResults(Sequence[PublishResult]):
    """The results of one ``publish_many``, in the order of its items: a sequence of ``PublishResult``.

    It holds one ``(partition, first offset, count)`` run per batch the call
    filled, and makes each ``PublishResult`` when it is asked for. Building a
    thousand of them up front cost a publish_many of a thousand 100 B events
    about a tenth of its time, for callers that mostly look at none of them.
    It compares equal to any sequence of the same results (a list too).
    """

    __slots__ = ("_ends", "_runs", "_topic")

    def __init__(self, topic: str, runs: Sequence[tuple[int, int, int]]) -> None:
        self._topic = topic
        self._runs = tuple(runs)
        self._ends = tuple(accumulate(count for _, _, count in self._runs))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    @overload
    def __getitem__(self, index: int) -> PublishResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[PublishResult]: ...

    def __getitem__(self, index: int | slice) -> PublishResult | list[PublishResult]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("publish result index out of range")
        run = bisect_right(self._ends, index)
        partition, first, count = self._runs[run]
        return PublishResult(self._topic, partition, first + index - (self._ends[run] - count))

    def __iter__(self) -> Iterator[PublishResult]:
        topic = self._topic
        for partition, first, count in self._runs:
            for offset in range(first, first + count):
                yield PublishResult(topic, partition, offset)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # a sequence, compared by its items

    def __repr__(self) -> str:
        return f"PublishResults({list(self)!r})"


class Settler(Protocol):
    """What a Message calls to settle itself or to reply: its subscription."""

    def settle(self, message: Message, how: Settlement, *, delay: float, reason: str | None) -> None: ...

    def reply(self, message: Message, data: Any, headers: HeadersIn | None) -> Awaitable[None]: ...


class Message:
    """One event delivered to a subscription, or one request delivered to a responder.

    ``timestamp`` is when the producer created the event (its clock);
    ``append_time`` is when the broker stored it (the broker's clock).
    ``delivery_count`` is 1 on the first delivery and grows with each
    redelivery. Settle each message once, with ``ack``, ``nack`` or ``term``:
    the first settlement counts, later ones are ignored. A request (see
    ``is_request``) is answered with ``reply`` instead; it is not stored, so
    its ``partition`` and ``offset`` are -1 and settling it does nothing.
    """

    __slots__ = (
        "_headers",
        "_record",
        "_reply_id",
        "_settled",
        "_settler",
        "data",
        "delivery_count",
        "key",
        "offset",
        "partition",
        "reply_to",
        "topic",
    )

    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        record: Record,
        delivery_count: int = 1,
        settler: Settler | None = None,
        reply_id: int | None = None,
        reply_to: str | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = record.key
        self.data = record.value
        self._record = record
        self._headers: dict[str, bytes] | None = None
        self.delivery_count = delivery_count
        self.reply_to = reply_to
        self._settler = settler
        self._reply_id = reply_id
        self._settled: Settlement | None = None

    def __repr__(self) -> str:
        where = "request" if self.is_request else f"{self.partition}@{self.offset}"
        state = f" {self._settled}ed" if self._settled else ""
        return (
            f"<Message {self.topic}/{where} key={self.key!r} {len(self.data)} bytes "
            f"delivery={self.delivery_count}{state}>"
        )

    # The record's times and headers become Python objects on first use: a consumer that reads
    # only ``data`` (most do) skips two datetimes and a dict per message.
    @property
    def timestamp(self) -> datetime:
        return _datetime(self._record.timestamp)

    @property
    def append_time(self) -> datetime | None:
        return _datetime(self._record.append_time) if self._record.append_time else None

    @property
    def headers(self) -> dict[str, bytes]:
        if self._headers is None:
            self._headers = dict(self._record.headers)
        return self._headers

    @property
    def is_request(self) -> bool:
        """True for a request from ``client.request``: answer it with ``reply``."""
        return self._reply_id is not None or self.reply_to is not None

    @property
    def settled(self) -> Settlement | None:
        """How this message was settled: ``"ack"``, ``"nack"``, ``"term"``, or None so far."""
        return self._settled

    def text(self) -> str:
        return self.data.decode("utf-8")

    def json(self) -> Any:
        """The data decoded as JSON. ``msgspec.DecodeError`` (a ``ValueError``) if it is not JSON."""
        return msgspec.json.decode(self.data)

    async def ack(self) -> None:
        """Done with it: it will not be redelivered. Sent coalesced with other acks within a few ms."""
        self._settle("ack")

    async def nack(self, delay: float = 0.0, *, reason: str | None = None) -> None:
        """Failed: redeliver it after ``delay`` seconds (dead-lettered past ``max_deliveries``)."""
        if delay < 0:
            raise ValueError(f"nack delay must be >= 0 seconds, not {delay}")
        self._settle("nack", delay=delay, reason=reason)

    async def term(self, reason: str | None = None) -> None:
        """Never redeliver it: it goes to the dead-letter topic with ``reason``."""
        self._settle("term", reason=reason)

    async def reply(self, data: Any, *, headers: HeadersIn | None = None) -> None:
        """Answer a request (``is_request``). ``TidingsError`` for an ordinary message."""
        if not self.is_request or self._settler is None:
            raise TidingsError(f"{self!r} is not a request: there is no one to reply to")
        await self._settler.reply(self, data, headers)

    def _settle(self, how: Settlement, *, delay: float = 0.0, reason: str | None = None) -> None:
        if self._settled is not None or self.is_request:
            return
        self._settled = how
        if self._settler is not None:
            self._settler.settle(self, how, delay=delay, reason=reason)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# -- encoding what users publish --------------------------------------------------------------


def encode_data(data: Any) -> bytes:
    """bytes-like as is, str as UTF-8, anything else as JSON (``TypeError`` if it cannot be)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    try:
        return msgspec.json.encode(data)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(
            f"cannot publish {type(data).__name__}: not bytes, str or JSON-serialisable ({exc})"
        ) from exc


def encode_key(key: str | bytes | None) -> bytes | None:
    return key.encode("utf-8") if isinstance(key, str) else key


def encode_headers(headers: HeadersIn | None) -> list[tuple[str, bytes]] | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (name, value.encode("utf-8") if isinstance(value, str) else bytes(value)) for name, value in items
    ]


def start_position(start: StartIn) -> Start:
    """``"earliest"``, ``"latest"``, an offset (int >= 0) or a datetime, as a protocol start position."""
    if start == "earliest":
        return Earliest()
    if start == "latest":
        return Latest()
    if isinstance(start, datetime):
        moment = start if start.tzinfo else start.astimezone()  # naive means local time, as Python does
        return AtTime(time=max(0, int(moment.timestamp() * 1000)))
    if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
        return AtOffset(offset=start)
    raise ValueError(f"start must be 'earliest', 'latest', an offset >= 0 or a datetime, not {start!r}")
