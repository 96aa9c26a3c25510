"""Repartition mode's input side: input partitions only forward their records, keyed by model_id, to the
internal repartition topic, in timestamp order across partitions (repartition.py); they hold no state."""

from __future__ import annotations

from collections.abc import Sequence

from streamdrift.core.event import EventDecoder
from streamdrift.errors import BadRecord
from streamdrift.ports import GroupConsumer, InRecord, OutRecord, TopicPartition
from streamdrift.service.counters import Counters
from streamdrift.service.records import dead_letter_record, forwarded_record
from streamdrift.service.repartition import TimestampMerge


class Forwarder:
    def __init__(
        self,
        *,
        repartition_topic: str,
        dead_letter_topic: str,
        decoder: EventDecoder,
        counters: Counters,
        wait_s: float,
        max_buffered: int,
    ) -> None:
        self.topic = repartition_topic
        self.dead_letter_topic = dead_letter_topic
        self.decoder = decoder
        self.counters = counters
        self.merge: TimestampMerge[TopicPartition, InRecord] = TimestampMerge(wait_s, max_buffered)
        self.paused: set[TopicPartition] = set()  # paused while their buffer is full

    def forwards(self, tp: TopicPartition) -> bool:
        """An input partition (not the repartition topic): it only forwards."""
        return tp.topic != self.topic

    def add(self, tp: TopicPartition, records: Sequence[InRecord]) -> None:
        self.merge.add(tp, records)

    def restart(self, tp: TopicPartition) -> None:
        """Restored: take part in the merge again, with an empty buffer (read again from the committed
        offset)."""
        self.drop(tp)
        self.merge.assign([tp])

    def drop(self, tp: TopicPartition) -> None:
        self.merge.drop(tp)
        self.paused.discard(tp)

    def release(
        self, consumer: GroupConsumer, now: float
    ) -> tuple[list[OutRecord], dict[TopicPartition, int]]:
        """The records the merge releases, as records to write, and the input offsets they complete; pauses
        the partitions that buffer too much, resumes those that drained."""
        out: list[OutRecord] = []
        reached: dict[TopicPartition, int] = {}
        for record in self.merge.drain(consumer.read_to_end, now):
            headers = list(record.headers or [])
            try:
                event = self.decoder.decode(record.key, record.value)
            except BadRecord as error:
                self.counters.dead_letters[error.kind] += 1
                out.append(
                    dead_letter_record(
                        self.dead_letter_topic,
                        error,
                        key=record.key,
                        value=record.value,
                        headers=headers,
                        source_topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                )
            else:
                out.append(
                    forwarded_record(
                        self.topic,
                        event.model_id,
                        value=record.value,
                        headers=headers,
                        timestamp_ms=record.timestamp,
                        source_topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                )
                self.counters.totals["forwarded"] += 1
            reached[TopicPartition(record.topic, record.partition)] = record.offset + 1
        full = set(self.merge.full())
        if full - self.paused:
            consumer.pause(full - self.paused)
        if self.paused - full:
            consumer.resume(self.paused - full)
        self.paused = full
        return out, reached
