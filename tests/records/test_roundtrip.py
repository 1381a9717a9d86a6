"""Encoding records with ``BatchBuilder``/``build_batch`` and reading them back with ``iter_records``."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import InvalidBatchError
from tidings.records import (
    HEADER_SIZE,
    BatchBuilder,
    build_batch,
    check_batch,
    iter_records,
    now_ms,
    read_header,
    stamped_header,
    validate_records,
)
from tidings.records import layout as L


def test_records_survive_encoding_and_stamping():
    builder = BatchBuilder()
    builder.add(b"hello", key=b"k1", headers={"ce-type": b"OrderPlaced"}, timestamp=1_000)
    builder.add(b"world", timestamp=1_005)
    batch = builder.build()
    assert len(batch) == builder.size

    stamped = stamped_header(batch, 41, 2_000) + batch[64:]
    header = check_batch(stamped)
    validate_records(stamped, header)
    first, second = iter_records(stamped)

    assert (first.offset, first.key, first.value, first.timestamp) == (41, b"k1", b"hello", 1_000)
    assert first.header("ce-type") == b"OrderPlaced"
    assert (second.offset, second.key, second.value, second.timestamp) == (42, None, b"world", 1_005)
    assert second.append_time == 2_000


def test_no_key_and_empty_key_are_different():
    builder = BatchBuilder()
    builder.add(b"a", key=None, timestamp=1)
    builder.add(b"b", key=b"", timestamp=1)
    builder.add(b"", key=b"k", timestamp=1)
    batch = builder.build()
    records = list(iter_records(batch))
    assert [r.key for r in records] == [None, b"", b"k"]
    assert [r.value for r in records] == [b"a", b"b", b""]
    # The encoding itself tells them apart: key_length -1 versus 0.
    first_prefix = L.RECORD_PREFIX.unpack_from(batch, HEADER_SIZE)
    second_prefix = L.RECORD_PREFIX.unpack_from(batch, HEADER_SIZE + first_prefix[0])
    assert first_prefix[3] == L.NO_KEY
    assert second_prefix[3] == 0


def test_headers_from_a_mapping_and_from_a_sequence():
    builder = BatchBuilder()
    builder.add(b"v1", headers={"a": b"1", "b": b""}, timestamp=5)
    # A sequence keeps order and allows repeated names.
    builder.add(b"v2", headers=[("x", b"first"), ("x", b"second"), ("ünï", b"\x00\xff")], timestamp=5)
    builder.add(b"v3", headers=[], timestamp=5)
    builder.add(b"v4", headers={}, timestamp=5)
    one, two, three, four = iter_records(builder.build())
    assert one.headers == (("a", b"1"), ("b", b""))
    assert two.headers == (("x", b"first"), ("x", b"second"), ("ünï", b"\x00\xff"))
    assert two.header("x") == b"first"
    assert two.header("missing") is None
    assert three.headers == () == four.headers


def test_timestamps_first_and_max_and_deltas():
    builder = BatchBuilder()
    for stamp in (1_000, 900, 1_500, 900):
        builder.add(b"v", timestamp=stamp)
    batch = builder.build()
    header = read_header(batch)
    # first_timestamp is the smallest, so every delta is >= 0 even when records are out of order.
    assert (header.first_timestamp, header.max_timestamp) == (900, 1_500)
    assert [r.timestamp for r in iter_records(batch)] == [1_000, 900, 1_500, 900]
    validate_records(batch, header)


def test_timestamp_defaults_to_now():
    builder = BatchBuilder()
    start = now_ms()
    builder.add(b"v")
    (record,) = iter_records(builder.build())
    assert start <= record.timestamp <= now_ms()


def test_batch_spanning_more_than_int32_ms_is_refused():
    builder = BatchBuilder()
    builder.add(b"a", timestamp=0)
    builder.add(b"b", timestamp=L.MAX_TIMESTAMP_DELTA)
    builder.build()  # exactly the limit is fine
    builder.add(b"c", timestamp=L.MAX_TIMESTAMP_DELTA + 1)
    with pytest.raises(InvalidBatchError, match="2\\*\\*31"):
        builder.build()


def test_empty_builder_is_refused():
    with pytest.raises(InvalidBatchError, match="no records"):
        BatchBuilder().build()


def test_size_is_known_before_build():
    builder = BatchBuilder()
    assert builder.size == HEADER_SIZE
    size = builder.add(b"value", key=b"key", headers={"h": b"v"}, timestamp=1)
    assert size == builder.size
    size = builder.add(b"", key=None, timestamp=1)
    assert len(builder) == 2
    assert len(builder.build()) == size


def test_non_idempotent_defaults():
    batch = build_batch([b"a", b"b"], timestamp=7)
    header = read_header(batch)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (-1, -1, -1)
    assert not header.idempotent
    assert [r.sequence for r in iter_records(batch)] == [-1, -1]
    # A producer sends base offset 0 and no append time: the log stamps them.
    assert (header.base_offset, header.append_time) == (0, 0)


def test_idempotent_producer_fields_and_record_sequence():
    batch = build_batch(
        [b"a", b"b", b"c"], timestamp=7, producer_id=12345, producer_epoch=3, base_sequence=40
    )
    header = read_header(batch)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (12345, 3, 40)
    assert header.idempotent
    assert [r.sequence for r in iter_records(batch)] == [40, 41, 42]
    # Stamping keeps them: the producer's identity survives the log.
    stamped = stamped_header(batch, 100, 9) + batch[HEADER_SIZE:]
    assert [(r.offset, r.sequence) for r in iter_records(stamped)] == [(100, 40), (101, 41), (102, 42)]


def test_build_batch_with_keys_and_one_timestamp():
    batch = build_batch([b"v0", b"v1"], keys=[b"k0", None], timestamp=123)
    records = list(iter_records(batch))
    assert [(r.offset, r.key, r.value, r.timestamp) for r in records] == [
        (0, b"k0", b"v0", 123),
        (1, None, b"v1", 123),
    ]
    header = read_header(batch)
    assert header.record_count == 2
    assert header.first_timestamp == header.max_timestamp == 123


def test_header_name_too_long_is_refused():
    with pytest.raises(InvalidBatchError, match="too long"):
        BatchBuilder().add(b"v", headers={"n" * 70_000: b""})


def test_stamped_header_changes_only_the_stamped_fields_and_header_crc():
    batch = build_batch([b"x" * 10, b"y"], keys=[b"k", None], timestamp=50)
    before = read_header(batch)
    new_header = stamped_header(batch, 2**40, 1_700_000_000_000)
    assert len(new_header) == HEADER_SIZE
    after = read_header(new_header + batch[HEADER_SIZE:])
    assert (after.base_offset, after.append_time) == (2**40, 1_700_000_000_000)
    assert after.crc == before.crc
    assert after.length == before.length
    assert after.header_crc != before.header_crc
    # bytes 16..24 (length, crc) and 28..64 are the producer's, untouched
    assert new_header[16:24] == batch[16:24]
    assert new_header[L.CRC_START :] == batch[L.CRC_START : HEADER_SIZE]
    stamped = new_header + batch[HEADER_SIZE:]
    check_batch(stamped)
    assert [r.offset for r in iter_records(stamped)] == [2**40, 2**40 + 1]
    assert all(r.append_time == 1_700_000_000_000 for r in iter_records(stamped))


def test_stamped_header_reads_a_batch_at_a_position_inside_a_memoryview():
    batch = build_batch([b"payload"], timestamp=1)
    buf = memoryview(b"\x00" * 13 + batch)
    header = stamped_header(buf, 5, 6, position=13)
    check_batch(header + batch[HEADER_SIZE:])


def test_iter_records_at_a_position():
    first = build_batch([b"a"], timestamp=1)
    second = build_batch([b"b", b"c"], timestamp=2)
    buf = first + stamped_header(second, 1, 0) + second[HEADER_SIZE:]
    assert [(r.offset, r.value) for r in iter_records(buf, len(first))] == [(1, b"b"), (2, b"c")]


# -- property: any records round-trip -------------------------------------------------

header_names = st.text(max_size=8)
header_lists = st.lists(st.tuples(header_names, st.binary(max_size=16)), max_size=4)
records_strategy = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=16),
        st.binary(max_size=64),
        header_lists,
        st.integers(min_value=0, max_value=2**31 - 1),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    records=records_strategy,
    base=st.integers(min_value=0, max_value=2**62),
    append_time=st.integers(min_value=0, max_value=2**62),
    epoch_offset=st.integers(min_value=-(2**40), max_value=2**40),
)
def test_any_records_round_trip(records, base, append_time, epoch_offset):
    builder = BatchBuilder()
    for key, value, headers, stamp in records:
        builder.add(value, key=key, headers=headers, timestamp=stamp + epoch_offset)
    batch = builder.build()
    assert len(batch) == builder.size
    stamped = stamped_header(batch, base, append_time) + batch[HEADER_SIZE:]
    header = check_batch(stamped)
    validate_records(stamped, header)
    assert header.record_count == len(records)
    assert header.first_timestamp == min(r[3] for r in records) + epoch_offset
    assert header.max_timestamp == max(r[3] for r in records) + epoch_offset
    decoded = list(iter_records(stamped))
    assert [(r.key, r.value, list(r.headers), r.timestamp) for r in decoded] == [
        (key, value, headers, stamp + epoch_offset) for key, value, headers, stamp in records
    ]
    assert [r.offset for r in decoded] == list(range(base, base + len(records)))
    assert {r.append_time for r in decoded} == {append_time}
