"""``check_batch``, ``validate_records`` and ``iter_batches``: every way a batch can be refused.

Malformed batches are built by editing a good one and, where the point is to get
past the checksums, recomputing both CRCs with the layout of ``records/layout.py``.
"""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import CorruptBatchError, InvalidBatchError
from tidings.records import (
    HEADER_SIZE,
    BatchBuilder,
    build_batch,
    check_batch,
    crc32c,
    iter_batches,
    iter_records,
    read_header,
    stamped_header,
    validate_records,
)
from tidings.records import batch as batch_module
from tidings.records import layout as L

# Byte offsets of header fields (layout.py's table).
LENGTH_AT = 16
MAGIC_AT = 28
ATTRIBUTES_AT = 29
RECORD_COUNT_AT = 30
FIRST_TIMESTAMP_AT = 34
MAX_TIMESTAMP_AT = 42


def good_batch() -> bytes:
    builder = BatchBuilder()
    builder.add(b"value-0", key=b"key-0", headers={"h": b"1"}, timestamp=1_000)
    builder.add(b"value-1", key=None, timestamp=1_010)
    builder.add(b"value-2", key=b"", timestamp=1_020)
    return builder.build()


def with_fixed_crcs(buf: bytearray) -> bytes:
    """Recompute ``crc`` over [28, length) and then ``header_crc`` over [0, 24)."""
    (length,) = L.struct.unpack_from("<I", buf, LENGTH_AT)
    L.struct.pack_into("<I", buf, 20, crc32c(bytes(buf[L.CRC_START : length])))
    L.HEADER_CRC.pack_into(buf, L.HEADER_CRC_OFFSET, crc32c(bytes(buf[: L.HEADER_CRC_OFFSET])))
    return bytes(buf)


def record_positions(batch: bytes) -> list[int]:
    positions, cursor = [], HEADER_SIZE
    for _ in range(read_header(batch).record_count):
        positions.append(cursor)
        cursor += L.RECORD_PREFIX.unpack_from(batch, cursor)[0]
    return positions


def edit_record_prefix(batch: bytes, index: int, **fields: int) -> bytes:
    """Change fields of record ``index``'s 24-byte prefix and fix both CRCs."""
    names = ("length", "offset_delta", "timestamp_delta", "key_length", "value_length", "headers_length")
    buf = bytearray(batch)
    at = record_positions(batch)[index]
    values = dict(zip(names, L.RECORD_PREFIX.unpack_from(buf, at), strict=True))
    values.update(fields)
    L.RECORD_PREFIX.pack_into(buf, at, *(values[name] for name in names))
    return with_fixed_crcs(buf)


def edit_header(batch: bytes, fmt: str, at: int, value: int, *, fix: bool = True) -> bytes:
    buf = bytearray(batch)
    L.struct.pack_into(fmt, buf, at, value)
    return with_fixed_crcs(buf) if fix else bytes(buf)


# -- check_batch --------------------------------------------------------------------


def test_good_batch_passes_and_returns_its_header():
    batch = good_batch()
    header = check_batch(batch)
    assert header.length == len(batch)
    assert header.record_count == 3
    assert header.magic == L.MAGIC
    assert header.compression == L.COMPRESSION_NONE
    assert header.last_offset == 2 and header.next_offset == 3


def test_fixing_crcs_on_an_unchanged_batch_is_a_no_op():
    batch = good_batch()
    assert with_fixed_crcs(bytearray(batch)) == batch


def test_truncated_header():
    with pytest.raises(InvalidBatchError, match="truncated batch header at position 0: 63 bytes") as info:
        check_batch(good_batch()[:63])
    assert not isinstance(info.value, CorruptBatchError)
    with pytest.raises(InvalidBatchError, match="truncated batch header"):
        check_batch(b"")


def test_truncated_batch():
    batch = good_batch()
    with pytest.raises(
        InvalidBatchError, match=f"truncated batch at position 0: length {len(batch)}"
    ) as info:
        check_batch(batch[:-1])
    assert not isinstance(info.value, CorruptBatchError)


def test_available_bounds_the_batch():
    batch = good_batch()
    check_batch(batch + b"more bytes", available=len(batch))
    with pytest.raises(InvalidBatchError, match="truncated batch"):
        check_batch(batch, available=len(batch) - 1)


def test_available_past_the_end_of_the_buffer_is_still_a_truncation():
    # A short buffer is a cut batch (a torn write), not a damaged one, whatever ``available`` says.
    batch = good_batch()
    with pytest.raises(InvalidBatchError, match="truncated batch") as info:
        check_batch(batch[:-5], available=len(batch))
    assert not isinstance(info.value, CorruptBatchError)


def test_bad_magic():
    batch = edit_header(good_batch(), "<B", MAGIC_AT, 2, fix=False)
    with pytest.raises(InvalidBatchError, match="unknown batch format version 2") as info:
        check_batch(batch)
    assert not isinstance(info.value, CorruptBatchError)


@pytest.mark.parametrize("at", [0, 8, 16, 20, 23, 24, 27])
def test_header_crc_catches_any_flipped_bit_in_the_first_28_bytes(at):
    buf = bytearray(good_batch())
    buf[at] ^= 0x10
    with pytest.raises(CorruptBatchError, match="header checksum mismatch at position 0"):
        check_batch(bytes(buf))


@pytest.mark.parametrize("at", [34, 55, HEADER_SIZE, HEADER_SIZE + 30, -1])
def test_body_crc_catches_a_flipped_bit_after_byte_28(at):
    buf = bytearray(good_batch())
    buf[at] ^= 0x01
    with pytest.raises(CorruptBatchError, match="batch checksum mismatch at position 0"):
        check_batch(bytes(buf))


def test_length_too_small():
    batch = edit_header(good_batch(), "<I", LENGTH_AT, HEADER_SIZE)
    with pytest.raises(InvalidBatchError, match=f"batch length {HEADER_SIZE} at position 0 too small"):
        check_batch(batch)


def test_zero_records():
    batch = edit_header(good_batch(), "<I", RECORD_COUNT_AT, 0)
    with pytest.raises(InvalidBatchError, match="holds no records"):
        check_batch(batch)


@pytest.mark.parametrize("bits", [0x08, 0x80, 0xF8])
def test_reserved_attribute_bits(bits):
    batch = edit_header(good_batch(), "<B", ATTRIBUTES_AT, bits)
    with pytest.raises(InvalidBatchError, match="reserved attribute bits"):
        check_batch(batch)


@pytest.mark.parametrize("codec", [1, 2, 7])
def test_unsupported_compression(codec):
    batch = edit_header(good_batch(), "<B", ATTRIBUTES_AT, codec)
    with pytest.raises(InvalidBatchError, match=f"unsupported compression codec {codec}"):
        check_batch(batch)


def test_max_timestamp_before_first_timestamp():
    batch = edit_header(good_batch(), "<q", MAX_TIMESTAMP_AT, 999)
    with pytest.raises(InvalidBatchError, match="max_timestamp 999 < first_timestamp 1000"):
        check_batch(batch)


def test_errors_name_the_position_of_a_batch_inside_a_buffer():
    batch = good_batch()
    buf = bytearray(b"\x00" * 100 + batch)
    buf[100 + HEADER_SIZE + 5] ^= 0xFF
    with pytest.raises(CorruptBatchError, match="at position 100"):
        check_batch(bytes(buf), 100)


# -- validate_records ----------------------------------------------------------------


def test_validate_records_accepts_a_good_batch():
    batch = good_batch()
    validate_records(batch, check_batch(batch))


def check_passes_then_validate_fails(batch: bytes, match: str) -> None:
    header = check_batch(batch)  # the CRCs were recomputed: only the walk can tell
    with pytest.raises(InvalidBatchError, match=match):
        validate_records(batch, header)


def test_wrong_offset_delta():
    check_passes_then_validate_fails(
        edit_record_prefix(good_batch(), 1, offset_delta=2),
        "record 1 of batch at position 0 has offset delta 2",
    )


def test_lengths_inconsistent():
    batch = good_batch()
    check_passes_then_validate_fails(
        edit_record_prefix(batch, 0, value_length=6), "record 0 .* has inconsistent lengths"
    )
    # A key length below -1 is never valid, even with a matching record length.
    check_passes_then_validate_fails(edit_record_prefix(batch, 1, key_length=-2), "inconsistent lengths")
    # A record that claims to run past the end of its batch.
    check_passes_then_validate_fails(
        edit_record_prefix(batch, 2, length=10_000, value_length=10_000 - 24),
        "record 2 .* inconsistent lengths",
    )


def test_trailing_bytes_after_the_records():
    buf = bytearray(good_batch() + b"junk")
    L.struct.pack_into("<I", buf, LENGTH_AT, len(buf))
    check_passes_then_validate_fails(with_fixed_crcs(buf), "has 4 bytes after its 3 records")


def test_records_fewer_than_the_count():
    batch = edit_header(good_batch(), "<I", RECORD_COUNT_AT, 4)
    check_passes_then_validate_fails(batch, "record 3 of batch at position 0 is truncated")


@pytest.mark.parametrize("delta", [21, -1, 2**31 - 1])
def test_timestamp_delta_out_of_range(delta):
    # the batch spans 1000..1020, so deltas must be in 0..20
    check_passes_then_validate_fails(
        edit_record_prefix(good_batch(), 2, timestamp_delta=delta), f"timestamp delta {delta} outside"
    )


def test_validate_records_at_a_position():
    batch = edit_record_prefix(good_batch(), 1, offset_delta=7)
    buf = b"\x00" * 10 + batch
    header = check_batch(buf, 10)
    with pytest.raises(InvalidBatchError, match="at position 10 has offset delta 7"):
        validate_records(buf, header, 10)


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=2),
    field=st.sampled_from(
        ["length", "offset_delta", "timestamp_delta", "key_length", "value_length", "headers_length"]
    ),
    value=st.integers(min_value=-3, max_value=40) | st.sampled_from([2**31 - 1, -(2**31)]),
)
def test_the_fast_walk_agrees_with_the_slow_one(index, field, value):
    """``validate_records`` trusts ``_records_tile`` to say yes only when the full walk would."""
    if field in ("length", "offset_delta", "value_length", "headers_length"):
        value %= 2**32  # unsigned fields
    batch = edit_record_prefix(good_batch(), index, **{field: value})
    header = check_batch(batch)
    try:
        batch_module._walk_records(batch, header, 0)
    except InvalidBatchError:
        walk_accepts = False
    else:
        walk_accepts = True
    assert batch_module._records_tile(batch, header, 0) == walk_accepts
    if batch_module._records_tile_c is not None:
        span = header.max_timestamp - header.first_timestamp
        c_walk = batch_module._records_tile_c(batch, 64, header.length, header.record_count, span)
        assert c_walk == walk_accepts
        # and at an offset inside a larger buffer, the way the broker sees a produce frame
        framed = b"\x00" * 7 + batch + b"\xff" * 5
        assert batch_module._records_tile_c(framed, 71, 7 + header.length, header.record_count, span) == (
            walk_accepts
        )


def test_the_c_walk_rejects_a_batch_that_claims_more_than_the_buffer():
    if batch_module._records_tile_c is None:
        pytest.skip("tidings._speedups is not built: the Python walk is in use")
    batch = good_batch()
    header = check_batch(batch)
    span = header.max_timestamp - header.first_timestamp
    assert batch_module._records_tile_c(batch, 64, len(batch) + 1, header.record_count, span) is False
    assert batch_module._records_tile_c(batch, 64, len(batch), header.record_count + 1, span) is False


def test_skip_records_lands_on_each_record_of_a_good_batch():
    batch = good_batch()
    header = check_batch(batch)
    positions = record_positions(batch)
    for index, at in enumerate(positions):
        assert batch_module.skip_records(batch, HEADER_SIZE, header.length, index) == at
        assert batch_module._skip_records(batch, HEADER_SIZE, header.length, index) == at
    assert batch_module.skip_records(batch, HEADER_SIZE, header.length, 3) == header.length
    with pytest.raises(InvalidBatchError, match="run past their batch"):
        batch_module.skip_records(batch, HEADER_SIZE, header.length, 4)


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=2),
    length=st.integers(min_value=0, max_value=80) | st.sampled_from([2**31 - 1, 2**32 - 1]),
    start=st.integers(min_value=-1, max_value=90),
    end_cut=st.integers(min_value=-2, max_value=10),
    count=st.integers(min_value=0, max_value=5),
)
def test_the_c_skip_agrees_with_the_python_one(index, length, start, end_cut, count):
    """Any record length, start, end and count: both walks land on the same byte, or both refuse (-1)."""
    if batch_module._records_skip_c is None:
        pytest.skip("tidings._speedups is not built: the Python walk is in use")
    batch = edit_record_prefix(good_batch(), index, length=length)
    end = len(batch) - end_cut
    assert batch_module._records_skip_c(batch, start, end, count) == batch_module._skip_records(
        batch, start, end, count
    )


def test_the_c_extension_is_built_under_ci():
    """CI measures and ships the fast path; a silently missing extension would hide a slowdown."""
    if os.environ.get("CI") != "true":
        pytest.skip("only required under CI=true")
    assert batch_module.SPEEDUPS, "tidings._speedups failed to build (see pip's output)"


# -- malformed record headers ----------------------------------------------------------


def batch_with_headers_section(section: bytes) -> bytes:
    """One record whose headers part is exactly ``section`` (the prefixes tile; both CRCs match)."""
    builder = BatchBuilder()
    builder.add(b"v" + section, timestamp=1)
    batch = builder.build()
    return edit_record_prefix(batch, 0, value_length=1, headers_length=len(section))


def test_well_formed_headers_section_decodes():
    section = b"\x01\x00" + b"\x02\x00ab" + b"\x02\x00\x00\x00cd"
    (record,) = iter_records(batch_with_headers_section(section))
    assert (record.value, record.headers) == (b"v", (("ab", b"cd"),))


@pytest.mark.parametrize(
    ("section", "match"),
    [
        (b"\x01", "malformed record headers"),  # not even a count
        (b"\x02\x00" + b"\x02\x00ab" + b"\x02\x00\x00\x00cd", "malformed record headers"),  # count too big
        (b"\x00\x00" + b"\x02\x00ab" + b"\x02\x00\x00\x00cd", "10 stray bytes"),  # count too small
        (b"\x01\x00" + b"\xff\xffab" + b"\x02\x00\x00\x00cd", "malformed record headers"),  # name too long
        (b"\x01\x00" + b"\x02\x00ab" + b"\x09\x00\x00\x00cd", "runs past the headers section"),
        (b"\x01\x00" + b"\x02\x00\xff\xfe" + b"\x02\x00\x00\x00cd", "malformed record headers"),  # not UTF-8
    ],
)
def test_malformed_headers_section_is_an_invalid_batch(section, match):
    # validate_records walks prefixes only, so such a batch is accepted; decoding it must fail cleanly
    batch = batch_with_headers_section(section)
    validate_records(batch, check_batch(batch))
    with pytest.raises(InvalidBatchError, match=match):
        list(iter_records(batch))


# -- iter_batches ---------------------------------------------------------------------


def stamped(batch: bytes, base: int, append_time: int = 0) -> bytes:
    return stamped_header(batch, base, append_time) + batch[HEADER_SIZE:]


def test_iter_batches_over_a_concatenation():
    first = stamped(build_batch([b"a"], timestamp=1), 0)
    second = stamped(build_batch([b"b", b"c"], timestamp=2), 1)
    third = stamped(good_batch(), 3)
    buf = first + second + third
    found = [(position, header.base_offset, header.record_count) for position, header in iter_batches(buf)]
    assert found == [(0, 0, 1), (len(first), 1, 2), (len(first) + len(second), 3, 3)]
    values = [r.value for position, header in iter_batches(buf) for r in iter_records(buf, position, header)]
    assert values == [b"a", b"b", b"c", b"value-0", b"value-1", b"value-2"]


def test_iter_batches_of_nothing():
    assert list(iter_batches(b"")) == []


def test_iter_batches_stops_at_a_damaged_or_partial_batch():
    first = stamped(build_batch([b"a"], timestamp=1), 0)
    second = stamped(build_batch([b"b"], timestamp=1), 1)
    batches = iter_batches(first + second[:-3])
    assert next(batches)[0] == 0
    with pytest.raises(InvalidBatchError, match=f"truncated batch at position {len(first)}"):
        next(batches)
    damaged = bytearray(first + second)
    damaged[len(first) + HEADER_SIZE + 2] ^= 1
    with pytest.raises(CorruptBatchError, match=f"position {len(first)}"):
        list(iter_batches(bytes(damaged)))
