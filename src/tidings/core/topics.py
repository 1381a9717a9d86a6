"""The topic registry: every topic of a data directory, its partition logs, and its settings.

``<data>/topics/<topic>/<partition>/`` is one ``PartitionLog`` per partition,
``<data>/topics/<topic>/topic.json`` the topic's partition count and settings
(``core.topic_config``). The registry creates, opens, describes and deletes
topics, auto-creates them on first use when the broker allows it, and is the
``PartitionSource`` the consumer-group engine reads through (including
``dead_letter``).

Every append of the broker goes through ``append``, which notes the
partition's new end offset. The server drains those notes
(``take_appended``) to run the partition's group-commit fsync and, once the
records are durable, to tell the group engine (``records_available``), so
dead letters are made durable exactly like produced records. Topics created
since the last call (``take_created``) are drained the same way, so the
engine hears of a dead-letter topic it caused only after it returns.

Synchronous and single-threaded (the event loop), except that the logs
themselves may be committed, synced and trimmed from other threads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from tidings.core import topic_config
from tidings.core.datadir import DataDir, read_optional, sync_dir, write_atomic
from tidings.core.dead_letters import dead_letter_batch, dead_letter_topic, find_record
from tidings.core.topic_config import TopicDefaults, TopicMeta
from tidings.errors import (
    InvalidTopicConfig,
    InvalidTopicName,
    OffsetOutOfRangeError,
    StorageError,
    TopicExists,
    UnknownPartition,
    UnknownTopic,
)
from tidings.protocol.admin import PartitionInfo, TopicDescription
from tidings.protocol.names import is_topic_name, topic_matches
from tidings.records import BatchHeader, Buffer
from tidings.storage import AppendResult, PartitionLog, ReadResult
from tidings.storage.log import Clock, wall_clock_ms

log = logging.getLogger(__name__)

MAX_PARTITIONS = 4096
"""More partitions than this in one topic is a typo, not a design (each is a directory and open files)."""


def check_topic_name(name: str) -> None:
    if not is_topic_name(name):
        raise InvalidTopicName(
            f"invalid topic name {name!r}: a topic name is 1 to 249 characters of dot-separated "
            "tokens of letters, digits, '_' and '-' (no wildcards, no empty tokens)"
        )


@dataclass(frozen=True, slots=True)
class TopicPolicy:
    """What the broker decides for topics nobody configured explicitly."""

    defaults: TopicDefaults = field(default_factory=TopicDefaults)
    default_partitions: int = 1
    auto_create: bool = True


class Topic:
    """An open topic: its metadata and one open log per partition."""

    __slots__ = ("directory", "logs", "meta")

    def __init__(self, directory: str, meta: TopicMeta, logs: list[PartitionLog]) -> None:
        self.directory = directory
        self.meta = meta
        self.logs = logs

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def partitions(self) -> int:
        return len(self.logs)

    def __repr__(self) -> str:
        return f"<Topic {self.name} partitions={self.partitions} config={self.meta.config}>"


class TopicRegistry:
    """The topics of one data directory. Call ``open`` before use and ``close`` at the end."""

    def __init__(self, datadir: DataDir, policy: TopicPolicy, *, clock: Clock = wall_clock_ms) -> None:
        self.datadir = datadir
        self.policy = policy
        self._clock = clock
        self._topics: dict[str, Topic] = {}
        self._appended: dict[tuple[str, int], int] = {}
        self._created: list[str] = []

    def __repr__(self) -> str:
        return f"<TopicRegistry {self.datadir.root} topics={len(self._topics)}>"

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        """Open every complete topic; an incomplete one (a crash during create) goes to the trash."""
        for name in sorted(os.listdir(self.datadir.topics)):
            directory = os.path.join(self.datadir.topics, name)
            if not os.path.isdir(directory):
                continue
            meta_path = os.path.join(directory, topic_config.METADATA_FILE)
            data = read_optional(meta_path)
            if data is None:
                log.warning("topic directory %s has no metadata (interrupted create): removing it", directory)
                self._to_trash(name, directory)
                continue
            meta = TopicMeta.decode(data, meta_path)
            if meta.name != name:
                raise StorageError(f"topic metadata {meta_path} names topic {meta.name!r}, not {name!r}")
            self._topics[name] = self._open_topic(directory, meta)

    def _open_topic(self, directory: str, meta: TopicMeta) -> Topic:
        config = topic_config.log_config(meta.config, self.policy.defaults)
        logs: list[PartitionLog] = []
        try:
            for partition in range(meta.partitions):
                path = os.path.join(directory, str(partition))
                logs.append(PartitionLog(path, config, clock=self._clock))
        except BaseException:
            for opened in logs:
                opened.close()
            raise
        return Topic(directory, meta, logs)

    def close(self) -> None:
        """Close every log (each seals and fsyncs its active segment). Blocking: run it in a thread."""
        for topic in self._topics.values():
            for partition_log in topic.logs:
                try:
                    partition_log.close()
                except StorageError as exc:
                    log.error("closing %s failed: %s", partition_log, exc)

    # -- the registry --------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._topics)

    def find(self, name: str) -> Topic | None:
        return self._topics.get(name)

    def get(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            check_topic_name(name)
            raise UnknownTopic(f"unknown topic {name!r}")
        return topic

    def ensure(self, name: str, *, always: bool = False) -> Topic:
        """The topic, created with the defaults if missing and auto-creation is on (or ``always``)."""
        topic = self._topics.get(name)
        if topic is not None:
            return topic
        if not (always or self.policy.auto_create):
            check_topic_name(name)
            raise UnknownTopic(f"unknown topic {name!r} (auto-creation of topics is off on this broker)")
        return self.create(name)

    def create(
        self, name: str, partitions: int | None = None, config: Mapping[str, str] | None = None
    ) -> Topic:
        check_topic_name(name)
        if name in self._topics:
            raise TopicExists(f"topic {name!r} already exists")
        count = self.policy.default_partitions if partitions is None else partitions
        if not 1 <= count <= MAX_PARTITIONS:
            raise InvalidTopicConfig(f"topic {name!r}: {count} partitions; allowed 1..{MAX_PARTITIONS}")
        overrides = topic_config.normalize(name, config or {})
        meta = TopicMeta(name=name, partitions=count, config=overrides, created_ms=self._clock())
        directory = os.path.join(self.datadir.topics, name)
        try:
            os.makedirs(directory, exist_ok=True)
            sync_dir(self.datadir.topics)
            topic = self._open_topic(directory, meta)
            write_atomic(os.path.join(directory, topic_config.METADATA_FILE), meta.encode())
        except OSError as exc:
            raise StorageError(f"cannot create topic {name!r} in {directory}: {exc.strerror or exc}") from exc
        self._topics[name] = topic
        self._created.append(name)
        log.info("created topic %s with %d partition(s)", name, count)
        return topic

    def delete(self, name: str) -> None:
        """Close the topic's logs and move its directory to the trash (emptied off the event loop)."""
        topic = self.get(name)
        del self._topics[name]
        for key in [key for key in self._appended if key[0] == name]:
            del self._appended[key]
        for partition_log in topic.logs:
            try:
                partition_log.close()
            except StorageError as exc:
                log.warning("closing %s of deleted topic %s: %s", partition_log, name, exc)
        self._to_trash(name, topic.directory)
        log.info("deleted topic %s", name)

    def _to_trash(self, name: str, directory: str) -> None:
        target = os.path.join(self.datadir.trash, f"{name}.{self._clock()}.{os.getpid()}")
        try:
            os.replace(directory, target)
            sync_dir(self.datadir.topics)
        except OSError as exc:
            raise StorageError(f"cannot remove topic directory {directory}: {exc.strerror or exc}") from exc

    def describe(self, name: str) -> TopicDescription:
        topic = self.get(name)
        return TopicDescription(
            name=name,
            partitions=tuple(
                PartitionInfo(partition=p, start_offset=lg.start_offset, end_offset=lg.high_watermark)
                for p, lg in enumerate(topic.logs)
            ),
            config=topic_config.effective(topic.meta.config, self.policy.defaults),
        )

    def log(self, topic: str, partition: int) -> PartitionLog:
        logs = self.get(topic).logs
        if not 0 <= partition < len(logs):
            raise UnknownPartition(f"topic {topic!r} has no partition {partition} (it has {len(logs)})")
        return logs[partition]

    def logs(self) -> list[tuple[str, int, PartitionLog]]:
        return [(t.name, p, lg) for t in self._topics.values() for p, lg in enumerate(t.logs)]

    # -- appending -----------------------------------------------------------------

    def append(
        self, topic: str, partition: int, batch: Buffer, *, checked: BatchHeader | None = None
    ) -> AppendResult:
        """Append (written, not yet durable) and note the partition for the next group commit.

        ``checked``: the batch's header from a ``check_batch`` the caller already ran.
        """
        result = self.log(topic, partition).append(batch, checked=checked)
        self._appended[topic, partition] = result.last_offset
        return result

    def take_appended(self) -> dict[tuple[str, int], int]:
        """Partitions appended to since the last call, with the last offset written to each."""
        appended, self._appended = self._appended, {}
        return appended

    def take_created(self) -> list[str]:
        created, self._created = self._created, []
        return created

    # -- PartitionSource -----------------------------------------------------------

    def topics_matching(self, pattern: str) -> list[str]:
        return sorted(name for name in self._topics if topic_matches(pattern, name))

    def partition_count(self, topic: str) -> int:
        return self.get(topic).partitions

    def log_range(self, topic: str, partition: int) -> tuple[int, int]:
        partition_log = self.log(topic, partition)
        return partition_log.start_offset, partition_log.high_watermark

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        partition_log = self.log(topic, partition)
        return min(partition_log.offset_for_time(timestamp_ms), partition_log.high_watermark)

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> ReadResult:
        return self.log(topic, partition).read(offset, max_bytes)

    def dead_letter(
        self,
        *,
        group: str,
        topic: str,
        partition: int,
        offset: int,
        deliveries: int,
        reason: str,
    ) -> None:
        """Copy record ``offset`` into ``<topic>.dlq.<group>`` (created on first use, even with
        auto-creation off, with one partition).

        A record that is gone (its topic deleted, or trimmed by retention) has
        nothing to copy: that is logged, not raised, so the group can settle it.
        """
        target = dead_letter_topic(topic, group)
        try:
            result = self.read(topic, partition, offset, 1)
        except (UnknownTopic, UnknownPartition, OffsetOutOfRangeError) as exc:
            log.warning("dead letter %s/%d@%d for group %s is gone: %s", topic, partition, offset, group, exc)
            return
        record = find_record(result.data, offset)
        if record is None:
            log.warning(
                "dead letter %s/%d@%d for group %s is not in the log", topic, partition, offset, group
            )
            return
        batch = dead_letter_batch(
            record, topic=topic, partition=partition, group=group, deliveries=deliveries, reason=reason
        )
        if target not in self._topics:
            self.create(target, 1)  # one partition: dead letters have no order worth spreading
        self.append(target, 0, batch)
