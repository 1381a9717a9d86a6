from tidings.records.batch import Buffer

def records_tile(buffer: Buffer, start: int, end: int, count: int, span: int, /) -> bool: ...
def records_build(
    records: list[tuple[bytes | None, bytes, bytes, int]],
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    /,
) -> bytes | None: ...
def crc32c(buffer: Buffer, /) -> int: ...
