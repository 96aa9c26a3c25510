"""The records streamdrift writes: alerts, dead letters and repartitioned events. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from streamdrift.core.alert import ALERT_SCHEMA, SCHEMA_HEADER, DriftAlert, RecordSource
from streamdrift.errors import BadRecord
from streamdrift.ports import Headers, InRecord, OutRecord

# Dead-letter headers (public contract, documented in the README).
ERROR_KIND: Final = "streamdrift.error.kind"
ERROR_MESSAGE: Final = "streamdrift.error.message"
SOURCE_TOPIC: Final = "streamdrift.source.topic"
SOURCE_PARTITION: Final = "streamdrift.source.partition"
SOURCE_OFFSET: Final = "streamdrift.source.offset"
ORIGINAL_SIZE: Final = "streamdrift.original.size"

# Values above this are written truncated so they fit the broker's default 1 MiB message limit with headers.
DEAD_LETTER_MAX_VALUE_BYTES: Final = 900 * 1024


def alert_record(topic: str, alert: DriftAlert) -> OutRecord:
    return OutRecord(
        topic=topic,
        key=alert.model_id.encode(),
        value=alert.to_json(),
        headers=[(SCHEMA_HEADER, ALERT_SCHEMA.encode())],
    )


def dead_letter_record(
    topic: str,
    error: BadRecord,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    source_topic: str,
    partition: int,
    offset: int,
) -> OutRecord:
    """The original key, value and headers, plus headers saying what was wrong and where it came from."""
    extra: Headers = [
        (ERROR_KIND, error.kind.encode()),
        (ERROR_MESSAGE, error.message.encode()[:1024].decode(errors="ignore").encode()),  # whole characters
        (SOURCE_TOPIC, source_topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]
    if value is not None and len(value) > DEAD_LETTER_MAX_VALUE_BYTES:
        extra.append((ORIGINAL_SIZE, str(len(value)).encode()))
        value = value[:DEAD_LETTER_MAX_VALUE_BYTES]
    return OutRecord(topic=topic, key=key, value=value, headers=[*headers, *extra])


def forwarded_record(
    topic: str,
    model_id: str,
    *,
    value: bytes | None,
    headers: Headers,
    source_topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
) -> OutRecord:
    """An input record re-keyed by model_id for the repartition topic: the same value, headers and
    timestamp, plus headers naming where it came from (alerts point at the original record)."""
    extra: Headers = [
        (SOURCE_TOPIC, source_topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]
    kept = [(name, data) for name, data in headers if name not in _SOURCE_HEADERS]
    return OutRecord(
        topic=topic, key=model_id.encode(), value=value, headers=[*kept, *extra], timestamp_ms=timestamp_ms
    )


def forwarded_source(headers: Sequence[tuple[str, bytes]]) -> tuple[str, int, int] | None:
    """The original (topic, partition, offset) of a repartitioned record; None when a header is missing."""
    found = {name: data for name, data in headers if name in _SOURCE_HEADERS}
    try:
        return (
            found[SOURCE_TOPIC].decode(),
            int(found[SOURCE_PARTITION]),
            int(found[SOURCE_OFFSET]),
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


_SOURCE_HEADERS: Final = frozenset({SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET})


def record_source(record: InRecord, forwarded: bool) -> RecordSource:
    """Where an event came from: the record itself, or for a record of the repartition topic the input
    record it was forwarded from (its headers)."""
    if forwarded:
        topic, number, offset = forwarded_source(record.headers or []) or (
            record.topic, record.partition, record.offset
        )  # fmt: skip
        return RecordSource(offset, topic, number, record.timestamp)
    return RecordSource(record.offset, record.topic, record.partition, record.timestamp)
