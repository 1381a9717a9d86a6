"""The value objects the group engine takes and hands back.

Frozen dataclasses, so the server can queue, log and compare them freely.
``Delivery`` maps one to one onto a ``Deliver`` frame; the engine never
builds frames itself, so it stays free of the codec.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.protocol.values import DeliverySpan
from tidings.records import Buffer

MemberKey = tuple[str, int]
"""``(session_id, subscription_id)``: a group member is one subscription of one session."""


def member_id(key: MemberKey) -> str:
    """The member's name in ``describe_group``: ``"<session>/<subscription>"``."""
    return f"{key[0]}/{key[1]}"


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """Who a session is, as its Hello said: shown in ``describe_group`` and the dashboard."""

    session_id: str
    client_id: str
    service: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Deliver frame to send: stored batches of one partition, and the offsets in them that count.

    ``batches`` are the bytes as stored (slices of what the source read, not
    copies). Every batch is named by at least one span; the spans are sorted
    by (batch, first), so a consumer that walks them sees offset order.
    """

    session_id: str
    subscription_id: int
    topic: str
    partition: int
    spans: tuple[DeliverySpan, ...]
    batches: tuple[Buffer, ...]
    group: str = ""
    """The member's group: for the flow map's rates, not for the frame."""

    @property
    def count(self) -> int:
        """Messages delivered, which is also the credits this delivery used."""
        return sum(span.last - span.first + 1 for span in self.spans)

    @property
    def size(self) -> int:
        """Bytes of batches carried."""
        return sum(len(batch) for batch in self.batches)

    def offsets(self) -> list[tuple[int, int]]:
        """``(offset, delivery)`` of every message, in order: for logs and tests."""
        return [(o, span.delivery) for span in self.spans for o in range(span.first, span.last + 1)]


@dataclass(slots=True)
class GroupStats:
    """Counters of one group since the broker started (not persisted): for metrics and the dashboard.

    The engine bumps one per group in place and hands out copies.

    ``stale_acks`` counts acks, nacks and terms that settled nothing:
    the message was already settled, never delivered, or was in flight to
    another member (after its deadline passed or a disconnect moved it).
    """

    delivered: int = 0
    """Messages delivered, first deliveries and redeliveries alike."""
    redelivered: int = 0
    """Deliveries with a delivery count above 1."""
    acked: int = 0
    nacked: int = 0
    expired: int = 0
    """Leases whose ack deadline passed, so the message went back to be redelivered."""
    dead_lettered: int = 0
    """Terminated by the consumer, or past ``max_deliveries``."""
    stale_acks: int = 0
    lost: int = 0
    """Unsettled messages that retention deleted before they could be delivered (again)."""
