"""``/api/flow``: the flow map: services, topics, and the edges between them with rates and lag.

Two kinds of edge, both directed the way events move:

* ``publish``: ``service:S`` -> ``topic:T``, with S's publish rate to T;
* ``consume``: ``topic:T`` -> ``service:S`` for group G, with the rate of
  deliveries to S's members of G, G's lag on T and G's processing delay.

A subscription to a pattern (``orders.*``) shows as edges to the topics it
actually received from; a pattern edge stays only while no topic matching it
has delivered anything to that group (so a waiting subscription is visible).
"""

from __future__ import annotations

from tidings.core.broker import BrokerCore
from tidings.core.topology import Service
from tidings.errors import UnknownGroup
from tidings.protocol.names import is_wildcard, topic_matches
from tidings.server.http.groups import delay
from tidings.server.http.models import (
    EventTypeView,
    FlowEdge,
    FlowMap,
    FlowTopic,
    HandlesView,
    InstanceView,
    ServiceView,
)
from tidings.server.http.schemas import parse_schema


class _Lags:
    """Per (group, topic) lag, each group described once per map."""

    def __init__(self, core: BrokerCore) -> None:
        self._core = core
        self._lags: dict[str, dict[str, int]] = {}

    def of(self, group: str, topic: str) -> int | None:
        lags = self._lags.get(group)
        if lags is None:
            lags = {}
            try:
                for p in self._core.engine.describe_group(group).partitions:
                    lags[p.topic] = lags.get(p.topic, 0) + p.lag
            except UnknownGroup:
                pass
            self._lags[group] = lags
        return lags.get(topic)


def _service_view(service: Service, now: int) -> ServiceView:
    return ServiceView(
        name=service.name,
        first_seen=service.first_seen,
        last_seen=now if service.instances else service.last_seen,
        instances=[
            InstanceView(client_id=i.client_id, connected_at=i.connected_at)
            for i in service.instances.values()
        ],
        publishes=sorted(service.publishes),
        subscribes=sorted(f"{topic}:{group}" for topic, group in service.subscribes),
        publish_rate=sum(e.rate.rate(now) for e in service.publishes.values()),
        deliver_rate=sum(e.rate.rate(now) for e in service.subscribes.values()),
        event_types=[
            EventTypeView(topic=e.topic, type=e.type, version=e.version, schema=parse_schema(e.schema_json))
            for _, e in sorted(service.event_types.items())
        ],
        handles=[
            HandlesView(topic=h.topic, group=h.group, type=h.type) for _, h in sorted(service.handles.items())
        ],
    )


def flow_map(core: BrokerCore, now: int) -> FlowMap:
    topology = core.topology
    lags = _Lags(core)
    edges: list[FlowEdge] = []
    mentioned: set[str] = set()
    for service in sorted(topology.services.values(), key=lambda s: s.name):
        for topic, edge in sorted(service.publishes.items()):
            mentioned.add(topic)
            edges.append(
                FlowEdge(
                    kind="publish",
                    source=f"service:{service.name}",
                    target=f"topic:{topic}",
                    service=service.name,
                    topic=topic,
                    group=None,
                    rate=edge.rate.rate(now),
                    byte_rate=edge.bytes.rate(now),
                    lag=None,
                    processing_delay=None,
                    first_seen=edge.first_seen,
                    last_seen=edge.last_seen,
                )
            )
        concrete = [(t, g) for t, g in service.subscribes if not is_wildcard(t)]
        for (topic, group), edge in sorted(service.subscribes.items()):
            if is_wildcard(topic) and any(g == group and topic_matches(topic, t) for t, g in concrete):
                continue
            mentioned.add(topic)
            edges.append(
                FlowEdge(
                    kind="consume",
                    source=f"topic:{topic}",
                    target=f"service:{service.name}",
                    service=service.name,
                    topic=topic,
                    group=group,
                    rate=edge.rate.rate(now),
                    byte_rate=edge.bytes.rate(now),
                    lag=None if is_wildcard(topic) else lags.of(group, topic),
                    processing_delay=delay(core.engine.processing_delay(group)),
                    first_seen=edge.first_seen,
                    last_seen=edge.last_seen,
                )
            )
    topics = []
    for name in sorted(mentioned | set(core.topics.names())):
        found = core.topics.find(name)
        traffic = topology.topics.get(name)
        topics.append(
            FlowTopic(
                name=name,
                exists=found is not None,
                partitions=0 if found is None else found.partitions,
                messages=0
                if found is None
                else sum(max(lg.high_watermark - lg.start_offset, 0) for lg in found.logs),
                publish_rate=0.0 if traffic is None else traffic.records.rate(now),
            )
        )
    services = [_service_view(s, now) for s in sorted(topology.services.values(), key=lambda s: s.name)]
    return FlowMap(time=now, services=services, topics=topics, edges=edges)
