"""The byte layout of a record batch, the unit Tidings stores, sends and serves.

A producer encodes its records once into a batch; the broker checks it,
stamps the base offset and the append time into the header, writes the bytes
as they are and serves the same bytes to consumers. Nobody re-encodes.

All integers are little-endian. A batch is a 64-byte header and its records::

    off  size  field            meaning
      0     8  base_offset      int64   offset of the first record; stamped by the log (producers send 0)
      8     8  append_time      int64   ms since the Unix epoch when the log appended it; stamped likewise
     16     4  length           uint32  bytes of the whole batch, header included
     20     4  crc              uint32  CRC32C (Castagnoli) of bytes [28, length): set by the producer
     24     4  header_crc       uint32  CRC32C of bytes [0, 24): recomputed when the log stamps
     28     1  magic            uint8   format version, 1
     29     1  attributes       uint8   bits 0-2 compression codec (0 = none); bits 3-7 zero
     30     4  record_count     uint32  >= 1
     34     8  first_timestamp  int64   producer's time (ms) of the first record
     42     8  max_timestamp    int64   largest producer time (ms) in the batch
     50     8  producer_id      int64   -1 unless the producer is idempotent
     58     2  producer_epoch   int16   -1 likewise
     60     4  base_sequence    int32   -1 likewise; record i carries sequence base_sequence + i
     64        records

Why two checksums: ``crc`` covers everything the producer wrote, so stamping
an offset and a time does not touch it and the broker never reads the
records; ``header_crc`` covers the 24 stamped bytes, so a flipped bit in an
offset, a time, the length or ``crc`` itself is caught too, at the cost of a
24-byte CRC per stamp.

A record is a 24-byte prefix and three variable parts::

    off  size  field            meaning
      0     4  length           uint32  bytes of the whole record, this field included
      4     4  offset_delta     uint32  position in the batch: record i has delta i
      8     4  timestamp_delta  int32   ms after first_timestamp (a batch spans < 24 days)
     12     4  key_length       int32   -1 when the record has no key
     16     4  value_length     uint32
     20     4  headers_length   uint32  0 when the record has no headers
     24        key, value, headers (in that order)

Fixed-width fields instead of Kafka's varints: one ``struct`` call packs or
unpacks a prefix, which in Python costs far less than a varint loop; the
price is about 12 bytes per record.

The headers part is ``uint16 count`` then, per header, ``uint16 name_length``,
the UTF-8 name, ``uint32 value_length`` and the value bytes.
"""

from __future__ import annotations

import struct
from typing import Final

MAGIC: Final = 1

HEADER = struct.Struct("<qqIII BBIqqqhi")
HEADER_SIZE: Final = HEADER.size  # 64

STAMPED = struct.Struct("<qqII")  # base_offset, append_time, length, crc: the header_crc's input
HEADER_CRC = struct.Struct("<I")
HEADER_CRC_OFFSET: Final = 24
CRC_START: Final = 28  # crc covers [CRC_START, length)
MAGIC_OFFSET: Final = 28

RECORD_PREFIX = struct.Struct("<IIiiII")
RECORD_PREFIX_SIZE: Final = RECORD_PREFIX.size  # 24

HEADER_COUNT = struct.Struct("<H")
HEADER_NAME_LENGTH = struct.Struct("<H")
HEADER_VALUE_LENGTH = struct.Struct("<I")

NO_PRODUCER: Final = -1
NO_KEY: Final = -1

COMPRESSION_MASK: Final = 0b0000_0111
COMPRESSION_NONE: Final = 0

MAX_BATCH_SIZE: Final = 2**31 - 1
MAX_TIMESTAMP_DELTA: Final = 2**31 - 1

assert HEADER_SIZE == 64
assert RECORD_PREFIX_SIZE == 24
