"""Hypothesis strategies for every frame kind, and small builders shared by the protocol tests."""

from __future__ import annotations

from hypothesis import strategies as st

from tidings.protocol import admin as A
from tidings.protocol import frames as F
from tidings.protocol import values as V
from tidings.protocol.ranges import PartitionRanges, coalesce
from tidings.records import build_batch

INT64 = 2**63 - 1

ids = st.integers(0, INT64)
offsets = st.integers(0, INT64)
partitions = st.integers(0, 2**31 - 1)
counts = st.integers(0, 2**32 - 1)
positives = st.integers(1, 2**32 - 1)
text = st.text(max_size=20)
token = st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True)
topics = st.lists(token, min_size=1, max_size=3).map(".".join)
patterns = st.one_of(
    st.just(">"),
    st.builds(
        lambda tokens, tail: ".".join(tokens) + tail,
        st.lists(st.one_of(token, st.just("*")), min_size=1, max_size=3),
        st.sampled_from(["", ".>"]),
    ),
)
names = st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True)
codes = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
frame_sizes = st.integers(V.MIN_FRAME_SIZE, V.MAX_FRAME_SIZE_LIMIT)


def batch(*values: bytes) -> bytes:
    """A real record batch (fixed timestamp, so equal values give equal bytes)."""
    return build_batch(list(values) or [b"v"], timestamp=1_000)


batches_one = st.lists(st.binary(max_size=24), min_size=1, max_size=3).map(lambda vs: batch(*vs))
batch_lists = st.lists(batches_one, min_size=1, max_size=3).map(tuple)

starts = st.one_of(
    st.builds(V.Earliest),
    st.builds(V.Latest),
    st.builds(V.AtOffset, offset=offsets),
    st.builds(V.AtTime, time=offsets),
)


@st.composite
def offset_ranges(draw: st.DrawFn) -> tuple[PartitionRanges, ...]:
    base = draw(st.integers(0, INT64 - 10_000))
    groups = draw(
        st.lists(
            st.tuples(
                topics,
                partitions,
                st.lists(st.integers(0, 9_999), min_size=1, max_size=30),
                st.integers(0, 2**32 - 1),
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda g: (g[0], g[1], g[3]),
        )
    )
    return tuple(
        PartitionRanges(topic=t, partition=p, ranges=coalesce(base + o for o in offs), delivery=d)
        for t, p, offs, d in groups
    )


@st.composite
def delivers(draw: st.DrawFn) -> F.Deliver:
    bs = draw(batch_lists)
    span = st.builds(
        lambda first, width, delivery: (first, first + width, delivery),
        st.integers(0, 2**40),
        st.integers(0, 100),
        st.integers(1, 50),
    )
    spans = [
        V.DeliverySpan(batch=index, first=first, last=last, delivery=delivery)
        for index in range(len(bs))
        for first, last, delivery in draw(st.lists(span, min_size=1, max_size=2))
    ]
    return F.Deliver(
        subscription_id=draw(ids),
        topic=draw(topics),
        partition=draw(partitions),
        spans=tuple(spans),
        batches=bs,
    )


batch_results = st.one_of(
    st.builds(
        lambda partition, base, n, time, dup: V.Appended(
            partition=partition, base_offset=base, last_offset=base + n, append_time=time, duplicate=dup
        ),
        partitions,
        st.integers(0, 2**62),
        st.integers(0, 1000),
        offsets,
        st.booleans(),
    ),
    st.builds(V.Rejected, code=codes, message=text),
)

configs = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)

admin_requests = st.one_of(
    st.builds(A.CreateTopic, name=topics, partitions=st.integers(1, 64), config=configs),
    st.builds(A.DeleteTopic, name=topics),
    st.builds(A.DescribeTopic, name=topics),
    st.builds(A.ListTopics),
    st.builds(A.ListGroups, topic=st.none() | topics),
    st.builds(A.DescribeGroup, group=names),
    st.builds(A.ResetGroup, group=names, topic=topics, to=starts),
    st.builds(
        A.Announce,
        service=names,
        publishes=st.lists(
            st.builds(
                A.PublishedType, topic=topics, type=text, version=st.integers(0, 2**31 - 1), schema_json=text
            ),
            max_size=2,
        ).map(tuple),
        subscribes=st.lists(st.builds(A.HandledType, topic=patterns, group=names, type=text), max_size=2).map(
            tuple
        ),
    ),
)

partition_infos = st.builds(A.PartitionInfo, partition=partitions, start_offset=offsets, end_offset=offsets)
admin_responses = st.one_of(
    st.builds(A.Announced, service=names, publishes=counts, subscribes=counts),
    st.builds(A.TopicDescription, name=topics, partitions=st.lists(partition_infos, max_size=3).map(tuple)),
    st.builds(A.TopicDeleted, name=topics),
    st.builds(A.TopicList, topics=st.lists(topics, max_size=3).map(tuple)),
    st.builds(
        A.GroupList,
        groups=st.lists(
            st.builds(
                A.GroupSummary,
                group=names,
                topics=st.lists(patterns, max_size=2).map(tuple),
                members=counts,
                lag=counts,
            ),
            max_size=2,
        ).map(tuple),
    ),
    st.builds(
        A.GroupDescription,
        group=names,
        members=st.lists(
            st.builds(
                A.GroupMember,
                member_id=text,
                client_id=text,
                service=names,
                topic=patterns,
                mode=st.sampled_from(V.GroupMode),
                assigned=st.lists(
                    st.builds(A.TopicPartition, topic=topics, partition=partitions), max_size=2
                ).map(tuple),
            ),
            max_size=2,
        ).map(tuple),
        partitions=st.lists(
            st.builds(
                A.GroupPartition,
                topic=topics,
                partition=partitions,
                committed=offsets,
                end_offset=offsets,
                lag=counts,
                in_flight=counts,
            ),
            max_size=2,
        ).map(tuple),
    ),
    st.builds(
        A.GroupReset,
        group=names,
        topic=topics,
        offsets=st.lists(st.builds(A.PartitionOffset, partition=partitions, offset=offsets), max_size=3).map(
            tuple
        ),
    ),
)

producer_claims = (
    st.none()
    | st.just(V.ProducerClaim())
    | st.builds(V.ProducerClaim, producer_id=ids, producer_epoch=st.integers(0, 2**15 - 1))
)

FRAMES: dict[F.FrameKind, st.SearchStrategy[F.Frame]] = {
    F.FrameKind.HELLO: st.builds(
        F.Hello,
        protocol_version=st.integers(0, 2**16 - 1),
        service=names,
        client_id=text,
        max_frame_size=frame_sizes,
        auth_token=st.none() | text,
        producer=producer_claims,
        username=st.none() | text,
        password=st.none() | text,
    ),
    F.FrameKind.WELCOME: st.builds(
        F.Welcome,
        protocol_version=st.integers(0, 2**16 - 1),
        broker_id=text,
        broker_version=text,
        session_id=text,
        max_frame_size=frame_sizes,
        producer_id=st.none() | ids,
        producer_epoch=st.none() | st.integers(0, 2**15 - 1),
    ),
    F.FrameKind.CLOSE: st.builds(F.Close, reason=text),
    F.FrameKind.ERROR: st.builds(F.Error, code=codes, message=text, request_id=st.none() | ids),
    F.FrameKind.PING: st.builds(F.Ping, nonce=ids),
    F.FrameKind.PONG: st.builds(F.Pong, nonce=ids),
    F.FrameKind.PRODUCE: st.builds(
        F.Produce,
        request_id=ids,
        topic=topics,
        batches=batch_lists,
        partition=st.none() | partitions,
        ack=st.sampled_from(V.AckMode),
    ),
    F.FrameKind.PRODUCE_RESULT: st.builds(
        F.ProduceResult, request_id=ids, results=st.lists(batch_results, max_size=4).map(tuple)
    ),
    F.FrameKind.SUBSCRIBE: st.builds(
        F.Subscribe,
        request_id=ids,
        subscription_id=ids,
        topic=patterns,
        group=names,
        mode=st.sampled_from(V.GroupMode),
        start=starts,
        credits=counts,
        ack_deadline_ms=positives,
        max_deliveries=st.none() | positives,
        requests=st.booleans(),
    ),
    F.FrameKind.SUBSCRIBED: st.builds(F.Subscribed, request_id=ids, subscription_id=ids),
    F.FrameKind.UNSUBSCRIBE: st.builds(F.Unsubscribe, request_id=ids, subscription_id=ids),
    F.FrameKind.UNSUBSCRIBED: st.builds(
        F.Unsubscribed, subscription_id=ids, request_id=st.none() | ids, reason=st.none() | text
    ),
    F.FrameKind.DELIVER: delivers(),
    F.FrameKind.CREDIT: st.builds(F.Credit, subscription_id=ids, credits=positives),
    F.FrameKind.ACK: st.builds(F.Ack, subscription_id=ids, offsets=offset_ranges()),
    F.FrameKind.NACK: st.builds(
        F.Nack, subscription_id=ids, offsets=offset_ranges(), delay_ms=offsets, reason=st.none() | text
    ),
    F.FrameKind.TERM: st.builds(
        F.Term, subscription_id=ids, offsets=offset_ranges(), reason=st.none() | text
    ),
    F.FrameKind.REQUEST: st.builds(
        F.Request,
        request_id=ids,
        topic=topics,
        timeout_ms=positives,
        batch=batches_one,
        reply_to=st.none() | topics,
    ),
    F.FrameKind.REPLY: st.builds(F.Reply, request_id=ids, batch=batches_one),
    F.FrameKind.NO_RESPONDERS: st.builds(F.NoResponders, request_id=ids),
    F.FrameKind.ADMIN_REQUEST: st.builds(F.AdminRequest, request_id=ids, body=admin_requests),
    F.FrameKind.ADMIN_RESPONSE: st.builds(F.AdminResponse, request_id=ids, body=admin_responses),
}

any_frame = st.one_of(*FRAMES.values())
