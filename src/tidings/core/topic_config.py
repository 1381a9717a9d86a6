"""Per-topic settings and the metadata file that records them.

A topic's settings arrive as strings (``CreateTopic.config``, the CLI), like
Kafka's topic configs. Only these keys exist; any other is refused, naming it:

==================  =====================================  =================================
key                 value                                  default
==================  =====================================  =================================
``retention.ms``    age after which sealed segments go     broker's ``retention_ms`` (-1: keep)
``retention.bytes`` size above which the oldest segments   broker's ``retention_bytes`` (-1: keep)
``fsync``           ``always`` | ``interval:MS`` | ``never``  broker's ``fsync``
``segment.bytes``   roll the active segment at this size   broker's ``segment_bytes``
``segment.ms``      roll the active segment at this age    broker's ``segment_ms``
==================  =====================================  =================================

A topic stores only what was set for it (its *overrides*); everything else
follows the broker's defaults, so changing a default on restart applies to
every topic that did not choose otherwise.

Metadata file ``<data>/topics/<topic>/topic.json`` (UTF-8 JSON, replaced
atomically, see ``core.datadir``)::

    {"version": 1, "name": "orders", "partitions": 3, "created_ms": 1700000000000,
     "config": {"retention.ms": "604800000"}}

The file is written after the partition directories exist, so a topic is
complete exactly when its metadata file is there; a crash halfway through a
create leaves a directory without one, which the registry removes on open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tidings.errors import InvalidTopicConfig, StorageError
from tidings.storage import FsyncPolicy, LogConfig, RetentionPolicy

METADATA_FILE: Final = "topic.json"
UNLIMITED: Final = -1

RETENTION_MS: Final = "retention.ms"
RETENTION_BYTES: Final = "retention.bytes"
FSYNC: Final = "fsync"
SEGMENT_BYTES: Final = "segment.bytes"
SEGMENT_MS: Final = "segment.ms"
KEYS: Final = (RETENTION_MS, RETENTION_BYTES, FSYNC, SEGMENT_BYTES, SEGMENT_MS)

MIN_SEGMENT_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class TopicDefaults:
    """The broker-wide settings a topic follows unless it overrides them."""

    fsync: FsyncPolicy = field(default_factory=FsyncPolicy)
    retention_ms: int | None = None
    retention_bytes: int | None = None
    segment_bytes: int = 128 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    segment_prealloc_bytes: int = 0  # broker-wide only: a disk tuning, not a topic's choice


def normalize(topic: str, config: Mapping[str, str]) -> dict[str, str]:
    """Check ``config`` and return it in canonical form; ``InvalidTopicConfig`` names the bad key."""
    out: dict[str, str] = {}
    for key, raw in config.items():
        if key not in KEYS:
            raise InvalidTopicConfig(f"topic {topic!r}: unknown setting {key!r} (known: {', '.join(KEYS)})")
        text = str(raw).strip()
        if key == FSYNC:
            try:
                out[key] = str(FsyncPolicy.parse(text))
            except StorageError as exc:
                raise InvalidTopicConfig(f"topic {topic!r}: setting {key!r}: {exc}") from None
            continue
        number = _integer(topic, key, text)
        if key in (RETENTION_MS, RETENTION_BYTES):
            if number < UNLIMITED or number == 0:
                raise InvalidTopicConfig(
                    f"topic {topic!r}: setting {key!r} must be a positive integer or -1 (keep), not {text!r}"
                )
        elif number < (MIN_SEGMENT_BYTES if key == SEGMENT_BYTES else 1):
            floor = MIN_SEGMENT_BYTES if key == SEGMENT_BYTES else 1
            raise InvalidTopicConfig(
                f"topic {topic!r}: setting {key!r} must be at least {floor}, not {text!r}"
            )
        out[key] = str(number)
    return out


def _integer(topic: str, key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidTopicConfig(
            f"topic {topic!r}: setting {key!r} must be an integer, not {text!r}"
        ) from None


def effective(overrides: Mapping[str, str], defaults: TopicDefaults) -> dict[str, str]:
    """Every setting's value for a topic, as strings (what DescribeTopic reports)."""
    values = {
        RETENTION_MS: str(UNLIMITED if defaults.retention_ms is None else defaults.retention_ms),
        RETENTION_BYTES: str(UNLIMITED if defaults.retention_bytes is None else defaults.retention_bytes),
        FSYNC: str(defaults.fsync),
        SEGMENT_BYTES: str(defaults.segment_bytes),
        SEGMENT_MS: str(defaults.segment_ms),
    }
    values.update(overrides)
    return values


def log_config(overrides: Mapping[str, str], defaults: TopicDefaults) -> LogConfig:
    """The ``LogConfig`` each partition log of a topic opens with."""
    values = effective(overrides, defaults)

    def limit(key: str) -> int | None:
        number = int(values[key])
        return None if number == UNLIMITED else number

    return LogConfig(
        fsync=FsyncPolicy.parse(values[FSYNC]),
        retention=RetentionPolicy(max_age_ms=limit(RETENTION_MS), max_bytes=limit(RETENTION_BYTES)),
        max_segment_bytes=int(values[SEGMENT_BYTES]),
        max_segment_ms=int(values[SEGMENT_MS]),
        prealloc_bytes=defaults.segment_prealloc_bytes,
    )


@dataclass(frozen=True, slots=True)
class TopicMeta:
    """What ``topic.json`` holds."""

    name: str
    partitions: int
    config: dict[str, str]
    created_ms: int

    def encode(self) -> bytes:
        body = {
            "version": 1,
            "name": self.name,
            "partitions": self.partitions,
            "created_ms": self.created_ms,
            "config": self.config,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes, path: str) -> TopicMeta:
        """Parse a metadata file; ``StorageError`` names the file and what is wrong with it."""
        try:
            body: Any = json.loads(data)
            if not isinstance(body, dict) or body.get("version") != 1:
                raise ValueError("not a version 1 topic metadata object")
            partitions = body["partitions"]
            if not isinstance(partitions, int) or partitions < 1:
                raise ValueError(f"bad partition count {partitions!r}")
            config = body.get("config", {})
            if not isinstance(config, dict):
                raise ValueError("config is not an object")
            return cls(
                name=str(body["name"]),
                partitions=partitions,
                config=normalize(str(body["name"]), {str(k): str(v) for k, v in config.items()}),
                created_ms=int(body.get("created_ms", 0)),
            )
        except (ValueError, KeyError, TypeError, InvalidTopicConfig) as exc:
            raise StorageError(f"topic metadata {path} is damaged: {exc}") from exc
