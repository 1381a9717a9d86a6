"""Which messages an Ack, Nack or Term may settle, and which are stale.

A settlement names offsets and, from clients that tag it, the delivery it
answers (``PartitionRanges.delivery``). The rules that keep a late ack from
settling a newer delivery:

* a tagged settlement qualifies only for the delivery it names: once a
  message was delivered again (its ack deadline passed, a nack, a
  reconnect), an ack for the earlier delivery is stale, *even from the
  member now holding the newer delivery*. Without the tag, a handler that
  overran its deadline would settle its own redelivery, and the second
  handler's nack or term would then be ignored;
* a message in flight to the sender qualifies;
* a message that came back and is waiting to be redelivered, held by
  nobody, qualifies for acks and terms (``lenient``). The sender did handle
  it, just after its deadline, and settling it saves a useless redelivery.
  A nack for it means nothing and does not qualify;
* a message in flight to *another* member never qualifies: that delivery is
  newer;
* a message already settled, or never delivered, does not qualify.

Whatever does not qualify is stale. It is ignored and counted.
Untagged settlements (``delivery=0``, clients before the tag) keep the
member rule alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidings.core.groups.membership import Group
from tidings.core.groups.partition import PartitionState, Pending
from tidings.core.groups.values import MemberKey
from tidings.protocol.ranges import PartitionRanges


def claim(
    group: Group, member: MemberKey, offsets: Sequence[PartitionRanges], *, lenient: bool
) -> tuple[list[tuple[PartitionState, Pending]], int]:
    """The messages ``member`` may settle among ``offsets``, in order, and how many were stale."""
    claimed: dict[tuple[PartitionState, int], Pending] = {}
    named = 0
    for ranges in offsets:
        named += ranges.count
        state = group.states.get((ranges.topic, ranges.partition))
        if state is None:
            continue
        tag = ranges.delivery
        for r in ranges.ranges:
            for offset in delivered_within(state, r.first, r.last):
                entry = state.entries[offset]
                if tag and entry.deliveries != tag:
                    continue  # an answer to an earlier delivery: the current one is not settled by it
                if entry.holder == member or (lenient and entry.holder is None):
                    claimed[state, offset] = entry  # a dict: an offset named twice counts once
    return [(state, entry) for (state, _), entry in claimed.items()], named - len(claimed)


def delivered_within(state: PartitionState, first: int, last: int) -> list[int]:
    """Offsets in ``first..last`` that are delivered and unsettled, without walking a huge range."""
    entries = state.entries
    if last - first + 1 <= 2 * len(entries):
        return [o for o in range(first, last + 1) if o in entries]
    return sorted(o for o in entries if first <= o <= last)
