"""``BrokerCore`` without any transport: frames in, outbox and tickets out, time by hand."""

from __future__ import annotations

import pytest

from tidings.core.broker import BrokerCore, CoreConfig
from tidings.core.topics import TopicPolicy
from tidings.errors import LogFailedError, NotAuthorized
from tidings.protocol import (
    PROTOCOL_VERSION,
    AckMode,
    Appended,
    Deliver,
    Earliest,
    Error,
    Hello,
    NoResponders,
    Ping,
    Pong,
    Produce,
    ProducerClaim,
    ProduceResult,
    Rejected,
    Reply,
    Request,
    Subscribe,
    Subscribed,
)
from tidings.records import BatchBuilder


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def one(value: bytes, **build) -> bytes:
    builder = BatchBuilder()
    builder.add(value, timestamp=1)
    return builder.build(**build)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_core(tmp_path, clock):
    cores: list[BrokerCore] = []

    def make(**config) -> BrokerCore:
        core = BrokerCore(CoreConfig(data_dir=str(tmp_path / "data"), **config), clock=clock)
        core.open()
        cores.append(core)
        return core

    yield make
    for core in cores:
        core.close()


def hello(core: BrokerCore, session: str, **fields):
    frame = Hello(
        protocol_version=PROTOCOL_VERSION, service="svc", client_id=session, max_frame_size=1 << 20, **fields
    )
    return core.hello(session, frame, PROTOCOL_VERSION)


def make_durable(core: BrokerCore) -> None:
    for (topic, partition), _ in core.take_appended().items():
        core.topics.log(topic, partition).sync()
        core.records_durable(topic, partition)


def test_hello_and_auth(make_core):
    core = make_core(auth_token="t0ken")
    with pytest.raises(NotAuthorized):
        hello(core, "s1", auth_token="nope")
    welcome = hello(core, "s1", auth_token="t0ken", producer=ProducerClaim())
    assert welcome.session_id == "s1" and welcome.producer_id is not None


def test_ping(make_core):
    core = make_core()
    hello(core, "s1")
    assert core.handle("s1", Ping(nonce=5)) is None
    assert core.take_outbox() == [("s1", Pong(nonce=5))]


def test_produce_ticket_waits_for_durability_and_duplicates_wait_too(make_core):
    core = make_core()
    welcome = hello(core, "s1", producer=ProducerClaim())
    build = {"producer_id": welcome.producer_id, "producer_epoch": 0, "base_sequence": 0}
    ticket = core.handle("s1", Produce(request_id=1, topic="orders", batches=(one(b"a", **build),)))
    assert ticket.waits == {0: 0}
    (result,) = ticket.results
    assert isinstance(result, Appended) and not result.duplicate
    retry = core.handle("s1", Produce(request_id=2, topic="orders", batches=(one(b"a", **build),)))
    assert retry.results[0].duplicate and retry.waits == {0: 0}  # not durable yet: the retry waits as well
    assert core.take_appended() == {("orders", 0): 0}
    frame = retry.frame()
    assert isinstance(frame, ProduceResult) and frame.request_id == 2


def test_ack_none_reports_only_failures(make_core):
    core = make_core()
    hello(core, "s1")
    ok = core.handle("s1", Produce(request_id=1, topic="orders", batches=(one(b"a"),), ack=AckMode.NONE))
    assert ok.frame() is None
    bad = core.handle("s1", Produce(request_id=2, topic="orders", batches=(b"\x00" * 90,), ack=AckMode.NONE))
    error = bad.frame()
    assert (
        isinstance(error, Error)
        and error.request_id == 2
        and error.code in ("invalid_batch", "corrupt_batch")
    )


def test_failed_commit_turns_results_into_rejections(make_core):
    core = make_core()
    hello(core, "s1")
    ticket = core.handle("s1", Produce(request_id=1, topic="orders", batches=(one(b"a"), one(b"b"))))
    ticket.fail(0, LogFailedError("fsync failed"))
    assert [r.code for r in ticket.results if isinstance(r, Rejected)] == ["storage_failed", "storage_failed"]


def test_records_are_delivered_only_once_durable(make_core):
    core = make_core()
    hello(core, "p")
    hello(core, "c")
    core.handle(
        "c",
        Subscribe(request_id=1, subscription_id=1, topic="orders", group="g", start=Earliest(), credits=10),
    )
    assert core.take_outbox() == [("c", Subscribed(request_id=1, subscription_id=1))]
    core.handle("p", Produce(request_id=1, topic="orders", batches=(one(b"a"),)))
    core.records_durable("orders", 0)  # the engine looks, but nothing is durable yet
    assert core.take_outbox() == []
    make_durable(core)
    ((session, frame),) = core.take_outbox()
    assert session == "c" and isinstance(frame, Deliver)


def test_subscribe_waits_for_a_topic_when_auto_create_is_off(make_core):
    core = make_core(policy=TopicPolicy(auto_create=False))
    hello(core, "c")
    core.handle(
        "c",
        Subscribe(request_id=1, subscription_id=1, topic="later", group="g", start=Earliest(), credits=10),
    )
    assert core.take_outbox() == [("c", Subscribed(request_id=1, subscription_id=1))]
    assert core.topics.names() == []
    core.topics.create("later")
    core.handle("c", Ping(nonce=1))  # any call announces created topics to the engine
    core.take_outbox()
    core.topics.append("later", 0, one(b"x"))
    make_durable(core)
    assert any(isinstance(frame, Deliver) for _, frame in core.take_outbox())


def test_request_reply_and_timeout_by_the_clock(make_core, clock):
    core = make_core()
    for session in ("req", "resp"):
        hello(core, session)
    core.handle("req", Request(request_id=1, topic="pay", timeout_ms=100, batch=one(b"?")))
    assert core.take_outbox() == [("req", NoResponders(request_id=1))]
    core.handle("resp", Subscribe(request_id=1, subscription_id=1, topic="pay", group="payments"))
    core.take_outbox()
    core.handle("req", Request(request_id=2, topic="pay", timeout_ms=100, batch=one(b"?")))
    ((target, forwarded),) = core.take_outbox()
    assert target == "resp" and isinstance(forwarded, Request)
    core.handle("resp", Reply(request_id=forwarded.request_id, batch=one(b"ok")))
    ((target, reply),) = core.take_outbox()
    assert target == "req" and reply.request_id == 2

    core.handle("req", Request(request_id=3, topic="pay", timeout_ms=100, batch=one(b"?")))
    core.take_outbox()
    assert core.next_wakeup() == clock.now + 100
    clock.now += 100
    core.tick()
    ((target, error),) = core.take_outbox()
    assert target == "req" and error.code == "request_timeout" and error.request_id == 3
    assert core.next_wakeup() is None
