"""The engine against a simple model, under random joins, leaves, credits, acks, nacks and time.

The model knows, for each message, whether it is settled, who holds it, and
until when (its ack deadline). After every step the machine takes the
engine's deliveries and checks them against the model:

* a message is never delivered while the model says someone holds it
  (never to two members at once), nor once it is settled;
* delivery counts go up by one each time;
* a member never gets more than its credits;
* partitioned mode: a partition is delivered only to its owner, only when no
  other member holds messages of it, and first deliveries come in offset order;
* the floor never goes backwards, and equals the model's lowest unsettled
  offset, and in-flight counts match.

A restart rebuilds the engine from the progress saved so far: nothing
settled is delivered again. At the end everyone's deadlines pass and a fresh member drains the group:
every message ends settled (acked or dead-lettered) exactly once.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tidings.protocol.values import GroupMode

from .helpers import Harness

MEMBERS = ("m0", "m1", "m2")
PARTITIONS = 2
DEADLINE = 100
Msg = tuple[int, int]  # (partition, offset)


class GroupMachine(RuleBasedStateMachine):
    mode = GroupMode.PARTITIONED
    max_deliveries: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.h.topic("t", PARTITIONS)
        self.produced = [0] * PARTITIONS
        self.state: dict[str, str] = dict.fromkeys(MEMBERS, "gone")  # active, leaving, gone
        self.credits: dict[str, int] = dict.fromkeys(MEMBERS, 0)
        self.held: dict[Msg, tuple[str, int]] = {}  # msg -> (member, deadline)
        self.settled: set[Msg] = set()
        self.counts: dict[Msg, int] = {}
        self.last_fresh = [-1] * PARTITIONS
        self.floors: dict[int, int] = {}
        self.saved: dict = {}  # what the server would have saved: all progress changes so far
        self.dead_seen = 0

    # -- helpers -----------------------------------------------------------------------

    def sub(self, member: str, credits: int) -> None:
        self.h.subscribe(
            member,
            "t",
            "g",
            mode=self.mode,
            credits=credits,
            ack_deadline_ms=DEADLINE,
            max_deliveries=self.max_deliveries,
        )

    def release(self, member: str) -> None:
        for msg in [m for m, (holder, _) in self.held.items() if holder == member]:
            del self.held[msg]

    def forget_drained(self) -> None:
        for member, state in self.state.items():
            if state == "leaving" and not any(h == member for h, _ in self.held.values()):
                self.state[member] = "gone"

    def held_by(self, member: str) -> list[Msg]:
        return sorted(m for m, (holder, _) in self.held.items() if holder == member)

    def after(self) -> None:
        """Take what the engine delivers now and check it against the model."""
        owners = self.owners()
        for delivery in self.h.take():
            member, p = delivery.session_id, delivery.partition
            spans = [(s.batch, s.first, s.last) for s in delivery.spans]
            assert spans == sorted(spans)
            assert self.state[member] == "active", f"{member} is {self.state[member]}"
            if self.mode is GroupMode.PARTITIONED:
                assert owners.get(p) == member, f"partition {p} went to {member}, owner {owners.get(p)}"
                others = {holder for (q, _), (holder, _) in self.held.items() if q == p and holder != member}
                assert not others, f"partition {p} delivered to {member} while {others} hold some"
            for offset, count in delivery.offsets():
                msg = (p, offset)
                assert msg not in self.held, f"{msg} delivered to {member} while held by {self.held[msg]}"
                assert msg not in self.settled, f"{msg} delivered after it was settled"
                assert count == self.counts.get(msg, 0) + 1
                if count == 1 and self.mode is GroupMode.PARTITIONED:
                    assert offset > self.last_fresh[p]
                    self.last_fresh[p] = offset
                self.counts[msg] = count
                self.credits[member] -= 1
                assert self.credits[member] >= 0
                self.held[msg] = (member, self.h.clock.now + DEADLINE)
        self.collect_dead_letters()
        self.forget_drained()

    def collect_dead_letters(self) -> None:
        for call in self.h.source.dead_letters[self.dead_seen :]:
            msg = (call.partition, call.offset)
            assert msg not in self.settled
            assert call.deliveries == self.counts[msg]
            self.settled.add(msg)
            self.held.pop(msg, None)
        self.dead_seen = len(self.h.source.dead_letters)

    def owners(self) -> dict[int, str]:
        if self.mode is not GroupMode.PARTITIONED:
            return {}
        try:
            described = self.h.engine.describe_group("g")
        except Exception:
            return {}
        return {tp.partition: m.member_id.split("/")[0] for m in described.members for tp in m.assigned}

    # -- rules ---------------------------------------------------------------------------

    @rule(p=st.integers(0, PARTITIONS - 1), n=st.integers(1, 4), per_batch=st.integers(1, 3))
    def produce(self, p, n, per_batch):
        self.h.produce("t", p, n, per_batch=per_batch)
        self.produced[p] += n
        self.after()

    @rule(member=st.sampled_from(MEMBERS), credits=st.integers(0, 6))
    def join(self, member, credits):
        if self.state[member] == "active":
            return
        self.sub(member, credits)
        self.release(member)  # a leaving subscription with the same id gives its messages back
        self.state[member] = "active"
        self.credits[member] = credits
        self.after()

    @rule(member=st.sampled_from(MEMBERS))
    def unsubscribe(self, member):
        if self.state[member] != "active":
            return
        self.h.engine.unsubscribe(member, 1)
        self.state[member] = "leaving"
        self.after()

    @rule(member=st.sampled_from(MEMBERS))
    def disconnect(self, member):
        self.h.engine.disconnect(member)
        self.release(member)
        self.state[member] = "gone"
        self.after()

    @rule(member=st.sampled_from(MEMBERS), n=st.integers(1, 5))
    def credit(self, member, n):
        self.h.engine.credit(member, 1, n)
        if self.state[member] == "active":
            self.credits[member] += n
        self.after()

    @rule(member=st.sampled_from(MEMBERS), data=st.data())
    def ack(self, member, data):
        if self.state[member] == "gone":
            return
        mine = self.held_by(member)
        chosen = data.draw(st.lists(st.sampled_from(mine), unique=True)) if mine else []
        theirs = sorted(m for m, (holder, _) in self.held.items() if holder != member)
        stray = data.draw(st.lists(st.sampled_from(theirs), max_size=2, unique=True)) if theirs else []
        stray += data.draw(st.lists(st.tuples(st.integers(0, PARTITIONS - 1), st.integers(0, 9)), max_size=2))
        by_partition: dict[int, set[int]] = {}
        for p, o in chosen + stray:  # stray: acks for messages this member does not hold
            by_partition.setdefault(p, set()).add(o)
        for p, offsets in by_partition.items():
            self.h.ack(member, "t", p, sorted(offsets))
            if self.state[member] == "gone":
                continue  # it drained with the previous ack and is forgotten: this one is ignored
            for o in offsets:
                msg = (p, o)
                holder = self.held.get(msg)
                if holder is not None and holder[0] == member:
                    del self.held[msg]
                    self.settled.add(msg)
                elif holder is None and self.counts.get(msg) and msg not in self.settled:
                    self.settled.add(msg)  # waiting for redelivery, held by nobody: a late ack counts
            self.forget_drained()
        self.after()

    @rule(member=st.sampled_from(MEMBERS), data=st.data(), delay=st.sampled_from([0, 0, 30, 250]))
    def nack(self, member, data, delay):
        mine = self.held_by(member)
        if self.state[member] == "gone" or not mine:
            return
        chosen = data.draw(st.lists(st.sampled_from(mine), min_size=1, unique=True))
        for p in {p for p, _ in chosen}:
            self.h.nack(member, "t", p, [o for q, o in chosen if q == p], delay_ms=delay, reason="boom")
        for msg in chosen:
            del self.held[msg]
        self.after()

    @rule(member=st.sampled_from(MEMBERS), data=st.data())
    def term(self, member, data):
        mine = self.held_by(member)
        if self.state[member] == "gone" or not mine:
            return
        p, o = data.draw(st.sampled_from(mine))
        self.h.term(member, "t", p, [o], reason="poison")
        del self.held[(p, o)]
        self.after()
        assert (p, o) in self.settled

    @rule(ms=st.sampled_from([10, 50, 100, 300]))
    def advance(self, ms):
        self.h.tick(ms)
        now = self.h.clock.now
        for msg in [m for m, (_, deadline) in self.held.items() if deadline <= now]:
            del self.held[msg]
        self.after()

    @rule()
    def restart(self):
        """The broker restarts from the saved progress: sessions are gone, delivery counts start over."""
        self.progress_matches_the_model()
        self.h.restart(dict(self.saved))
        self.state = dict.fromkeys(MEMBERS, "gone")
        self.held.clear()
        self.counts = {msg: count for msg, count in self.counts.items() if msg in self.settled}
        self.last_fresh = [-1] * PARTITIONS
        self.after()

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def progress_matches_the_model(self):
        for key, progress in self.h.engine.take_progress_changes().items():
            assert progress.committed >= self.floors.get(key[2], 0), "the floor went backwards"
            self.floors[key[2]] = progress.committed
            self.saved[key] = progress
        for p in range(PARTITIONS):
            floor = next(o for o in range(self.produced[p] + 1) if (p, o) not in self.settled)
            assert self.floors.get(p, 0) == min(floor, self.produced[p])
        try:
            described = self.h.engine.describe_group("g")
        except Exception:
            return
        for view in described.partitions:
            held = sum(1 for (p, _) in self.held if p == view.partition)
            assert view.in_flight == held

    def ack_all(self, member: str) -> None:
        for p, o in self.held_by(member):
            self.h.ack(member, "t", p, [o])
            del self.held[(p, o)]
            self.settled.add((p, o))

    def teardown(self):
        """Everyone but m0 goes; m0 takes and acks whatever is left while time passes."""
        for member in MEMBERS[1:]:
            self.disconnect(member)
        if self.state["m0"] == "leaving":
            self.disconnect("m0")
        if self.state["m0"] == "gone":
            self.join("m0", 0)
        for _ in range(20):
            self.credit("m0", 100)
            self.ack_all("m0")
            self.advance(300)  # deadlines and nack delays pass
            self.ack_all("m0")
            self.progress_matches_the_model()
            if [self.floors.get(p, 0) for p in range(PARTITIONS)] == self.produced:
                break
        expected = {(p, o) for p in range(PARTITIONS) for o in range(self.produced[p])}
        assert self.settled == expected
        assert [self.floors.get(p, 0) for p in range(PARTITIONS)] == self.produced


FAST = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SharedMachine(GroupMachine):
    mode = GroupMode.SHARED


class LimitedMachine(GroupMachine):
    max_deliveries = 2


TestPartitioned = GroupMachine.TestCase
TestPartitioned.settings = FAST
TestShared = SharedMachine.TestCase
TestShared.settings = FAST
TestLimited = LimitedMachine.TestCase
TestLimited.settings = FAST
