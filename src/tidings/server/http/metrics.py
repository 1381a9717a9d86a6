"""``/metrics``: Prometheus metrics, from a private ``CollectorRegistry`` per broker.

Private, not prometheus-client's global registry: one process may run
several brokers (tests do), and each must report only its own figures.

Almost everything is read at scrape time by ``BrokerCollector`` from
counters the broker keeps anyway (the topology registry's totals, the
group engine's ``GroupStats``, the logs' offsets), so the hot paths pay
nothing for metrics. The one live instrument is the fsync latency
histogram, observed by the partition committers after each group commit.

=========================================  =========  =====================================
family                                     type       labels
=========================================  =========  =====================================
tidings_published_messages_total           counter    topic
tidings_published_bytes_total              counter    topic
tidings_delivered_messages_total           counter    group
tidings_delivered_bytes_total              counter    group
tidings_acked_messages_total               counter    group
tidings_redeliveries_total                 counter    group
tidings_dead_letters_total                 counter    group
tidings_group_lag_messages                 gauge      group, topic, partition
tidings_group_processing_delay_seconds     gauge      group, quantile (0.5, 0.99)
tidings_topic_messages                     gauge      topic (retained)
tidings_topic_size_bytes                   gauge      topic
tidings_connections                        gauge
tidings_services                           gauge
tidings_fsync_duration_seconds             histogram
=========================================  =========  =====================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tidings.core.broker import BrokerCore
from tidings.errors import UnknownGroup

FSYNC_BUCKETS: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class BrokerCollector(Collector):
    """Reads the broker's own counters at each scrape (see the module docstring)."""

    def __init__(self, core: Callable[[], BrokerCore | None], connections: Callable[[], int]) -> None:
        self._core = core
        self._connections = connections

    def collect(self) -> Iterator[Metric]:
        core = self._core()
        connections = GaugeMetricFamily("tidings_connections", "Open client connections.")
        connections.add_metric([], self._connections())
        yield connections
        if core is None:
            return
        yield from self._topics(core)
        yield from self._groups(core)
        services = GaugeMetricFamily("tidings_services", "Services on the flow map.")
        services.add_metric([], len(core.topology.services))
        yield services

    def _topics(self, core: BrokerCore) -> Iterator[Metric]:
        published = CounterMetricFamily(
            "tidings_published_messages", "Messages published, since the broker started.", labels=["topic"]
        )
        published_bytes = CounterMetricFamily(
            "tidings_published_bytes", "Bytes of record batches published.", labels=["topic"]
        )
        for topic, traffic in sorted(core.topology.topics.items()):
            published.add_metric([topic], traffic.records.total)
            published_bytes.add_metric([topic], traffic.bytes.total)
        retained = GaugeMetricFamily("tidings_topic_messages", "Messages retained.", labels=["topic"])
        size = GaugeMetricFamily("tidings_topic_size_bytes", "Bytes on disk.", labels=["topic"])
        for name in core.topics.names():
            found = core.topics.find(name)
            if found is None:
                continue
            retained.add_metric([name], sum(max(lg.high_watermark - lg.start_offset, 0) for lg in found.logs))
            size.add_metric([name], sum(lg.size for lg in found.logs))
        yield from (published, published_bytes, retained, size)

    def _groups(self, core: BrokerCore) -> Iterator[Metric]:
        engine = core.engine
        labels = ["group"]
        delivered = CounterMetricFamily("tidings_delivered_messages", "Messages delivered.", labels=labels)
        delivered_bytes = CounterMetricFamily(
            "tidings_delivered_bytes", "Bytes of batches delivered.", labels=labels
        )
        acked = CounterMetricFamily("tidings_acked_messages", "Messages acked.", labels=labels)
        redelivered = CounterMetricFamily(
            "tidings_redeliveries", "Deliveries after the first.", labels=labels
        )
        dead = CounterMetricFamily("tidings_dead_letters", "Messages dead-lettered.", labels=labels)
        lag = GaugeMetricFamily(
            "tidings_group_lag_messages", "Messages not yet settled.", labels=["group", "topic", "partition"]
        )
        delay = GaugeMetricFamily(
            "tidings_group_processing_delay_seconds",
            "From event time to ack, over the last minute.",
            labels=["group", "quantile"],
        )
        bytes_by_group: dict[str, int] = {}
        for service in core.topology.services.values():
            for (_, group), edge in service.subscribes.items():
                bytes_by_group[group] = bytes_by_group.get(group, 0) + edge.bytes.total
        for group in engine.group_names():
            try:
                stats = engine.group_stats(group)
                description = engine.describe_group(group)
            except UnknownGroup:
                continue
            delivered.add_metric([group], stats.delivered)
            delivered_bytes.add_metric([group], bytes_by_group.get(group, 0))
            acked.add_metric([group], stats.acked)
            redelivered.add_metric([group], stats.redelivered)
            dead.add_metric([group], stats.dead_lettered)
            for p in description.partitions:
                lag.add_metric([group, p.topic, str(p.partition)], p.lag)
            quantiles = engine.processing_delay(group)
            if quantiles is not None:
                delay.add_metric([group, "0.5"], quantiles.p50 / 1000)
                delay.add_metric([group, "0.99"], quantiles.p99 / 1000)
        yield from (delivered, delivered_bytes, acked, redelivered, dead, lag, delay)


class Metrics:
    """One broker's registry: the collector, and the fsync histogram the committers feed."""

    def __init__(self, core: Callable[[], BrokerCore | None], connections: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.fsync = Histogram(
            "tidings_fsync_duration_seconds",
            "Duration of one group-commit fsync of a partition log.",
            buckets=FSYNC_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(BrokerCollector(core, connections))

    def __repr__(self) -> str:
        return "<Metrics>"

    def observe_fsync(self, seconds: float) -> None:
        self.fsync.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
