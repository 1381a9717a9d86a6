"""What a Deliver frame carries: whole stored batches, spans naming the offsets, size limits."""

from tidings.core.groups.delivery import split_batches
from tidings.records import check_batch, iter_batches, iter_records

from .helpers import Harness, messages, offsets_for


def test_whole_batches_with_spans_and_checkable_bytes():
    h = Harness()
    h.topic("t")
    h.produce("t", 0, 10, per_batch=4)  # batches 0-3, 4-7, 8-9
    h.subscribe("a", "t", "g")
    [delivery] = h.take()
    assert len(delivery.batches) == 3
    assert [(s.batch, s.first, s.last, s.delivery) for s in delivery.spans] == [
        (0, 0, 3, 1),
        (1, 4, 7, 1),
        (2, 8, 9, 1),
    ]
    for batch in delivery.batches:  # the bytes as stored: CRCs hold, records decode
        header = check_batch(bytes(batch))
        records = list(iter_records(bytes(batch)))
        assert [r.offset for r in records] == list(range(header.base_offset, header.next_offset))
    assert delivery.count == 10


def test_credits_cut_spans_not_batches():
    h = Harness()
    h.topic("t")
    h.produce("t", 0, 10, per_batch=10)
    h.subscribe("a", "t", "g", credits=3)
    [first] = h.take()
    assert [(s.first, s.last) for s in first.spans] == [(0, 2)]
    assert len(first.batches) == 1 and check_batch(bytes(first.batches[0])).record_count == 10
    h.engine.credit("a", 1, 4)
    [second] = h.take()
    # the same batch again: it starts before the group's position, the span skips what was sent
    assert [(s.first, s.last) for s in second.spans] == [(3, 6)]
    assert bytes(second.batches[0]) == bytes(first.batches[0])


def test_deliveries_respect_max_bytes_except_one_oversized_batch():
    h = Harness(max_delivery_bytes=600)
    h.topic("t")
    h.produce("t", 0, 30, per_batch=3)  # ~10 batches of about 190 bytes
    big = h.source.append("t", 0, [b"x" * 2000])  # one batch over the limit
    h.produce("t", 0, 6, per_batch=3)
    h.subscribe("a", "t", "g")
    deliveries = h.take()
    assert offsets_for(deliveries) == list(range(37))
    for delivery in deliveries:
        if delivery.size > 600:
            assert len(delivery.batches) == 1
            assert check_batch(bytes(delivery.batches[0])).base_offset == big[0]
    assert sum(1 for d in deliveries if d.size > 600) == 1
    assert len(deliveries) > 5


def test_reads_only_when_someone_has_credit():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", credits=0)
    h.produce("t", 0, 1000, per_batch=10)
    reads = h.source.reads
    assert h.take() == []
    assert h.source.reads == reads  # a consumer with no credit costs no read
    h.engine.credit("a", 1, 5)
    [delivery] = h.take()
    assert delivery.count == 5
    assert delivery.size < 1000  # one batch, not the backlog


def test_redelivery_and_new_messages_share_a_frame_in_offset_order():
    h = Harness()
    h.topic("t")
    h.produce("t", 0, 6, per_batch=6)
    h.subscribe("a", "t", "g", credits=3)
    h.take()
    h.nack("a", "t", 0, [1])
    h.engine.credit("a", 1, 3)
    [delivery] = h.take()
    assert delivery.offsets() == [(1, 2), (3, 1), (4, 1)]
    assert len(delivery.batches) == 1  # one batch, named by two spans


def test_split_batches_reads_headers_only():
    h = Harness()
    h.topic("t")
    h.produce("t", 0, 7, per_batch=3)
    data = h.source.read("t", 0, 0, 1 << 20).data
    batches = split_batches(data)
    assert [(b.base, b.last) for b in batches] == [(0, 2), (3, 5), (6, 6)]
    assert [h.base_offset for _, h in iter_batches(data)] == [0, 3, 6]


def test_small_slices_of_big_reads_are_copied():
    h = Harness()
    h.topic("t")
    h.produce("t", 0, 40, per_batch=2)
    h.subscribe("a", "t", "g", credits=1)
    [delivery] = h.take()
    assert isinstance(delivery.batches[0], bytes)  # not a view pinning the whole read
    h.engine.credit("a", 1, 1000)
    deliveries = h.take()
    assert any(isinstance(b, memoryview) for d in deliveries for b in d.batches)
    assert [m[3] for m in messages(deliveries)] == list(range(1, 40))
