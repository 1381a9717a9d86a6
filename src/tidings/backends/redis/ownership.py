"""Partition ownership for ``partitioned`` groups: leases, a balanced assignment, and handing over.

Redis consumer groups give any entry to any consumer, so a partitioned
group needs one more thing for order per key: each partition read by one
member at a time. Every member runs ``scripts.COORDINATE`` each
``rebalance_interval``: it heartbeats the member in the group's members
zset (expiry ``lease_ttl``), assigns partition ``p`` to the ``p mod M``-th
live member in name order, renews the member's leases (``P{T}:lease:<g>:<p>``
= member, ``PX lease_ttl``), takes free partitions assigned to it, and
releases those it may release.

A partition's life in one member, as a table (``Ownership.step`` applies it;
``coordinator.Coordinator`` and the subscription do the I/O the transitions call for):

===========  ===================================  ============  ===================================
state        event                                next          action
===========  ===================================  ============  ===================================
(none)       the script says owned                ``claiming``  claim every pending entry, oldest
                                                                first, then start reading ``>``
``reading``  assigned elsewhere                   ``draining``  stop reading it; drop entries not
                                                                yet handed to the application
``draining`` no read started before is running,   (none)        the next script run deletes the
             nothing of it unsettled                            lease: another member takes it
any          the script no longer says owned      (none)        stop reading (lease lost: the
             (lease expired)                                    member paused longer than the TTL)
===========  ===================================  ============  ===================================

Claiming every pending entry on taking a partition gives the new owner the
previous owner's unsettled messages (a crashed member's, or the ones a
leaving member handed back) before anything newer, so order per key holds
across a hand-over. A member paused past ``lease_ttl`` loses its partitions
while it may still hold messages: those can then reach two members (the
contract's "at a time" holds only for members that renew in time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Ownership:
    """Which partitions one member owns, reads and drains."""

    partitions: int
    reading: set[int] = field(default_factory=set)
    draining: dict[int, int] = field(default_factory=dict)
    """Partition -> the number of reads started when it stopped being read."""
    assigned: set[int] = field(default_factory=set)

    def releasable(self, reads_done: int, unsettled: Iterable[int]) -> str:
        """The script's ``releasable`` argument: '1' for each draining partition safe to give up."""
        busy = set(unsettled)
        flags = ["0"] * self.partitions
        for partition, mark in self.draining.items():
            if reads_done >= mark and partition not in busy:
                flags[partition] = "1"
        return "".join(flags)

    def step(
        self, owned: Iterable[int], assigned: Iterable[int], reads_started: int
    ) -> tuple[set[int], set[int]]:
        """Apply the script's answer; returns (partitions to claim and start reading, partitions to drop).

        Dropped partitions are those no longer read: lost, released, or newly draining (the caller
        forgets their entries not yet handed out).
        """
        owned_now, self.assigned = set(owned), set(assigned)
        known = self.reading | set(self.draining)
        taken = owned_now - known
        dropped: set[int] = set()
        for partition in known - owned_now:  # released, or the lease was lost
            self.reading.discard(partition)
            self.draining.pop(partition, None)
            dropped.add(partition)
        for partition in self.reading - self.assigned:
            self.reading.discard(partition)
            self.draining[partition] = reads_started
            dropped.add(partition)
        for partition in list(self.draining):
            if partition in self.assigned and partition in owned_now:  # assigned back before released
                del self.draining[partition]
                taken.add(partition)
        return taken, dropped

    def started(self, partitions: Iterable[int]) -> None:
        """Claimed: these partitions are read from now on."""
        self.reading.update(partitions)

    @property
    def settled_in(self) -> bool:
        """True once the member reads every partition assigned to it."""
        return self.assigned <= self.reading
