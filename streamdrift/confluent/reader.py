"""librdkafka's consumer as the ports' `Reader`: assigned partitions, read_committed, no group.

librdkafka's consumer needs a group id even when it never joins: each reader gets one of its own, and
commits nothing under it.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, KafkaError
from confluent_kafka import TopicPartition as Theirs

from streamdrift.confluent.consumer import ConsumerBase
from streamdrift.confluent.errors import AUTHORIZATION, refusal, translated_errors
from streamdrift.errors import FatalServiceError
from streamdrift.ports import TopicPartition


class ConfluentReader(ConsumerBase):
    # librdkafka looks up the coordinator of a consumer's group even when it never joins it, and reports a
    # principal not allowed to describe that (random, unused) group as an error event: not a refusal of
    # anything a reader does.
    _ignored_errors = frozenset({KafkaError.GROUP_AUTHORIZATION_FAILED})

    def partitions_of(self, topic: str) -> list[int]:
        """The topic's partitions; empty when there is no such topic."""
        with translated_errors(f"reading {topic}"):
            metadata = self._consumer.list_topics(topic, timeout=self._timeout_s)
        found = metadata.topics.get(topic)
        if found is None:
            return []
        error: KafkaError | None = found.error
        if error is not None and error.code() in AUTHORIZATION:
            raise FatalServiceError(f"describing topic {topic}: {refusal(error)}")
        if error is not None:
            return []
        return sorted(int(partition) for partition in found.partitions)

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._targets.clear()
        self._next.clear()
        self._ends.clear()
        self._paused.clear()
        # From the beginning, never a committed offset: looking one up would ask the reader's own group, which
        # a principal with the README's ACLs may not describe (GROUP_AUTHORIZATION_FAILED).
        with translated_errors("assigning partitions"):
            self._consumer.assign([Theirs(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in partitions])

    def position(self, partition: TopicPartition, timeout_s: float | None = None) -> int:
        """The next offset to hand out. Before any seek or record: where reading starts, the partition's
        beginning (nothing is committed under a reader's group)."""
        known = self._known_position(partition)
        if known is not None:
            return known
        return self.watermarks(partition, timeout_s)[0]
