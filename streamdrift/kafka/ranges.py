"""Reading a stretch of a topic, partition by partition, for offline replays (`replay --topic`).

Bounds are offsets (the same in every partition) or times (each partition's first record at or after it).
`from` is inclusive, `to` exclusive. Reads are read_committed, like the service's, so a replay sees exactly
the records the service saw.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streamdrift.errors import ConfigError, KafkaUnavailable
from streamdrift.kafka.clients import KafkaClients, topic_partition, translated_errors

NO_PROGRESS_S = 60.0


@dataclass(frozen=True, slots=True)
class Bound:
    """An offset, or a time in epoch milliseconds."""

    offset: int | None = None
    time_ms: int | None = None


def read_range(
    clients: KafkaClients, topic: str, start: Bound | None, stop: Bound | None
) -> Iterator[list[Any]]:
    """Batches of records of `topic` in [start, stop), all of partition 0 first, then 1, and so on."""
    consumer = clients.consumer(group_id=None, enable_auto_commit=False, max_poll_records=5000)
    try:
        with translated_errors(f"reading {topic}"):
            partitions = sorted(consumer.partitions_for_topic(topic) or [])
        if not partitions:
            raise ConfigError(f"--topic {topic}: no such topic")
        for partition in partitions:
            yield from _read_partition(consumer, topic_partition(topic, partition), start, stop)
    finally:
        consumer.close()


def _read_partition(consumer: Any, tp: Any, start: Bound | None, stop: Bound | None) -> Iterator[list[Any]]:
    with translated_errors(f"reading {tp.topic}/{tp.partition}"):
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]  # read_committed: the last stable offset
        first = _offset_of(consumer, tp, start, unbounded=consumer.beginning_offsets([tp])[tp], end=end)
        last = min(end, _offset_of(consumer, tp, stop, unbounded=end, end=end))
        if first >= last:
            return
        consumer.seek(tp, first)
    progress_at = time.monotonic()
    while True:
        with translated_errors(f"reading {tp.topic}/{tp.partition}"):
            if consumer.position(tp) >= last:
                return
            records = consumer.poll(timeout_ms=500).get(tp, [])
        if records:
            progress_at = time.monotonic()
            inside = [record for record in records if record.offset < last]
            if inside:
                yield inside
        elif time.monotonic() - progress_at > NO_PROGRESS_S:
            raise KafkaUnavailable(f"reading {tp.topic}/{tp.partition}: no records for {NO_PROGRESS_S:.0f} s")


def _offset_of(consumer: Any, tp: Any, bound: Bound | None, *, unbounded: int, end: int) -> int:
    if bound is None:
        return unbounded
    if bound.offset is not None:
        return bound.offset
    found = consumer.offsets_for_times({tp: bound.time_ms}).get(tp)
    return end if found is None else int(found.offset)  # no record at or after that time: the end


def offset_at(consumer: Any, tp: Any, bound: Bound) -> int:
    """The partition's offset of `bound`: the offset itself, or the first record at or after the time (the
    end when there is none)."""
    with translated_errors(f"finding {tp.topic}/{tp.partition} at {bound}"):
        end = consumer.end_offsets([tp])[tp]
        return _offset_of(consumer, tp, bound, unbounded=end, end=end)
