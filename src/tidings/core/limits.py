"""The broker's resource limits that are decisions, not I/O: pure checks the server and the core call.

* ``ConnectionCounter``: connections in total and per client IP. The server
  asks ``admit`` when a socket is accepted and refuses it (an Error frame
  naming the limit, then close) before reading a byte of it.
* ``check_headers``: the largest headers section a record may carry. It
  reads only the 24-byte record prefixes (``tidings.records.layout``), never
  the records themselves, and skips the walk altogether for a batch whose
  records are smaller than the limit in total, which is the common case.
* ``LimitExceeded`` (``tidings.errors``): the error every limit raises, its message naming the
  limit and its configured value, so the user knows which setting to change.

Limits on topics (``max_topics``, ``max_partitions``) are checked by the core
where topics are created; frame size, handshake time, produce bytes in flight
and the send buffer are the session's (``tidings.server.session``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.core.topics import TopicRegistry
from tidings.errors import LimitExceeded, TidingsError
from tidings.protocol.admin import CreateTopic
from tidings.protocol.frames import AdminRequest, Frame, Produce, Subscribe
from tidings.protocol.names import is_wildcard
from tidings.records import Buffer, layout
from tidings.records.batch import read_header, record_with_headers_over


@dataclass(slots=True)
class ConnectionCounter:
    """Open connections, in total and per IP. ``None`` means no limit."""

    max_total: int | None = None
    max_per_ip: int | None = None
    total: int = 0
    by_ip: dict[str, int] = field(default_factory=dict)

    def admit(self, ip: str) -> LimitExceeded | None:
        """Count a new connection from ``ip``, or return why it is refused (and count nothing)."""
        if self.max_total is not None and self.total >= self.max_total:
            return LimitExceeded(
                f"the broker has reached max_connections ({self.max_total}); try again later"
            )
        held = self.by_ip.get(ip, 0)
        if self.max_per_ip is not None and held >= self.max_per_ip:
            return LimitExceeded(
                f"{ip} has reached max_connections_per_ip ({self.max_per_ip}); close some connections first"
            )
        self.total += 1
        self.by_ip[ip] = held + 1
        return None

    def release(self, ip: str) -> None:
        """A connection ``admit`` counted has closed."""
        held = self.by_ip.get(ip, 0)
        if held <= 0:
            return
        self.total -= 1
        if held == 1:
            del self.by_ip[ip]
        else:
            self.by_ip[ip] = held - 1


def check_headers(batch: Buffer, limit: int) -> None:
    """Raise ``LimitExceeded`` when a record of ``batch`` has a headers section over ``limit`` bytes.

    It runs before the produce path validates the batch, so a malformed
    batch simply ends the walk: the produce path then rejects it with the
    precise reason. The walk over the record prefixes is in C
    (``record_with_headers_over``), a few ns a record; in Python it was a
    tenth of the broker's time under ``publish_many``. It is skipped for a
    batch smaller than ``limit`` in all, which no record of it can exceed.
    """
    if len(batch) - layout.HEADER_SIZE <= limit:
        return
    try:
        count = read_header(batch).record_count
    except TidingsError:
        return
    over = record_with_headers_over(batch, count, limit)
    if over is not None:
        index, headers_len = over
        raise LimitExceeded(
            f"record {index} of a batch has {headers_len} bytes of headers; max_headers_bytes is {limit}"
        )


@dataclass(frozen=True, slots=True)
class TopicLimits:
    """The limits a frame can break in the core: topic count, partitions per topic, headers per record."""

    topics: TopicRegistry
    max_topics: int | None
    max_partitions: int
    max_headers_bytes: int | None

    def check(self, frame: Frame, *, auto_create: bool) -> None:
        """Raise ``LimitExceeded`` if ``frame`` would go past a limit. Before any state changes."""
        if isinstance(frame, Produce):
            if auto_create and self.topics.find(frame.topic) is None:
                self._room_for(frame.topic)
            if self.max_headers_bytes is not None:
                for batch in frame.batches:
                    check_headers(batch, self.max_headers_bytes)
        elif isinstance(frame, Subscribe):
            if auto_create and not is_wildcard(frame.topic) and self.topics.find(frame.topic) is None:
                self._room_for(frame.topic)
        elif isinstance(frame, AdminRequest) and isinstance(frame.body, CreateTopic):
            body = frame.body
            if body.partitions > self.max_partitions:
                raise LimitExceeded(
                    f"topic {body.name!r}: {body.partitions} partitions asked; "
                    f"max_partitions is {self.max_partitions}"
                )
            if self.topics.find(body.name) is None:
                self._room_for(body.name)

    def _room_for(self, name: str) -> None:
        limit = self.max_topics
        if limit is not None and len(self.topics.names()) >= limit:
            raise LimitExceeded(f"cannot create topic {name!r}: the broker has max_topics ({limit}) topics")
