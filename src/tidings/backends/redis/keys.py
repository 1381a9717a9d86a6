"""Redis key names and stream ids: pure functions, the adapter's whole naming scheme in one place.

Keys (``P`` is ``RedisConfig.prefix``, default ``tidings:``; ``{T}`` is the
topic in braces, a Redis Cluster hash tag, so every key of one topic lives
in one slot and the Lua scripts that touch several of them stay legal):

=================================  ======  ==============================================
key                                type    holds
=================================  ======  ==============================================
``P{T}``                           hash    ``partitions``: the topic's partition count
``P{T}:<p>``                       stream  partition ``p``'s messages
``P{T}:id:<msg_id>``               string  ``"<p> <id>"`` of a stored ``msg_id``
                                           (``PX`` = the dedupe window)
``P{T}:retry:<token>``             string  the same, for a publish's own id (retries)
``P{T}:modes``                     hash    each group's mode (``partitioned`` or ``shared``)
``P{T}:delay:<group>:<p>``         zset    pending ids nacked with a delay; score = due ms
``P{T}:members:<group>``           zset    partitioned members; score = heartbeat expiry ms
``P{T}:lease:<group>:<p>``         string  the member that owns partition ``p`` (``PX``)
``P{T}:requests``                  list    requests waiting for a responder
``P{T}:requests`` (channel)        pubsub  one wake-up per request; PUBLISH counts responders
``Preply:<backend id>`` (channel)  pubsub  replies to one backend's requests
``Ptopics`` (channel)              pubsub  the name of each topic when it is created
=================================  ======  ==============================================

Topic and group names are ASCII letters, digits, ``_``, ``-`` and ``.``
(``tidings.protocol.names``), so they never contain ``:``, ``{`` or ``}``
and need no escaping.

Stream ids are ``<ms>-<offset>``: the millisecond part is the server's
append time (made monotonic per partition: ``max(now, last ms)``), the
sequence part is the partition offset, counted from 0 with no gaps. Since
both parts never decrease and the offset always grows, every id is greater
than the last, as ``XADD`` requires. See ``scripts.PUBLISH``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

MAX_SEQ: Final = 18446744073709551615
"""The largest sequence part of a stream id (2**64 - 1)."""


@dataclass(frozen=True, slots=True)
class StreamId:
    """A stream entry id in this adapter's scheme: append time (ms) and partition offset."""

    ms: int
    offset: int

    @classmethod
    def parse(cls, raw: bytes | str) -> StreamId:
        text = raw.decode() if isinstance(raw, bytes) else raw
        ms, _, seq = text.partition("-")
        return cls(int(ms), int(seq or 0))

    def __str__(self) -> str:
        return f"{self.ms}-{self.offset}"

    @property
    def append_time(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)


def time_start_id(moment: datetime) -> str:
    """The group position (last delivered id) that makes the next delivery the first stored at or after
    ``moment``: the greatest id of the millisecond before."""
    ms = int(moment.timestamp() * 1000)
    if moment.timestamp() * 1000 > ms:  # a partial millisecond: "at or after" starts at the next one
        ms += 1
    return "0-0" if ms <= 0 else f"{ms - 1}-{MAX_SEQ}"


@dataclass(frozen=True, slots=True)
class Keys:
    """The names of one topic's keys and channels under ``prefix``."""

    prefix: str
    topic: str

    @property
    def base(self) -> str:
        return f"{self.prefix}{{{self.topic}}}"

    @property
    def meta(self) -> str:
        return self.base

    def stream(self, partition: int) -> str:
        return f"{self.base}:{partition}"

    def msg_id(self, msg_id: str) -> str:
        return f"{self.base}:id:{msg_id}"

    def retry_id(self, token: str) -> str:
        """Where a publish's own id is remembered: its retries after a lost connection store nothing new."""
        return f"{self.base}:retry:{token}"

    @property
    def modes(self) -> str:
        return f"{self.base}:modes"

    def delay(self, group: str, partition: int) -> str:
        return f"{self.base}:delay:{group}:{partition}"

    def members(self, group: str) -> str:
        return f"{self.base}:members:{group}"

    def lease(self, group: str, partition: int) -> str:
        return f"{self.base}:lease:{group}:{partition}"

    @property
    def requests(self) -> str:
        """The request list, and the channel its responders listen on (separate namespaces in Redis)."""
        return f"{self.base}:requests"


def topics_channel(prefix: str) -> str:
    """Where each new topic's name is published when it is created."""
    return f"{prefix}topics"


def meta_pattern(prefix: str) -> str:
    """A ``SCAN MATCH`` glob for every topic's meta hash (glob characters of the prefix escaped)."""
    escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in prefix)
    return f"{escaped}{{*}}"


def topic_of_meta(prefix: str, key: str) -> str | None:
    """The topic whose meta hash ``key`` is, or None for another key."""
    if not (key.startswith(f"{prefix}{{") and key.endswith("}")):
        return None
    topic = key[len(prefix) + 1 : -1]
    return None if "{" in topic or "}" in topic else topic


def reply_channel(prefix: str, backend_id: str) -> str:
    return f"{prefix}reply:{backend_id}"
