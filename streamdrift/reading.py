"""Reading topics outside the group: a stretch of a topic for offline replays (`replay --topic`), and
following a topic from its beginning or end (`alerts tail`, the demo). Written against the ports' `Reader`.

Bounds are offsets (the same in every partition) or times (each partition's first record at or after it).
`from` is inclusive, `to` exclusive. Reads are read_committed, like the service's, so a replay sees exactly
the records the service saw.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from streamdrift.errors import ConfigError, KafkaUnavailable
from streamdrift.ports import Bound, InRecord, Reader, TopicPartition

NO_PROGRESS_S = 60.0


def read_range(
    reader: Reader, topic: str, start: Bound | None, stop: Bound | None
) -> Iterator[Sequence[InRecord]]:
    """Batches of records of `topic` in [start, stop), all of partition 0 first, then 1, and so on."""
    try:
        partitions = reader.partitions_of(topic)
        if not partitions:
            raise ConfigError(f"--topic {topic}: no such topic")
        for partition in partitions:
            yield from _read_partition(reader, TopicPartition(topic, partition), start, stop)
    finally:
        reader.close()


def _read_partition(
    reader: Reader, tp: TopicPartition, start: Bound | None, stop: Bound | None
) -> Iterator[Sequence[InRecord]]:
    reader.assign([tp])
    end = reader.end_offsets([tp])[tp]  # read_committed: the last stable offset
    first = reader.beginning_offsets([tp])[tp] if start is None else reader.offset_at(tp, start)
    last = end if stop is None else min(end, reader.offset_at(tp, stop))
    if first >= last:
        return
    reader.seek(tp, first)
    progress_at = time.monotonic()
    while reader.position(tp) < last:
        records = reader.poll(0.5).get(tp, [])
        if records:
            progress_at = time.monotonic()
            inside = [record for record in records if record.offset < last]
            if inside:
                yield inside
        elif time.monotonic() - progress_at > NO_PROGRESS_S:
            raise KafkaUnavailable(f"reading {tp}: no records for {NO_PROGRESS_S:.0f} s")


def follow(reader: Reader, topic: str, *, from_beginning: bool, wait_s: float = 0.0) -> list[TopicPartition]:
    """Assign every partition of `topic`, positioned at its beginning or its end; returns them. Waits up to
    `wait_s` for the topic to exist (the service creates its topics when it starts)."""
    deadline = time.monotonic() + wait_s
    while not (numbers := reader.partitions_of(topic)) and time.monotonic() < deadline:
        time.sleep(0.2)
    partitions = [TopicPartition(topic, p) for p in numbers]
    if not partitions:
        raise ConfigError(f"topic {topic} does not exist")
    reader.assign(partitions)
    starts = reader.beginning_offsets(partitions) if from_beginning else reader.end_offsets(partitions)
    for tp, offset in starts.items():
        reader.seek(tp, offset)
    return partitions


def read_to_end(reader: Reader, partitions: Sequence[TopicPartition]) -> bool:
    """Whether the reader's position has reached the end (last stable offset) of each partition."""
    ends = reader.end_offsets(partitions)
    return all(reader.position(tp) >= end for tp, end in ends.items())
