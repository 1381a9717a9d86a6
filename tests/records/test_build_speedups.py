"""The C batch encoder (``tidings._speedups.records_build``) against the Python one, byte for byte.

The Python encoder (``BatchBuilder._build_python``) is the reference and the
fallback when the extension is not built; producers use the C one. Any
difference would be a batch the broker rejects, or worse, one it accepts
with other bytes than the fallback writes.
"""

import os

import crc32c as crc32c_package
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import InvalidBatchError
from tidings.records import BatchBuilder, check_batch, iter_records, validate_records
from tidings.records import builder as builder_module

speedups = pytest.importorskip("tidings._speedups", reason="tidings._speedups is not built")

header_lists = st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=8)), max_size=3)
records = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=12),  # key
        st.binary(max_size=300),  # value
        header_lists,
        st.integers(min_value=0, max_value=2**40),  # producer time, ms
    ),
    min_size=1,
    max_size=40,
)
identities = st.tuples(
    st.integers(min_value=-1, max_value=2**62),
    st.integers(min_value=-1, max_value=2**15 - 1),
    st.integers(min_value=-1, max_value=2**31 - 1),
)


def builder_of(items: list[tuple[bytes | None, bytes, list[tuple[str, bytes]], int]]) -> BatchBuilder:
    builder = BatchBuilder()
    for key, value, headers, stamp in items:
        builder.add(value, key=key, headers=headers, timestamp=stamp)
    return builder


@settings(max_examples=300, deadline=None)
@given(items=records, identity=identities)
def test_c_and_python_encoders_give_the_same_bytes(items, identity):
    stamps = [item[3] for item in items]
    builder = builder_of(items)
    producer_id, epoch, sequence = identity
    if max(stamps) - min(stamps) > 2**31 - 1:
        assert speedups.records_build(builder._records, producer_id, epoch, sequence) is None
        with pytest.raises(InvalidBatchError):
            builder.build(producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)
        return
    python = builder._build_python(producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)
    c = speedups.records_build(builder._records, producer_id, epoch, sequence)
    assert c == python
    assert len(c) == builder.size
    header = check_batch(c)
    validate_records(c, header)
    decoded = list(iter_records(c, 0, header))
    assert [(r.key, r.value, r.timestamp) for r in decoded] == [(k, v, t) for k, v, _, t in items]


@given(data=st.binary(max_size=5000))
def test_the_c_crc32c_is_the_packages(data):
    assert speedups.crc32c(data) == crc32c_package.crc32c(data)
    assert speedups.crc32c(memoryview(data)[1:]) == crc32c_package.crc32c(data[1:])


@given(
    values=st.lists(st.binary(max_size=64), min_size=1, max_size=50),
    key=st.none() | st.binary(max_size=8),
    headers=header_lists,
)
def test_add_many_queues_what_add_would(values, key, headers):
    one_by_one, at_once = BatchBuilder(), BatchBuilder()
    for value in values:
        one_by_one.add(value, key=key, headers=headers, timestamp=1_000)
    assert at_once.add_many(values, key=key, headers=headers, timestamp=1_000) == one_by_one.size
    assert len(at_once) == len(one_by_one)
    assert at_once.build() == one_by_one.build()


def test_other_buffers_encode_like_bytes():
    """Values reach the builder as bytes, but a bytearray or memoryview must not change the batch."""
    plain, other = BatchBuilder(), BatchBuilder()
    plain.add(b"value", key=b"key", timestamp=5)
    other._records.append((b"key", memoryview(bytearray(b"value")), b"", 5))  # type: ignore[arg-type]
    other.size = plain.size
    assert other.build() == plain.build()


def test_a_record_that_is_not_a_buffer_is_refused():
    builder = BatchBuilder()
    builder._records.append((None, "text", b"", 5))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        builder.build()


def test_the_builder_uses_the_c_encoder_when_built():
    if os.environ.get("CI") == "true":
        assert builder_module._records_build_c is not None, "tidings._speedups failed to build"
    if builder_module._records_build_c is None:
        pytest.skip("tidings._speedups is not built: the Python encoder is in use")
    assert builder_module._records_build_c is speedups.records_build
