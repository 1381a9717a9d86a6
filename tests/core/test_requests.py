"""Request routing as bookkeeping: choose, open, reply, expire, sessions closing."""

from __future__ import annotations

from tidings.core.requests import RequestRouter


class Clock:
    def __init__(self) -> None:
        self.now = 1000

    def __call__(self) -> int:
        return self.now


def test_round_robin_per_topic():
    router = RequestRouter(Clock())
    picks = [router.choose("pay", ["a", "b"]) for _ in range(4)]
    assert picks == ["a", "b", "a", "b"]
    assert router.choose("ship", ["a", "b"]) == "a"  # each topic takes its own turns
    assert router.choose("pay", []) is None


def test_reply_completes_a_route_once_and_only_from_its_responder():
    router = RequestRouter(Clock())
    broker_id = router.open("req", 7, "resp", "pay", 1000)
    assert router.reply("someone-else", broker_id) is None
    route = router.reply("resp", broker_id)
    assert (route.requester, route.request_id) == ("req", 7)
    assert router.reply("resp", broker_id) is None
    assert len(router) == 0


def test_expiry_drops_routes_after_their_timeout():
    clock = Clock()
    router = RequestRouter(clock)
    first = router.open("req", 1, "resp", "pay", 100)
    router.open("req", 2, "resp", "pay", 500)
    assert router.next_deadline() == 1100
    clock.now = 1100
    assert [r.broker_id for r in router.expire()] == [first]
    assert router.next_deadline() == 1500
    assert router.reply("resp", first) is None


def test_session_closing():
    router = RequestRouter(Clock())
    router.open("req", 1, "resp", "pay", 100)
    router.open("resp", 2, "other", "pay", 100)
    orphaned = router.session_closed("resp")
    assert [(r.requester, r.request_id) for r in orphaned] == [("req", 1)]  # its requester must hear of it
    assert len(router) == 0
    assert router.next_deadline() is None


def test_in_flight_limit_per_session():
    router = RequestRouter(Clock(), max_in_flight=2)
    ids = [router.open("req", n, "resp", "pay", 100) for n in range(2)]
    assert router.full("req") and not router.full("other")
    router.reply("resp", ids[0])
    assert not router.full("req")
