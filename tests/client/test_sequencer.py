"""The idempotence bookkeeping, without I/O: numbering, retries, rewinds, identity changes."""

from __future__ import annotations

from tidings.client.sequencer import SEQUENCE_LIMIT, Sequencer
from tidings.protocol import ProducerClaim, Welcome
from tidings.records import BatchBuilder, read_header


def welcome(producer_id: int | None, epoch: int | None = 0) -> Welcome:
    return Welcome(
        protocol_version=1,
        broker_id="b",
        broker_version="t",
        session_id="s",
        max_frame_size=65536,
        producer_id=producer_id,
        producer_epoch=None if producer_id is None else epoch,
    )


def builder(records: int) -> BatchBuilder:
    b = BatchBuilder()
    for i in range(records):
        b.add(f"r{i}".encode(), timestamp=1)
    return b


def test_batches_are_numbered_per_partition_and_a_retry_keeps_its_bytes():
    seq = Sequencer()
    assert seq.claim() == ProducerClaim()
    assert seq.adopt(welcome(5, 1))
    first = seq.encode(("t", 0), builder(3), None)
    other = seq.encode(("t", 1), builder(2), None)
    second = seq.encode(("t", 0), builder(4), None)
    assert (first.base_sequence, other.base_sequence, second.base_sequence) == (0, 0, 3)
    header = read_header(second.data)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (5, 1, 3)
    assert seq.encode(("t", 0), builder(4), second) is second  # a retry: the very same bytes
    assert seq.claim() == ProducerClaim(producer_id=5, producer_epoch=1)


def test_a_new_identity_renumbers_from_zero():
    seq = Sequencer()
    seq.adopt(welcome(5))
    before = seq.encode(("t", 0), builder(3), None)
    assert not seq.adopt(welcome(5))  # the same id again: nothing changes
    assert seq.adopt(welcome(6))
    again = seq.encode(("t", 0), builder(3), before)
    assert again is not before and again.base_sequence == 0 and read_header(again.data).producer_id == 6


def test_refused_batches_give_their_numbers_back():
    seq = Sequencer()
    seq.adopt(welcome(5))
    a = seq.encode(("t", 0), builder(2), None)
    b = seq.encode(("t", 0), builder(2), None)
    seq.rewind(("t", 0), [a, b], last_appended=a)  # a stored, b refused
    assert seq.encode(("t", 0), builder(1), None).base_sequence == 2
    c = seq.encode(("t", 0), builder(1), None)
    seq.rewind(("t", 0), [c], last_appended=None)
    assert seq.encode(("t", 0), builder(1), None).base_sequence == c.base_sequence


def test_losing_track_asks_for_a_fresh_id_and_sequences_wrap():
    seq = Sequencer()
    seq.adopt(welcome(5))
    seq.lose_track()
    assert seq.claim() == ProducerClaim()
    seq._next[("t", 0)] = SEQUENCE_LIMIT - 1
    last = seq.encode(("t", 0), builder(2), None)
    assert last.end_sequence == 1


def test_without_a_producer_id_batches_are_plain():
    seq = Sequencer()
    seq.adopt(welcome(None))
    encoded = seq.encode(("t", 0), builder(2), None)
    header = read_header(encoded.data)
    assert (header.producer_id, header.base_sequence, encoded.identity) == (-1, -1, None)


def test_a_placed_first_batch_moves_its_numbering_to_its_partition():
    seq = Sequencer()
    seq.adopt(welcome(5))
    seq.forget_topic("t")
    first = seq.encode(("t", None), builder(1), None)
    assert first.base_sequence == 0
    seq.moved(("t", None), ("t", 2), first)
    assert seq.encode(("t", 2), builder(1), None).base_sequence == 1
    assert seq.encode(("t", 0), builder(1), None).base_sequence == 0
