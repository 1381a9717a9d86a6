"""Consumer groups: who gets which message, when, and what is settled.

``GroupEngine`` is the broker's consumer-group logic, with no I/O of its own.
It reads batches and writes dead letters through a ``PartitionSource``
(``tidings.core.ports``), takes time from an injected clock, and is driven
by the server one event at a time, synchronously.

Theory of operation
===================

**Groups and members.** Every group receives every event of its topics
(fan-out across groups). Inside a group the members share them. A member is
one subscription of one session, keyed ``(session_id, subscription_id)``.
It names a topic or a pattern (``orders.*`` for one level, ``orders.>`` for
any depth, matched by ``tidings.protocol.names``) that also covers topics
created later (``topic_created``). A pattern never takes the group's own
dead-letter topics (``policy.covers``). A subscription to a name that does
not exist yet waits for it. A member is ACTIVE, LEAVING (unsubscribed, its
messages in flight still settle by its acks) or GONE. The transitions are a
table in ``membership``.

**Modes.** A group's mode is fixed by its first subscription and kept while
it has members. A conflicting Subscribe raises ``GroupModeConflict``
(``group_mode_conflict``).

* ``partitioned``: each partition has one owner, computed by
  ``policy.assign_partitions`` (deterministic, balanced, sticky) whenever a
  member joins, leaves or disconnects, or a topic appears or goes. Only the
  owner is delivered a partition's messages, in offset order.
* ``shared``: any member takes any message. Partitions are served in turns,
  one Deliver frame per member with credit per turn. There is no order.

**Rebalance handover.** When a partition moves from A to B while A still has
messages of it in flight, B gets nothing from that partition until A's
leases end. They end when A acks (or terms) them, or when their ack deadline
passes and they come back to be redelivered, to B. That keeps per-key order
across a rebalance: two members never work on one partition at once, except
after a deadline, where at-least-once delivery allows it. When A
*disconnects*, nobody can ack its leases any more, so they come back at
once: its unacked messages go to the new owner straight away, with their
delivery count kept. An unsubscribe is a handover, not a disconnect: the
Unsubscribe frame promises that in-flight messages still settle by acks.

**Delivery.** ``take_deliveries`` plans Deliver frames (``delivery``) only for
members with credit. So the engine reads from the log only when someone can
take what it reads, and a slow consumer's backlog stays on disk. Each
delivered message uses one credit, and the Credit frame adds more. Frames
carry whole stored batches, found from their headers only (never decoded),
with ``DeliverySpan``\\ s naming the offsets that count and their delivery
count. A frame stays within ``max_delivery_bytes`` unless it holds a single
larger batch. Messages that came back (READY) go before unread ones,
lowest offset first. Order is therefore exact for first deliveries. A
message that is nacked, or that misses its deadline, comes back after
later messages already went out. A nack with a delay lets later messages
pass it, as in JetStream. Strict order through failures takes one credit
and nacks without delay.

**Per-message state** (``partition``). Per group and partition:

* ``floor``: the lowest unsettled offset, persisted as ``committed``.
* ``settled``: ranges of settled offsets above the floor, persisted as
  ``settled_above``.
* ``cursor``: the next offset never delivered.
* ``entries``: one small object per message in flight or coming back.
  There are at most as many as the members' credits.

In-order acks only move the floor. Out-of-order acks leave a few ranges.

**Acks, nacks, terms, deadlines.** Each delivery leases its messages to the
member until ``now + ack_deadline_ms``, with one timer per frame, not per
message (``timers``). Acks settle messages, and so do terms and dead
letters. A Nack gives a message back, to be delivered again after
``delay_ms`` to any member in shared mode, or to the partition's current
owner. So does a deadline that passes. ``policy.next_redelivery`` decides
between redelivering and dead-lettering: if another delivery would be
number ``max_deliveries + 1``, the message is dead-lettered at once through
``PartitionSource.dead_letter``. The reason is the last Nack's reason, or
"max deliveries exceeded". A Term dead-letters at once. If dead-lettering
fails (a full disk), the message is kept and comes back rather than being
lost.

**Stale acks** (``claims``). An ack or term settles a message only when it
is in flight to that member, or when nobody holds it (it came back and waits
to be redelivered: a late ack then saves a useless redelivery). An ack for a
message in flight to *another* member is ignored, because that delivery is
newer. So is an ack for a message already settled or never delivered. A
nack counts only from the message's holder. Every ignored one is counted in
``GroupStats.stale_acks`` (``group_stats``). Acks from a subscription that
is gone (disconnected, or unsubscribed and drained) are ignored.

**Start positions and progress.** A group with no progress on a partition
starts where ``start`` says: earliest, latest (default), an offset clamped to
the retained range, or a time (``offset_for_time``). Topics that appear
after the subscription start at their earliest, since all their records are
new. Existing progress always wins over ``start``. ``reset_group`` moves a
group on every partition of a topic and forgets what it had in flight:
acks for those messages are then stale, and replayed messages are delivered
afresh (count 1). Progress changes are handed out by
``take_progress_changes``, for the server to save with a ``GroupStore``
(``FileGroupStore``), and come back through the constructor after a
restart. Nothing settled, below the floor or in ``settled_above``, is
delivered again. Messages that retention deleted before they were settled
are skipped and counted as ``lost``.

**Time.** ``tick`` runs what is due at ``clock()``: expired deadlines and
delayed redeliveries. ``next_wakeup`` tells the server when to call it next.

Modules: ``engine`` (the stateful ``GroupEngine``, the public API),
``policy`` (pure decisions), ``membership`` (members, groups and their
state machine), ``roster`` (who exists), ``partition`` (per-partition
bookkeeping and the message state machine), ``claims`` (which acks count),
``pump`` (who may take a partition's messages now), ``delivery`` (planning
frames from batch headers), ``timers``, ``rangeset``, ``views`` (admin
answers), ``values``, ``store`` (``FileGroupStore``), and ``memory`` (an
in-memory ``PartitionSource`` for tests).

**Processing delay.** Each delivered message keeps its event time (its
batch header's ``first_timestamp``: the producer's clock, read with the
header the planner reads anyway). An ack adds ``now - time`` to the group's
``LatencyWindow`` (``tidings.core.windows``: a minute, bounded bins), read
by ``processing_delay(group)``; ``oldest_pending(group)`` gives the oldest
unsettled event time per partition. Both feed the HTTP API and metrics.

Beyond the API the server was given, the engine also has
``take_progress_deletions()``, progress keys of deleted topics for
``FileGroupStore.delete``, and ``group_stats(group)``. The ``GroupStore``
protocol has no way to delete.
"""

from tidings.core.groups.engine import GroupEngine
from tidings.core.groups.memory import DeadLetterCall, MemoryPartitionSource
from tidings.core.groups.policy import assign_partitions, next_redelivery, resolve_start
from tidings.core.groups.store import FileGroupStore
from tidings.core.groups.values import Delivery, GroupStats, MemberInfo, MemberKey

__all__ = [
    "DeadLetterCall",
    "Delivery",
    "FileGroupStore",
    "GroupEngine",
    "GroupStats",
    "MemberInfo",
    "MemberKey",
    "MemoryPartitionSource",
    "assign_partitions",
    "next_redelivery",
    "resolve_start",
]
