"""`BatchRecords` returns exactly the `ConsumerRecord`s kafka-python's own reading returns, from batches built
by kafka-python's own builder; and fails where it fails."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import Fetcher, IsolationLevel
from kafka.errors import CorruptRecordError
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from kafka.structs import TopicPartition

from streamdrift.errors import UnreadableBatch
from streamdrift.kafka.batches import BatchRecords

TP = TopicPartition("events", 3)
GZIP = 1
CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}  # the batch attribute's compression codes (KIP-98)

Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def batches(groups: list[list[Record]], *, compression: int = 0, offset: int = 0, magic: int = 2) -> bytes:
    """Record batches (format v2 unless told) as a fetch returns them, one per group."""
    data = b""
    for group in groups:
        builder = MemoryRecordsBuilder(magic, compression, batch_size=16 * 1024 * 1024, offset=offset)
        for timestamp, key, value, headers in group:
            assert builder.append(timestamp, key, value, headers) is not None
        builder.close()
        data += builder.buffer()
        offset += len(group)
    return data


def read(reader: Any, data: bytes, *, fetch_offset: int = 0, take: int | None = None) -> list[Any]:
    part = reader(fetch_offset, TP, MemoryRecords(data), isolation_level=IsolationLevel.READ_COMMITTED)
    records: list[Any] = []
    while part:
        taken = part.take(take)
        if not taken:
            break
        records += taken
    return records


def assert_same(data: bytes, **options: Any) -> list[Any]:
    theirs = read(Fetcher.PartitionRecords, data, **options)
    ours = read(BatchRecords, data, **options)
    assert ours == theirs
    assert [type(field) for record in ours for field in record] == [
        type(field) for record in theirs for field in record
    ]
    return ours


T0 = 1_780_000_000_000


def test_every_field_of_every_kind_of_record() -> None:
    records: list[Record] = [
        (T0, b"model-1", b'{"features": {"x": 1.5}}', []),
        (T0 + 1, None, b"no key", []),
        (T0 + 2, b"tombstone", None, []),
        (T0 + 3, None, None, []),
        (T0 + 70, b"k", b"", [("trace", b"abc"), ("empty", None), ("clé", b"\xff")]),
        (T0 + 9_000_000, b"k" * 300, b"v" * 20_000, [("h" * 200, b"x" * 70_000)]),  # 3-byte varints
        (T0 - 5, b"earlier", b"a timestamp before the batch's first", []),
    ]
    got = assert_same(batches([records, records[:2]]))
    assert [r.offset for r in got] == list(range(9))
    assert got[5].serialized_value_size == 20_000 and got[5].serialized_header_size == 70_200
    assert got[3].serialized_key_size == got[3].serialized_value_size == got[3].serialized_header_size == -1


@pytest.mark.parametrize("magic", [0, 1])
def test_batches_in_older_message_formats_keep_kafka_pythons_reading(magic: int) -> None:
    records: list[Record] = [(T0 + i, b"k%d" % i, None if i == 3 else b"v%d" % i, []) for i in range(10)]
    assert len(assert_same(batches([records[:4], records[4:]], magic=magic))) == 10


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_compressed_batches(codec: str) -> None:
    """Every codec a producer may use: the package's dependencies bring the libraries kafka-python needs."""
    records: list[Record] = [(T0 + i, b"m%d" % (i % 7), b"value %d" % i, []) for i in range(3000)]
    data = batches([records[:1000], records[1000:]], compression=CODECS[codec])
    assert data[22] & 0x07 == CODECS[codec]  # the low byte of the first batch's attributes names the codec
    assert len(assert_same(data)) == 3000


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_damaged_compressed_batch_is_unreadable_with_its_coordinates(codec: str) -> None:
    """Compressed bytes damaged past the CRC check (checks off, as a broker bug would get past them): each
    codec library raises its own error; the reader turns every one into `UnreadableBatch` naming the
    partition and the batch's offsets, after returning the records of the batch before it."""
    records: list[Record] = [(T0 + i, b"m", b"value %d" % i, []) for i in range(200)]
    data = bytearray(batches([records[:100], records[100:]], compression=CODECS[codec], offset=500))
    second = len(batches([records[:100]], compression=CODECS[codec], offset=500))
    for at in range(second + 61, len(data), 3):  # every third byte of the second batch's compressed records
        data[at] ^= 0x5A
    part = BatchRecords(0, TP, MemoryRecords(bytes(data)), check_crcs=False)
    first = part.take(100)
    assert [r.offset for r in first] == list(range(500, 600))
    with pytest.raises(UnreadableBatch) as raised:
        part.take()
    error = raised.value
    assert (error.topic, error.partition, error.offset, error.end) == ("events", 3, 600, 700)


def test_a_batch_failing_its_crc_is_unreadable_with_its_coordinates() -> None:
    records: list[Record] = [(T0 + i, b"m", b"value %d" % i, []) for i in range(10)]
    data = bytearray(batches([records], offset=42))
    data[-3] ^= 0xFF
    part = BatchRecords(42, TP, MemoryRecords(bytes(data)))
    with pytest.raises(UnreadableBatch, match="failed crc check") as raised:
        part.take()
    assert (raised.value.offset, raised.value.end) == (42, 52)
    # Drained: kafka-python's fetcher then fetches the batch again, instead of looping on what it holds.
    assert not part
    theirs = Fetcher.PartitionRecords(42, TP, MemoryRecords(bytes(data)))
    with pytest.raises(CorruptRecordError):
        theirs.take()
    assert theirs, "kafka-python's own reading keeps the partition's records; its fetcher loops on them"


def test_a_fetch_from_the_middle_of_a_batch_and_polls_of_a_few_records() -> None:
    records: list[Record] = [(T0 + i, b"k", b"v%d" % i, []) for i in range(50)]
    got = assert_same(batches([records[:20], records[20:]], offset=100), fetch_offset=113, take=7)
    assert got[0].offset == 113 and got[-1].offset == 149


def outcome(reader: Any, data: bytes) -> list[Any] | str:
    part = reader(0, TP, MemoryRecords(data), check_crcs=False)
    try:
        return part.take()  # type: ignore[no-any-return]
    except (CorruptRecordError, UnreadableBatch):
        return "corrupt"


def test_a_damaged_record_is_corrupt_for_both_or_for_neither() -> None:
    """Every byte of the records' part of a batch changed in turn (CRC checks off, as a broker bug would get
    past them): whatever kafka-python makes of it, records or a `CorruptRecordError`, so does BatchRecords."""
    data = batches([[(T0, b"key", b"v" * 150, [("h", b"x")]), (T0 + 300, None, b"second", [])]])
    records_start = 61  # the v2 batch header
    corrupt = 0
    for at in range(records_start, len(data)):
        for byte in (0x00, 0x7F, 0x80, 0xFF):
            damaged = data[:at] + bytes([byte]) + data[at + 1 :]
            expected = outcome(Fetcher.PartitionRecords, damaged)
            assert outcome(BatchRecords, damaged) == expected, (at, byte)
            corrupt += expected == "corrupt"
    assert corrupt > 20


values = st.one_of(st.none(), st.binary(max_size=300))
headers = st.lists(st.tuples(st.text(max_size=20), st.one_of(st.none(), st.binary(max_size=40))), max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 10**10), values, values, headers), min_size=1, max_size=40),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([0, GZIP]),
)
def test_property_any_records_read_as_kafka_python_reads_them(
    groups: list[list[Record]], compression: int
) -> None:
    assert_same(batches(groups, compression=compression))
