"""A small harness around GroupEngine: a settable clock, a memory source, and terse verbs."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.core.groups import Delivery, GroupEngine, MemberInfo, MemoryPartitionSource
from tidings.core.ports import PartitionProgress, ProgressKey
from tidings.protocol.ranges import partition_ranges
from tidings.protocol.values import Earliest, GroupMode, Start

EPOCH = 1_700_000_000_000


@dataclass
class Clock:
    now: int = EPOCH

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now


@dataclass
class Harness:
    """An engine over a memory source, with verbs that read like the frames the server would get."""

    clock: Clock = field(default_factory=Clock)
    source: MemoryPartitionSource = field(init=False)
    engine: GroupEngine = field(init=False)
    progress: dict[ProgressKey, PartitionProgress] = field(default_factory=dict)
    max_delivery_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        self.source = MemoryPartitionSource(clock=self.clock)
        self.engine = GroupEngine(
            self.source, self.progress, clock=self.clock, max_delivery_bytes=self.max_delivery_bytes
        )

    def restart(self, progress: dict[ProgressKey, PartitionProgress]) -> GroupEngine:
        """A new engine on the same data, as after a broker restart."""
        self.engine = GroupEngine(
            self.source, progress, clock=self.clock, max_delivery_bytes=self.max_delivery_bytes
        )
        return self.engine

    def topic(self, name: str, partitions: int = 1) -> None:
        self.source.create_topic(name, partitions)
        self.engine.topic_created(name)

    def produce(
        self, topic: str, partition: int, count: int, *, per_batch: int = 1, key: bytes | None = None
    ):
        """Append ``count`` records in batches of ``per_batch``; returns their offsets."""
        offsets: list[int] = []
        left = count
        while left:
            n = min(per_batch, left)
            first = self.source.log_range(topic, partition)[1]
            values = [f"{topic}/{partition}/{first + i}".encode() for i in range(n)]
            base, last = self.source.append(topic, partition, values, keys=[key] * n if key else None)
            offsets.extend(range(base, last + 1))
            left -= n
        self.engine.records_available(topic, partition)
        return offsets

    def subscribe(
        self,
        session: str,
        topic: str,
        group: str,
        *,
        sid: int = 1,
        mode: GroupMode = GroupMode.PARTITIONED,
        start: Start | None = None,
        credits: int = 1000,
        ack_deadline_ms: int = 30_000,
        max_deliveries: int | None = None,
        requests: bool = True,
    ) -> None:
        self.engine.subscribe(
            MemberInfo(session, f"client-{session}", "svc"),
            sid,
            topic,
            group,
            mode=mode,
            start=Earliest() if start is None else start,
            credits=credits,
            ack_deadline_ms=ack_deadline_ms,
            max_deliveries=max_deliveries,
            requests=requests,
        )

    def take(self) -> list[Delivery]:
        return self.engine.take_deliveries()

    def ack(self, session: str, topic: str, partition: int, offsets, *, sid: int = 1) -> None:
        self.engine.ack(session, sid, partition_ranges((topic, partition, o) for o in offsets))

    def nack(self, session, topic, partition, offsets, *, sid=1, delay_ms=0, reason=None) -> None:
        ranges = partition_ranges((topic, partition, o) for o in offsets)
        self.engine.nack(session, sid, ranges, delay_ms=delay_ms, reason=reason)

    def term(self, session, topic, partition, offsets, *, sid=1, reason=None) -> None:
        self.engine.term(
            session, sid, partition_ranges((topic, partition, o) for o in offsets), reason=reason
        )

    def tick(self, ms: int = 0) -> None:
        self.clock.advance(ms)
        self.engine.tick()


def messages(deliveries: list[Delivery]) -> list[tuple[str, str, int, int, int]]:
    """``(session, topic, partition, offset, delivery)`` of every delivered message, in order."""
    return [
        (d.session_id, d.topic, d.partition, offset, count)
        for d in deliveries
        for offset, count in d.offsets()
    ]


def offsets_for(deliveries: list[Delivery], session: str | None = None) -> list[int]:
    return [m[3] for m in messages(deliveries) if session is None or m[0] == session]


def by_session(deliveries: list[Delivery]) -> dict[str, list[tuple[str, int, int]]]:
    out: dict[str, list[tuple[str, int, int]]] = {}
    for session, topic, partition, offset, _ in messages(deliveries):
        out.setdefault(session, []).append((topic, partition, offset))
    return out
