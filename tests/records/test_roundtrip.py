from tidings.records import BatchBuilder, check_batch, iter_records, stamped_header, validate_records


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
