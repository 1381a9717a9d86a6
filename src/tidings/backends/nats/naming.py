"""Where a topic lives in JetStream: stream, subjects, consumer and request subject names (pure).

A Tidings topic is dot-separated tokens of ``[A-Za-z0-9_-]`` (``orders.placed``);
a JetStream stream or consumer name may not contain a dot. Names are therefore
*escaped*, one way and without collisions:

* ``.`` becomes ``-``; ``-`` becomes ``_h``; ``_`` becomes ``_u``. Decoding is
  unambiguous (``_`` always starts a two-character escape, ``-`` is always a
  dot), so two topics never share a stream. The common dotted name stays
  readable: ``orders.placed`` -> ``TIDINGS_orders-placed``.
* A name whose escape is longer than ``MAX_ESCAPED`` keeps a prefix and ends
  in ``_x`` plus 16 hex digits of its SHA-256 (``_x`` is no escape, so a
  hashed name never equals a plain one).

Subjects. Partition ``p`` of topic ``t`` is the subject ``tidings.<t>.p<p>``.
The stream of ``t`` lists its partitions' subjects one by one, with no
wildcard, so ``a.b`` (``tidings.a.b.p0``) and ``a.b.p0``
(``tidings.a.b.p0.p0``) never overlap: the last token is the partition, the
ones before it the topic. Requests go to ``tidings-request.<t>``, under another
root token, so no stream ever stores them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

SUBJECT_ROOT: Final = "tidings"
"""First token of every stored subject."""
REQUEST_ROOT: Final = "tidings-request"
"""First token of request subjects: core NATS only, never captured by a stream."""
STREAM_PREFIX: Final = "TIDINGS_"
MAX_ESCAPED: Final = 200
"""Longest escaped name kept whole; JetStream names become file names, which have limits."""

_ESCAPES: Final = {".": "-", "-": "_h", "_": "_u"}
_PARTITION_TOKEN: Final = re.compile(r"^p(0|[1-9][0-9]*)\Z")


def escape(name: str) -> str:
    """``name`` as a JetStream-safe, collision-free token (see the module docstring)."""
    escaped = "".join(_ESCAPES.get(char, char) for char in name)
    if len(escaped) <= MAX_ESCAPED:
        return escaped
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{escaped[: MAX_ESCAPED - 18]}_x{digest}"


def stream_name(topic: str) -> str:
    """The stream that stores ``topic``: ``TIDINGS_`` and the escaped topic."""
    return STREAM_PREFIX + escape(topic)


def consumer_name(group: str) -> str:
    """The durable consumer of ``group`` on a topic's stream (consumers are named per stream)."""
    return escape(group)


def partition_consumer_name(group: str, partition: int) -> str:
    """The consumer of ``group`` for one partition (partitioned mode); ``_p`` is no escape: unique."""
    return f"{escape(group)}_p{partition}"


def subject(topic: str, partition: int) -> str:
    """The subject partition ``partition`` of ``topic`` is stored under."""
    return f"{SUBJECT_ROOT}.{topic}.p{partition}"


def subjects(topic: str, partitions: int) -> list[str]:
    """Every subject of a topic with ``partitions`` partitions, in partition order."""
    return [subject(topic, partition) for partition in range(partitions)]


def partition_of(stored_subject: str) -> int:
    """The partition a stored message's subject names (its last token, ``p<N>``)."""
    token = stored_subject.rpartition(".")[2]
    if _PARTITION_TOKEN.match(token) is None:
        raise ValueError(f"not a Tidings subject: {stored_subject!r}")
    return int(token[1:])


def request_subject(topic: str) -> str:
    """Where requests to ``topic`` go (core NATS, not stored); a pattern gives the matching wildcard."""
    return f"{REQUEST_ROOT}.{topic}"


def topic_of_request(subject: str) -> str:
    """The topic a request subject names."""
    return subject[len(REQUEST_ROOT) + 1 :]


def pattern_filter(pattern: str) -> str:
    """The subjects of every partition of every topic ``pattern`` matches (a final ``>`` needs a token
    before the partition token: ``shop.>`` must not take topic ``shop``'s ``tidings.shop.p0``)."""
    if pattern == ">":
        return f"{SUBJECT_ROOT}.*.>"
    if pattern.endswith(".>"):
        return f"{SUBJECT_ROOT}.{pattern[:-2]}.*.>"
    return f"{SUBJECT_ROOT}.{pattern}.*"


def topic_of_subject(stored_subject: str) -> str:
    """The topic a stored subject belongs to (``tidings.<topic>.p<N>``)."""
    partition_of(stored_subject)
    return stored_subject[len(SUBJECT_ROOT) + 1 :].rpartition(".")[0]
