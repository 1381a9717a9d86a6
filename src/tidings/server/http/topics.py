"""``/api/topics``: partitions, size, offsets, rates and retention, read from the core as it is now.

Cheap: offsets and sizes are in memory (``PartitionLog`` keeps them), rates
come from the topology registry's windows; nothing here touches the disk.
"""

from __future__ import annotations

from tidings.core import topic_config
from tidings.core.broker import BrokerCore
from tidings.core.topics import Topic
from tidings.server.http.models import PartitionView, Retention, TopicView

DLQ_INFIX = ".dlq."
"""Dead-letter topics are named ``<topic>.dlq.<group>`` (``tidings.core.dead_letters``)."""


def is_dead_letter_topic(name: str) -> bool:
    return DLQ_INFIX in name


def topic_view(core: BrokerCore, topic: Topic, now: int) -> TopicView:
    partitions = [
        PartitionView(
            partition=p,
            start_offset=lg.start_offset,
            end_offset=lg.high_watermark,
            messages=max(lg.high_watermark - lg.start_offset, 0),
            size_bytes=lg.size,
        )
        for p, lg in enumerate(topic.logs)
    ]
    config = topic_config.effective(topic.meta.config, core.config.policy.defaults)
    traffic = core.topology.topics.get(topic.name)
    log_config = topic.logs[0].config if topic.logs else None
    retention = Retention(
        retention_ms=None if log_config is None else log_config.retention.max_age_ms,
        retention_bytes=None if log_config is None else log_config.retention.max_bytes,
        fsync=config.get(topic_config.FSYNC, ""),
    )
    return TopicView(
        name=topic.name,
        partitions=topic.partitions,
        messages=sum(p.messages for p in partitions),
        size_bytes=sum(p.size_bytes for p in partitions),
        publish_rate=0.0 if traffic is None else traffic.records.rate(now),
        byte_rate=0.0 if traffic is None else traffic.bytes.rate(now),
        published_total=0 if traffic is None else traffic.records.total,
        retention=retention,
        config=config,
        partition_list=partitions,
        dead_letter_topic=is_dead_letter_topic(topic.name),
    )


def topic_views(core: BrokerCore, now: int) -> list[TopicView]:
    views = []
    for name in core.topics.names():
        topic = core.topics.find(name)
        if topic is not None:
            views.append(topic_view(core, topic, now))
    return views
