"""Reading fetched record batches (message format v2) in one pass per batch.

kafka-python turns each record of a fetch into a `DefaultRecord` through seven calls of its varint decoder,
reads it back through properties, then builds the `ConsumerRecord` its consumer returns: most of the cost of
reading a topic. `BatchRecords` builds the same `ConsumerRecord`s straight from the batch's bytes, with the
common one- and two-byte varints decoded inline. Everything around the records is kafka-python's own:
fetching, CRC checks, aborted transactions (read_committed), control batches, the position it tracks.

A batch in an older message format, or a consumer with deserializers, keeps kafka-python's own reading.
A batch that cannot be read (CRC mismatch, a malformed record, compression that does not decode) raises
`UnreadableBatch` with its topic, partition and offsets, after the records before it (kafka-python returns
those first and raises at the next poll), with the position at the damaged batch; the partition's records are
drained, so a further poll fetches the batch again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord, Fetcher, IsolationLevel
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import decode_varint

from streamdrift.errors import UnreadableBatch

_PartitionRecords: Any = Fetcher.PartitionRecords


class BatchRecords(_PartitionRecords):  # type: ignore[misc]
    """kafka-python's `Fetcher.PartitionRecords`, with the records of a v2 batch read by `_batch_records`."""

    def _unpack_records(
        self, tp: Any, records: Any, key_deserializer: Any, value_deserializer: Any
    ) -> Iterator[Any]:
        try:
            if key_deserializer is not None or value_deserializer is not None:
                yield from super()._unpack_records(tp, records, key_deserializer, value_deserializer)
                return
            yield from self._unpack_batches(tp, records)
        except Exception as exc:  # any failure to read the bytes: damaged data, whatever raised it
            batch = getattr(self, "_current_batch", None)
            end = None if batch is None else batch.next_offset
            reason = str(exc) if isinstance(exc, CorruptRecordError) else f"{type(exc).__name__}: {exc}"
            # next_fetch_offset: the first offset not yet returned, where the consumer's position stays.
            error = UnreadableBatch(tp.topic, tp.partition, self.next_fetch_offset, end, reason)
            # Drained, so that the next poll fetches the batch again: kafka-python keeps a partition's records
            # whose iteration raised, and its next polls then loop on them without end.
            self.drain()
            raise error from exc

    def _unpack_batches(self, tp: Any, records: Any) -> Iterator[Any]:
        # kafka-python's loop over batches (Fetcher.PartitionRecords._unpack_records), the same steps.
        self._current_batch = None
        batch = records.next_batch()
        last_batch = None
        while batch is not None:
            last_batch = self._current_batch = batch
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(
                    f"Record batch for partition {self.topic_partition} at offset {batch.base_offset} "
                    "failed crc check"
                )
            if batch.magic != 2:
                yield from self._legacy_records(tp, batch)
                batch = records.next_batch()
                continue
            self.leader_epoch = batch.leader_epoch
            if self.isolation_level == IsolationLevel.READ_COMMITTED and batch.has_producer_id():
                self._consume_aborted_transactions_up_to(batch.last_offset)
                producer_id = batch.producer_id
                if self._contains_abort_marker(batch):
                    self.aborted_producer_ids.discard(producer_id)
                elif self._is_batch_aborted(batch):
                    self.next_fetch_offset = batch.next_offset
                    batch = records.next_batch()
                    continue
            if batch.is_control_batch:
                self.next_fetch_offset = batch.next_offset
                batch = records.next_batch()
                continue
            yield from self._batch_records(batch, tp.topic, tp.partition)
            batch = records.next_batch()
        # As kafka-python: the next fetch starts after the last batch, even if compaction emptied its end.
        if last_batch is not None and last_batch.magic == 2:
            self.next_fetch_offset = last_batch.next_offset
        self.drain()

    def _legacy_records(self, tp: Any, batch: Any) -> Iterator[Any]:
        """A message format v0/v1 batch, record by record as kafka-python reads it."""
        for record in batch:
            if self.check_crcs and not record.validate_crc():
                raise CorruptRecordError(
                    f"Record for partition {self.topic_partition} at offset {record.offset} failed crc check"
                )
            key, value, headers = record.key, record.value, record.headers
            self.records_read += 1
            self.bytes_read += record.size_in_bytes
            self.next_fetch_offset = record.offset + 1
            yield ConsumerRecord(
                tp.topic, tp.partition, self.leader_epoch, record.offset, record.timestamp,
                record.timestamp_type, key, value, headers, record.checksum,
                -1 if key is None else len(key), -1 if value is None else len(value), _header_size(headers),
            )  # fmt: skip

    # One flat loop on purpose: a helper call per varint would cost more than the decoding it does.
    def _batch_records(  # noqa: PLR0915
        self, batch: DefaultRecordBatch, topic: str, partition: int
    ) -> Iterator[Any]:
        """Each record of a v2 batch, as the `ConsumerRecord` kafka-python would build, counted as
        kafka-python counts it.

        The record layout (KIP-98): length, attributes, timestamp delta, offset delta, key length, key, value
        length, value, header count, headers; every number a zigzag varint, nearly always one or two bytes.
        """
        batch._maybe_uncompress()
        data = bytes(batch._buffer)  # slices of bytes are the bytes kafka-python's records hold, in one copy
        pos = batch._pos
        base_offset = batch.base_offset
        timestamp_type = batch.timestamp_type
        first_timestamp = batch.first_timestamp
        append_time = batch.max_timestamp if timestamp_type == batch.LOG_APPEND_TIME else None
        leader_epoch = self.leader_epoch
        new_tuple = tuple.__new__
        try:
            for _ in range(batch._num_records):
                # Each varint: one byte (< 0x80), two bytes, or kafka-python's decoder for longer ones.
                b = data[pos]
                if b < 0x80:
                    length, pos = (b >> 1) ^ -(b & 1), pos + 1
                elif data[pos + 1] < 0x80:
                    n = (b & 0x7F) | (data[pos + 1] << 7)
                    length, pos = (n >> 1) ^ -(n & 1), pos + 2
                else:
                    length, pos = decode_varint(data, pos)
                start = pos
                # Attributes, unused in v2: an int8 by the format, read as a varint as kafka-python does.
                if data[pos] < 0x80:
                    pos += 1
                else:
                    _, pos = decode_varint(data, pos)
                b = data[pos]
                if b < 0x80:
                    timestamp_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
                elif data[pos + 1] < 0x80:
                    n = (b & 0x7F) | (data[pos + 1] << 7)
                    timestamp_delta, pos = (n >> 1) ^ -(n & 1), pos + 2
                else:
                    timestamp_delta, pos = decode_varint(data, pos)
                b = data[pos]
                if b < 0x80:
                    offset_delta, pos = (b >> 1) ^ -(b & 1), pos + 1
                elif data[pos + 1] < 0x80:
                    n = (b & 0x7F) | (data[pos + 1] << 7)
                    offset_delta, pos = (n >> 1) ^ -(n & 1), pos + 2
                else:
                    offset_delta, pos = decode_varint(data, pos)
                b = data[pos]
                if b < 0x80:
                    key_size, pos = (b >> 1) ^ -(b & 1), pos + 1
                elif data[pos + 1] < 0x80:
                    n = (b & 0x7F) | (data[pos + 1] << 7)
                    key_size, pos = (n >> 1) ^ -(n & 1), pos + 2
                else:
                    key_size, pos = decode_varint(data, pos)
                key = None
                if key_size >= 0:
                    key = data[pos : pos + key_size]
                    pos += key_size
                b = data[pos]
                if b < 0x80:
                    value_size, pos = (b >> 1) ^ -(b & 1), pos + 1
                elif data[pos + 1] < 0x80:
                    n = (b & 0x7F) | (data[pos + 1] << 7)
                    value_size, pos = (n >> 1) ^ -(n & 1), pos + 2
                else:
                    value_size, pos = decode_varint(data, pos)
                value = None
                if value_size >= 0:
                    value = data[pos : pos + value_size]
                    pos += value_size
                headers: list[tuple[str, bytes | None]] = []
                if data[pos] == 0:
                    pos += 1
                else:
                    pos = _read_headers(data, pos, headers)
                if pos - start != length:
                    raise CorruptRecordError(
                        f"Invalid record size: expected to read {length} bytes in record payload, "
                        f"but instead read {pos - start}"
                    )
                offset = base_offset + offset_delta
                self.records_read += 1
                self.bytes_read += length
                self.next_fetch_offset = offset + 1
                # The namedtuple's constructor is a Python function: building the tuple directly is a frame
                # less per record; so is not calling `_header_size` for a record without headers.
                yield new_tuple(ConsumerRecord, (
                    topic, partition, leader_epoch, offset,
                    first_timestamp + timestamp_delta if append_time is None else append_time,
                    timestamp_type, key, value, headers, None, -1 if key is None else key_size,
                    -1 if value is None else value_size, -1 if not headers else _header_size(headers),
                ))  # fmt: skip
        except (ValueError, IndexError) as err:
            raise CorruptRecordError(f"Found invalid record structure: {err!r}") from err
        if pos != len(data):
            raise CorruptRecordError(f"{len(data) - pos} unconsumed bytes after all records consumed")


def _header_size(headers: list[tuple[str, bytes | None]]) -> int:
    if not headers:
        return -1
    return sum(len(key.encode("utf-8")) + (0 if value is None else len(value)) for key, value in headers)


def _read_headers(data: bytes, pos: int, headers: list[tuple[str, bytes | None]]) -> int:
    count, pos = decode_varint(data, pos)
    if count < 0:
        raise CorruptRecordError(f"Found invalid number of record headers {count}")
    for _ in range(count):
        key_size, pos = decode_varint(data, pos)
        if key_size < 0:
            raise CorruptRecordError(f"Invalid negative header key size {key_size}")
        key = data[pos : pos + key_size].decode("utf-8")
        pos += key_size
        value_size, pos = decode_varint(data, pos)
        value = None
        if value_size >= 0:
            value = data[pos : pos + value_size]
            pos += value_size
        headers.append((key, value))
    return pos


def read_batches_in_one_pass(consumer: Any) -> bool:
    """Make `consumer` (a kafka-python KafkaConsumer) read v2 batches with `BatchRecords`. False, and the
    consumer unchanged, when its fetcher is not the one this module was written against."""
    fetcher: Any = getattr(consumer, "_fetcher", None)
    if type(fetcher) is not Fetcher or getattr(fetcher, "PartitionRecords", None) is not _PartitionRecords:
        return False
    fetcher.PartitionRecords = BatchRecords
    return True
