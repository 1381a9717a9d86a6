"""Which partition a keyed record belongs to: one rule, shared by producers and the broker.

A client that knows a topic's partition count computes the partition itself
(so it can batch per partition and number its batches per partition for
idempotence); the broker applies the same rule to a Produce that leaves the
partition to it. Both must agree forever, or a key's events would change
partition and lose their order, so the rule is a plain, documented function
of the key bytes: CRC32C (Castagnoli), passed through MurmurHash3's 32-bit
finalizer, modulo the partition count. It is stable across processes,
machines and Python versions (unlike ``hash()``). The finalizer matters: a
CRC is linear, so keys that differ only in their last character (``order-1``,
``order-2``, ...) differ only in a few low bits of their CRCs, and a bare
``crc % 4`` puts eight such keys on two partitions out of four.
"""

from __future__ import annotations

from tidings.records.batch import Buffer, crc32c


def partition_for_key(key: Buffer, partitions: int) -> int:
    """The partition of a record with this key, among ``partitions`` (>= 1)."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return _fmix32(crc32c(key)) % partitions


def _fmix32(h: int) -> int:
    """MurmurHash3's finalizer: every input bit flips each output bit with probability ~1/2."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)
