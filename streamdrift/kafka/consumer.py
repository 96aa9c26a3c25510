"""kafka-python's KafkaConsumer behind the ports' `GroupConsumer` and `Reader` (ports.py).

kafka-python takes and returns its own TopicPartition; the ports' equal-valued one is converted at this edge,
so that the service sees one type whichever transport runs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, cast

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
from kafka import errors as kafka_errors
from kafka.structs import TopicPartition as KafkaTopicPartition

from streamdrift.kafka.errors import translated_errors
from streamdrift.ports import (
    Batch,
    Bound,
    CommitOffset,
    GroupMetadata,
    RebalanceHandler,
    TopicPartition,
)

READ_TO_END_TIMEOUT_MS = 1_000  # unanswered this long: not known to be read to its end


def _theirs(tp: TopicPartition) -> Any:
    return KafkaTopicPartition(tp.topic, tp.partition)


def _ours(partitions: Collection[Any]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in partitions}


class KafkaPythonConsumer:
    """One KafkaConsumer: a group member (`GroupConsumer`) or, made without a group, a `Reader`."""

    def __init__(self, consumer: KafkaConsumer, *, cooperative: bool = False) -> None:
        self._consumer: Any = consumer
        self._cooperative = cooperative
        self._timeout_ms: int = consumer.config["request_timeout_ms"]
        self._topics: list[str] = []
        self._listener: _Listener | None = None

    # ---- GroupConsumer ---------------------------------------------------------------------------

    def subscribe(self, topics: Sequence[str], handler: RebalanceHandler) -> None:
        self._topics, self._listener = list(topics), _Listener(self, handler, cooperative=self._cooperative)
        self._consumer.subscribe(self._topics, listener=self._listener)

    def rejoin(self) -> None:
        self._consumer.unsubscribe()
        self._consumer.subscribe(self._topics, listener=self._listener)

    def poll(self, timeout_s: float) -> Batch:
        with translated_errors("reading input"):
            fetched = self._consumer.poll(timeout_ms=round(timeout_s * 1000))
        listener = self._listener
        if listener is not None and listener.owes_assignment:
            listener.owes_assignment = False
            listener.handler.on_assigned(self.assignment())
        return {TopicPartition(tp.topic, tp.partition): records for tp, records in fetched.items()}

    def assignment(self) -> set[TopicPartition]:
        return _ours(self._consumer.assignment())

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.pause(*map(_theirs, partitions))

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.resume(*map(_theirs, partitions))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(_theirs(partition), offset)

    def seek_to_beginning(self, partition: TopicPartition) -> None:
        self._consumer.seek_to_beginning(_theirs(partition))

    def seek_to_end(self, partition: TopicPartition) -> None:
        self._consumer.seek_to_end(_theirs(partition))

    def committed(self, partition: TopicPartition) -> CommitOffset | None:
        with translated_errors("reading committed offsets"):
            found = self._consumer.committed(_theirs(partition), metadata=True, timeout_ms=self._timeout_ms)
        if found is None or found.offset is None or found.offset < 0:
            return None
        return CommitOffset(found.offset, found.metadata or "")

    def commit(self, offsets: Mapping[TopicPartition, CommitOffset]) -> None:
        theirs = {_theirs(tp): OffsetAndMetadata(c.offset, c.metadata, -1) for tp, c in offsets.items()}
        with translated_errors("committing offsets"):
            self._consumer.commit(theirs)

    def group_metadata(self) -> GroupMetadata:
        return cast(GroupMetadata, self._consumer.group_metadata())

    def highwater(self, partition: TopicPartition) -> int | None:
        highwater: int | None = self._consumer.highwater(_theirs(partition))
        return highwater

    def read_to_end(self, partition: TopicPartition) -> bool:
        """kafka-python's own figures cannot tell: it updates a partition's high watermark only when it parses
        a fetch response, so a partition whose records are fetched but still queued in the client looks read
        to its end. So when those figures say "read to its end", the broker is asked (one ListOffsets)."""
        tp = _theirs(partition)
        highwater = self._consumer.highwater(tp)
        if highwater is None:  # not fetched yet: unknown
            return False
        with translated_errors("reading a position"):
            position = self._consumer.position(tp, timeout_ms=0)
        if position is None or position < highwater:
            return False
        try:
            end = self._consumer.end_offsets([tp], timeout_ms=READ_TO_END_TIMEOUT_MS)[tp]
        except kafka_errors.KafkaError:  # the broker is slow or away: not known, so not read to its end
            return False
        return bool(position >= end)

    def seconds_since_heartbeat(self) -> float:
        metrics = self._consumer.metrics() or {}
        age = metrics.get("consumer-coordinator-metrics", {}).get("last-heartbeat-seconds-ago")
        return float("inf") if age is None else float(age)

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    # ---- Reader ----------------------------------------------------------------------------------

    def partitions_of(self, topic: str) -> list[int]:
        with translated_errors(f"reading {topic}"):
            return sorted(self._consumer.partitions_for_topic(topic) or [])

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        with translated_errors("assigning partitions"):
            self._consumer.assign([_theirs(tp) for tp in partitions])

    def beginning_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        with translated_errors("reading offsets"):
            found = self._consumer.beginning_offsets([_theirs(tp) for tp in partitions])
        return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in found.items()}

    def end_offsets(
        self, partitions: Sequence[TopicPartition], timeout_s: float | None = None
    ) -> dict[TopicPartition, int]:
        timeout_ms = self._timeout_ms if timeout_s is None else round(timeout_s * 1000)
        with translated_errors("reading offsets"):
            found = self._consumer.end_offsets([_theirs(tp) for tp in partitions], timeout_ms=timeout_ms)
        return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in found.items()}

    def offset_at(self, partition: TopicPartition, bound: Bound) -> int:
        if bound.offset is not None:
            return bound.offset
        tp = _theirs(partition)
        with translated_errors(f"finding {partition} at {bound}"):
            found = self._consumer.offsets_for_times({tp: bound.time_ms}).get(tp)
            if found is None:  # no record at or after that time: the end
                return int(self._consumer.end_offsets([tp])[tp])
        return int(found.offset)

    def position(self, partition: TopicPartition, timeout_s: float | None = None) -> int:
        timeout_ms = self._timeout_ms if timeout_s is None else round(timeout_s * 1000)
        with translated_errors("reading a position"):
            return int(self._consumer.position(_theirs(partition), timeout_ms=timeout_ms))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards kafka-python's rebalance notifications (they run on the consumer's network loop); the
    assignment handed on is always the whole new one, as the ports promise, under eager and cooperative
    rebalancing alike."""

    def __init__(
        self, consumer: KafkaPythonConsumer, handler: RebalanceHandler, *, cooperative: bool
    ) -> None:
        self._consumer = consumer
        self.handler = handler
        self._cooperative = cooperative
        # Cooperative rebalancing revokes only partitions that move elsewhere, and kafka-python calls
        # on_partitions_assigned only when partitions are added: after a revocation alone, the consumer's poll
        # tells the handler what this member kept, once kafka-python has taken the revoked ones away.
        self.owes_assignment = False

    def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        self.handler.on_revoked(_ours(revoked))
        self.owes_assignment = self._cooperative

    def on_partitions_assigned(self, assigned: Collection[Any]) -> None:
        self.owes_assignment = False
        self.handler.on_assigned(_ours(assigned) | self._consumer.assignment())

    def on_partitions_lost(self, lost: Collection[Any]) -> None:
        """Evicted from the group (e.g. a stall past max_poll_interval_ms): nothing can be committed."""
        self.handler.on_lost(_ours(lost))
