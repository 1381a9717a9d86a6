"""Two Connections, a client and a server, joined in memory: every conversation the broker will have."""

from __future__ import annotations

import pytest

from tests.protocol.strategies import batch
from tidings.errors import FrameTooLarge, HandshakeRejected, MalformedFrame, UnexpectedFrame
from tidings.protocol import (
    NEED_DATA,
    PROTOCOL_VERSION,
    Ack,
    AdminRequest,
    AdminResponse,
    Appended,
    AtOffset,
    Close,
    Connection,
    CreateTopic,
    Credit,
    Deliver,
    DeliverySpan,
    Error,
    GroupMode,
    Hello,
    Nack,
    NoResponders,
    PartitionInfo,
    Ping,
    Pong,
    Produce,
    ProducerClaim,
    ProduceResult,
    Rejected,
    Reply,
    Request,
    Role,
    State,
    Subscribe,
    Subscribed,
    Term,
    TopicDescription,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    encode_bytes,
    partition_ranges,
)
from tidings.records import check_batch, iter_records, stamped_header, validate_records
from tidings.testing import ConnectionPair, default_hello, default_welcome

C, S = Role.CLIENT, Role.SERVER


@pytest.fixture(params=[None, 1, 7], ids=["one-read", "byte-by-byte", "7-byte-reads"])
def pair(request) -> ConnectionPair:
    """An open pair; every test runs with whole reads and with reads cut into small pieces."""
    pair = ConnectionPair(chunk_size=request.param)
    pair.handshake()
    return pair


def states(pair: ConnectionPair) -> tuple[State, State]:
    return pair.client.state, pair.server.state


# -- handshake ------------------------------------------------------------------------------


def test_handshake_opens_both_ends():
    pair = ConnectionPair(client_max_frame_size=1 << 20)
    assert states(pair) == (State.IDLE, State.IDLE)
    hello = default_hello(pair.client, auth_token="secret", producer=ProducerClaim())
    assert pair.send(C, hello) == [hello]
    assert states(pair) == (State.HANDSHAKE, State.HANDSHAKE)
    assert pair.server.hello == hello
    assert pair.server.protocol_version == PROTOCOL_VERSION
    welcome = default_welcome(pair.server, producer_id=17, producer_epoch=0)
    assert pair.send(S, welcome) == [welcome]
    assert states(pair) == (State.OPEN, State.OPEN)
    assert pair.client.welcome == welcome
    assert pair.client.peer_max_frame_size == pair.server.max_frame_size
    assert pair.server.peer_max_frame_size == 1 << 20
    assert repr(pair.client) == (
        "<Connection client OPEN session=session-1 buffered=0 max_frame_size=1048576>"
    )
    assert "server OPEN" in repr(pair)


def test_client_must_speak_first_with_hello():
    pair = ConnectionPair()
    with pytest.raises(UnexpectedFrame, match="before Hello"):
        pair.client.send(Ping(nonce=1))
    with pytest.raises(UnexpectedFrame, match="a server may not send Hello"):
        pair.server.send(default_hello(pair.server))
    assert states(pair) == (State.IDLE, State.IDLE)  # a refused send changes nothing


def test_server_refuses_a_frame_before_hello_and_tells_the_client():
    pair = ConnectionPair()
    with pytest.raises(UnexpectedFrame, match="Ping from the client before Hello"):
        pair.transfer(S, encode_bytes(Ping(nonce=1)))  # bytes from a client that skipped Hello
    assert pair.server.state is State.ERROR
    error_bytes = b"".join(pair.server.send_error())
    with pytest.raises(HandshakeRejected, match="unexpected_frame") as caught:
        pair.transfer(C, error_bytes)
    assert caught.value.reason == "unexpected_frame"
    assert pair.client.state is State.CLOSED


def test_nothing_but_welcome_or_error_during_the_handshake():
    pair = ConnectionPair()
    pair.send(C, default_hello(pair.client))
    with pytest.raises(UnexpectedFrame, match="during the handshake"):
        pair.client.send(Ping(nonce=1))
    with pytest.raises(UnexpectedFrame, match="during the handshake"):
        pair.server.send(Pong(nonce=1))
    with pytest.raises(UnexpectedFrame, match="a client may not send Welcome"):
        pair.client.send(default_welcome(pair.server))


def test_server_rejects_the_handshake_with_an_error():
    pair = ConnectionPair()
    pair.send(C, default_hello(pair.client, auth_token="wrong"))
    with pytest.raises(HandshakeRejected, match="not_authorized: bad token") as caught:
        pair.send(S, Error(code="not_authorized", message="bad token"))
    assert caught.value.reason == "not_authorized"
    assert caught.value.code == "handshake_rejected"
    assert states(pair) == (State.CLOSED, State.CLOSED)
    with pytest.raises(UnexpectedFrame, match="after the connection closed"):
        pair.client.send(Close())


def test_server_rejects_an_old_protocol_version():
    pair = ConnectionPair()
    with pytest.raises(HandshakeRejected, match="client speaks protocol version 0"):
        pair.send(C, default_hello(pair.client, protocol_version=0))
    assert pair.server.state is State.ERROR
    with pytest.raises(HandshakeRejected) as caught:
        pair.transfer(C, b"".join(pair.server.send_error()))
    assert caught.value.reason == "handshake_rejected"


def test_a_newer_client_is_answered_in_the_servers_version():
    pair = ConnectionPair()
    pair.send(C, default_hello(pair.client, protocol_version=PROTOCOL_VERSION + 5))
    assert pair.server.protocol_version == PROTOCOL_VERSION
    pair.send(S, default_welcome(pair.server))
    assert pair.client.protocol_version == PROTOCOL_VERSION
    other = ConnectionPair()
    other.send(C, default_hello(other.client, protocol_version=PROTOCOL_VERSION + 5))
    with pytest.raises(ValueError, match="Welcome offers protocol version 6"):
        other.server.send(default_welcome(other.server, protocol_version=PROTOCOL_VERSION + 5))


def test_client_refuses_a_welcome_in_a_version_it_did_not_offer():
    pair = ConnectionPair()
    pair.send(C, default_hello(pair.client))
    welcome = Welcome(
        protocol_version=PROTOCOL_VERSION + 1,
        broker_id="b",
        broker_version="v",
        session_id="s",
        max_frame_size=1 << 20,
    )
    with pytest.raises(HandshakeRejected, match="server chose protocol version 2"):
        pair.transfer(C, encode_bytes(welcome))
    assert pair.client.state is State.ERROR
    assert b"handshake_rejected" in b"".join(pair.client.send_error())


def test_hello_and_welcome_must_announce_the_connections_own_limit():
    pair = ConnectionPair()
    with pytest.raises(ValueError, match="announces max_frame_size"):
        pair.client.send(default_hello(pair.client, max_frame_size=1 << 20))
    pair.send(C, default_hello(pair.client))
    with pytest.raises(ValueError, match="announces max_frame_size"):
        pair.server.send(default_welcome(pair.server, max_frame_size=1 << 20))


def test_connection_limit_must_be_sane():
    with pytest.raises(ValueError, match="outside"):
        Connection(C, max_frame_size=1024)


# -- producing ------------------------------------------------------------------------------


def test_produce_and_result(pair):
    batches = (batch(b"order-1", b"order-2"), batch(b"order-3"))
    (produce,) = pair.send(C, Produce(request_id=1, topic="orders", batches=batches))
    assert isinstance(produce, Produce) and produce.batches == batches
    appended = []
    for position, received in enumerate(produce.batches):
        header = check_batch(received)  # what the broker runs: CRCs over the views, no copy
        validate_records(received, header)
        base = 100 + 10 * position
        appended.append(
            Appended(partition=0, base_offset=base, last_offset=base + header.record_count - 1, append_time=5)
        )
    (result,) = pair.send(
        S, ProduceResult(request_id=1, results=(*appended, Rejected(code="disk_full", message="no space")))
    )
    assert result == ProduceResult(
        request_id=1, results=(*appended, Rejected(code="disk_full", message="no space"))
    )
    assert states(pair) == (State.OPEN, State.OPEN)


def test_a_server_may_not_produce_and_a_client_may_not_deliver(pair):
    with pytest.raises(UnexpectedFrame, match="a server may not send Produce"):
        pair.server.send(Produce(request_id=1, topic="t", batches=(batch(b"x"),)))
    deliver = Deliver(
        subscription_id=1,
        topic="t",
        partition=0,
        spans=(DeliverySpan(batch=0, first=0, last=0),),
        batches=(batch(b"x"),),
    )
    with pytest.raises(UnexpectedFrame, match="a client may not send Deliver"):
        pair.client.send(deliver)
    assert states(pair) == (State.OPEN, State.OPEN)
    with pytest.raises(UnexpectedFrame, match="a client may not send Deliver"):
        pair.transfer(S, encode_bytes(deliver))  # a rogue client's bytes
    assert pair.server.state is State.ERROR


def test_send_refuses_a_frame_too_large_for_the_peer_and_changes_nothing():
    pair = ConnectionPair(client_max_frame_size=64 * 1024)
    pair.handshake()
    big = Deliver(
        subscription_id=1,
        topic="t",
        partition=0,
        spans=(DeliverySpan(batch=0, first=0, last=0),),
        batches=(batch(b"x" * 70_000),),
    )
    with pytest.raises(FrameTooLarge, match="peer's limit of 65536"):
        pair.server.send(big)
    assert pair.server.state is State.OPEN
    assert pair.send(S, Ping(nonce=1)) == [Ping(nonce=1)]


# -- consuming ------------------------------------------------------------------------------


def test_subscribe_deliver_ack(pair):
    subscribe = Subscribe(
        request_id=2,
        subscription_id=9,
        topic="orders.*",
        group="shipping",
        mode=GroupMode.SHARED,
        start=AtOffset(offset=100),
        credits=10,
        max_deliveries=5,
    )
    assert pair.send(C, subscribe) == [subscribe]
    assert pair.send(S, Subscribed(request_id=2, subscription_id=9)) == [
        Subscribed(request_id=2, subscription_id=9)
    ]

    stored = batch(b"a", b"b", b"c")
    served = stamped_header(stored, 100, 7) + stored[64:]  # what the log serves: offsets 100..102
    deliver = Deliver(
        subscription_id=9,
        topic="orders.eu",
        partition=3,
        spans=(
            DeliverySpan(batch=0, first=100, last=100, delivery=2),
            DeliverySpan(batch=0, first=102, last=102),
        ),
        batches=(served,),
    )
    (received,) = pair.send(S, deliver)
    assert received == deliver
    view = received.batches[0]
    records = {r.offset: r for r in iter_records(view)}
    handled = [
        (received.topic, received.partition, offset)
        for span in received.spans
        for offset in range(span.first, span.last + 1)
        if offset in records
    ]
    assert handled == [("orders.eu", 3, 100), ("orders.eu", 3, 102)]

    ack = Ack(subscription_id=9, offsets=partition_ranges(handled))
    (got,) = pair.send(C, ack)
    assert [list(p.offsets()) for p in got.offsets] == [[100, 102]]
    assert pair.send(C, Credit(subscription_id=9, credits=2)) == [Credit(subscription_id=9, credits=2)]
    nack = Nack(
        subscription_id=9, offsets=partition_ranges([("orders.eu", 3, 101)]), delay_ms=500, reason="boom"
    )
    term = Term(subscription_id=9, offsets=partition_ranges([("orders.eu", 3, 103)]), reason="poison")
    assert pair.send(C, nack, term) == [nack, term]

    assert pair.send(C, Unsubscribe(request_id=3, subscription_id=9)) == [
        Unsubscribe(request_id=3, subscription_id=9)
    ]
    done = Unsubscribed(subscription_id=9, request_id=3)
    assert pair.send(S, done) == [done]


def test_request_reply_through_the_broker():
    requester, responder = ConnectionPair(), ConnectionPair()
    requester.handshake()
    responder.handshake()
    question = batch(b"charge 10 EUR")
    (at_broker,) = requester.send(
        C, Request(request_id=5, topic="payments.charge", timeout_ms=2_000, batch=question)
    )
    assert isinstance(at_broker, Request)
    # The broker forwards the request, under its own id, to a responder's connection.
    forwarded = Request(request_id=77, topic=at_broker.topic, timeout_ms=1_900, batch=at_broker.batch)
    (at_responder,) = responder.send(S, forwarded)
    assert at_responder.batch == question
    (reply,) = responder.send(C, Reply(request_id=77, batch=batch(b"ok")))
    (answer,) = requester.send(S, Reply(request_id=5, batch=reply.batch))
    assert answer == Reply(request_id=5, batch=batch(b"ok"))
    assert requester.send(S, NoResponders(request_id=6)) == [NoResponders(request_id=6)]
    with pytest.raises(UnexpectedFrame, match="a client may not send NoResponders"):
        requester.client.send(NoResponders(request_id=6))


def test_ping_pong_both_ways(pair):
    assert pair.send(C, Ping(nonce=1)) == [Ping(nonce=1)]
    assert pair.send(S, Pong(nonce=1)) == [Pong(nonce=1)]
    assert pair.send(S, Ping(nonce=2**63 - 1)) == [Ping(nonce=2**63 - 1)]
    assert pair.send(C, Pong(nonce=2**63 - 1)) == [Pong(nonce=2**63 - 1)]


def test_admin_round_trip(pair):
    request = AdminRequest(request_id=4, body=CreateTopic(name="orders", partitions=3))
    assert pair.send(C, request) == [request]
    response = AdminResponse(
        request_id=4,
        body=TopicDescription(
            name="orders",
            partitions=tuple(PartitionInfo(partition=p, start_offset=0, end_offset=0) for p in range(3)),
        ),
    )
    assert pair.send(S, response) == [response]
    with pytest.raises(UnexpectedFrame, match="a server may not send AdminRequest"):
        pair.server.send(request)


def test_request_scoped_errors_keep_the_connection_open(pair):
    error = Error(code="unknown_topic", message="no topic 'ordrs'", request_id=1)
    assert pair.send(S, error) == [error]
    assert pair.send(C, error) == [error]
    assert states(pair) == (State.OPEN, State.OPEN)


# -- closing --------------------------------------------------------------------------------


def test_client_close_lets_the_server_finish_then_close(pair):
    assert pair.send(C, Close(reason="shutting down")) == [Close(reason="shutting down")]
    assert states(pair) == (State.CLIENT_CLOSED, State.CLIENT_CLOSED)
    with pytest.raises(UnexpectedFrame, match="after it sent Close"):
        pair.client.send(Ping(nonce=1))
    result = ProduceResult(request_id=1, results=())
    assert pair.send(S, result) == [result]  # work in flight still comes back
    assert pair.send(S, Close()) == [Close()]
    assert states(pair) == (State.CLOSED, State.CLOSED)
    for conn in (pair.client, pair.server):
        with pytest.raises(UnexpectedFrame, match="after the connection closed"):
            conn.send(Close())


def test_server_close_lets_the_client_flush_its_acks(pair):
    pair.send(S, Close(reason="draining"))
    assert states(pair) == (State.SERVER_CLOSED, State.SERVER_CLOSED)
    ack = Ack(subscription_id=1, offsets=partition_ranges([("t", 0, 5)]))
    assert pair.send(C, ack) == [ack]
    with pytest.raises(UnexpectedFrame):
        pair.server.send(Ping(nonce=1))
    pair.send(C, Close())
    assert states(pair) == (State.CLOSED, State.CLOSED)


def test_both_close_at_once():
    pair = ConnectionPair()
    pair.handshake()
    client_close = b"".join(pair.client.send(Close()))
    server_close = b"".join(pair.server.send(Close()))
    assert states(pair) == (State.CLIENT_CLOSED, State.SERVER_CLOSED)
    assert pair.transfer(S, client_close) == [Close()]
    assert pair.transfer(C, server_close) == [Close()]
    assert states(pair) == (State.CLOSED, State.CLOSED)


def test_a_fatal_error_closes_its_senders_direction(pair):
    fatal = Error(code="shutting_down", message="broker stopping")
    assert pair.send(S, fatal) == [fatal]
    assert states(pair) == (State.SERVER_CLOSED, State.SERVER_CLOSED)


def test_frames_after_the_peers_close_are_a_protocol_error(pair):
    pair.send(C, Close())
    with pytest.raises(UnexpectedFrame, match="Ping from the client after it sent Close"):
        pair.transfer(S, encode_bytes(Ping(nonce=1)))


# -- errors ---------------------------------------------------------------------------------


def test_after_a_protocol_error_only_the_error_report_goes_out(pair):
    with pytest.raises(MalformedFrame, match="unknown frame kind 200"):
        pair.transfer(S, b"\x05\x00\x00\x00\xc8\x00\x00\x00\x00")
    server = pair.server
    assert server.state is State.ERROR
    assert isinstance(server.error, MalformedFrame)
    assert "ERROR" in repr(server)
    server.receive_data(b"more bytes")  # dropped unread
    assert server.buffered == 0
    with pytest.raises(MalformedFrame):
        server.next_event()
    with pytest.raises(UnexpectedFrame, match="after a protocol error"):
        server.send(Ping(nonce=1))
    (report,) = pair.transfer(C, b"".join(server.send_error()))
    assert report == Error(code="malformed_frame", message="unknown frame kind 200")
    assert pair.client.state is State.SERVER_CLOSED
    assert b"".join(server.send(Close()))  # Close is still allowed
    pair.server.receive_data(b"".join(pair.client.send(Close())))
    assert pair.server.buffered == 0  # the server in ERROR reads nothing more


def test_send_error_needs_an_error():
    with pytest.raises(RuntimeError, match="needs a connection in ERROR"):
        Connection(S).send_error()


def test_next_event_without_data():
    conn = Connection(S)
    assert conn.next_event() is NEED_DATA
    assert list(conn.events()) == []


def test_hello_cannot_be_sent_twice(pair):
    with pytest.raises(UnexpectedFrame, match="the handshake is over"):
        pair.client.send(default_hello(pair.client))
    with pytest.raises(UnexpectedFrame, match="the handshake is over"):
        pair.transfer(
            S, encode_bytes(Hello(protocol_version=1, service="s", client_id="c", max_frame_size=1 << 20))
        )
