"""Dead letters: the copy of a record that a consumer group gave up on, as a pure function.

A message goes to its group's dead-letter topic when it was delivered
``max_deliveries`` times without an ack, or when a consumer terminated it
(``Term``). The dead-letter topic is an ordinary topic named
``<topic>.dlq.<group>``, created on first use, so every tool that reads
topics reads dead letters too (``tidings dlq`` replays them).

The copy keeps the record's key, value, headers and producer timestamp, and
adds these headers (values are UTF-8 text):

==========================  ===========================================
header                      value
==========================  ===========================================
``tidings-dlq-topic``       the topic the record was read from
``tidings-dlq-partition``   its partition (decimal)
``tidings-dlq-offset``      its offset (decimal)
``tidings-dlq-group``       the consumer group that gave up
``tidings-dlq-deliveries``  how many times it was delivered (decimal)
``tidings-dlq-reason``      the consumer's reason, or the broker's (at most 1024 characters)
==========================  ===========================================

A record that is dead-lettered again (from a dead-letter topic) loses its
previous ``tidings-dlq-*`` headers, so each copy says where it last came from.
"""

from __future__ import annotations

from typing import Final

from tidings.errors import InvalidTopicName
from tidings.protocol.names import MAX_NAME_LENGTH, is_topic_name
from tidings.records import BatchBuilder, Buffer, Record, iter_batches, iter_records

PREFIX: Final = "tidings-dlq-"
MAX_REASON: Final = 1024


def dead_letter_topic(topic: str, group: str) -> str:
    """``<topic>.dlq.<group>``; a group name's empty dot-separated parts become ``_``.

    Group names may hold dots (``shop.payments``) and even leading or doubled
    ones, which a topic name may not, hence the substitution.
    """
    tokens = [token or "_" for token in group.split(".")]
    name = f"{topic}.dlq.{'.'.join(tokens)}"
    if len(name) > MAX_NAME_LENGTH or not is_topic_name(name):
        raise InvalidTopicName(
            f"dead-letter topic {name!r} for topic {topic!r} and group {group!r} is not a valid topic name "
            f"(at most {MAX_NAME_LENGTH} characters of dot-separated [A-Za-z0-9_-] tokens)"
        )
    return name


def find_record(data: Buffer, offset: int) -> Record | None:
    """The record at ``offset`` among the stored batches in ``data`` (checked on the way)."""
    for position, header in iter_batches(data):
        if header.base_offset <= offset <= header.last_offset:
            for record in iter_records(data, position, header):
                if record.offset == offset:
                    return record
    return None


def dead_letter_batch(
    record: Record,
    *,
    topic: str,
    partition: int,
    group: str,
    deliveries: int,
    reason: str,
) -> bytes:
    """A one-record batch: ``record`` with its dead-letter headers, ready to append."""
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 3] + "..."
    headers = [(name, value) for name, value in record.headers if not name.startswith(PREFIX)]
    headers += [
        (PREFIX + "topic", topic.encode()),
        (PREFIX + "partition", str(partition).encode()),
        (PREFIX + "offset", str(record.offset).encode()),
        (PREFIX + "group", group.encode()),
        (PREFIX + "deliveries", str(deliveries).encode()),
        (PREFIX + "reason", reason.encode()),
    ]
    builder = BatchBuilder()
    builder.add(record.value, key=record.key, headers=headers, timestamp=record.timestamp)
    return builder.build()
