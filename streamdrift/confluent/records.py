"""librdkafka's fetched messages as the ports' batches: records grouped by partition, and the events that come
in the same stream (end of partition, a damaged batch, an error)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, Message

from streamdrift.confluent.errors import AUTHORIZATION, DAMAGED, REFUSALS, describe, translate
from streamdrift.errors import UnreadableBatch
from streamdrift.ports import FetchedRecord, InRecord, TopicPartition

log = logging.getLogger("streamdrift.confluent")

# Consumer errors that end the run: another member took this one's instance id, a refusal.
_FATAL_IN_POLL = REFUSALS | AUTHORIZATION | {KafkaError.FENCED_INSTANCE_ID}


class Fetched:
    """One `consume` call's messages, sorted out: `records` per partition, `ends` (the offset at which each
    partition that reached its end did: its last stable offset, read_committed), `damaged` (the first
    damaged batch; the partition's records after it are dropped).

    librdkafka names a damaged batch by its first offset only, and what it reads of the partition after it
    cannot be trusted (it may misread the rest of the fetch, and reset the partition's position): the end
    of the batch is not known.
    """

    def __init__(self, messages: Sequence[Message], ignored: frozenset[int] = frozenset()) -> None:
        self.records: dict[TopicPartition, list[InRecord]] = {}
        self.ends: dict[TopicPartition, int] = {}
        damage: tuple[TopicPartition, int, str] | None = None
        stopped: set[TopicPartition] = set()
        # Once per message: messages come in runs of one partition, so its list is looked up once a run.
        topic = partition = records = None
        for message in messages:
            error = message.error()
            if error is None:
                record = record_of(message)
                if record.partition != partition or record.topic != topic:
                    topic, partition = record.topic, record.partition
                    tp = TopicPartition(topic, partition)
                    records = None if tp in stopped else self.records.setdefault(tp, [])
                if records is not None:
                    records.append(record)
                continue
            topic = partition = records = None  # the stopped partitions may change
            where = _partition_of(message)
            if error.code() == KafkaError._PARTITION_EOF and where is not None:
                self.ends[where] = cast(int, message.offset())
            elif error.code() in DAMAGED and where is not None:
                stopped.add(where)
                if damage is None:
                    damage = (where, cast(int, message.offset()), describe(error))
            elif error.code() not in ignored:
                raise_if_fatal(error)
        self.damaged = None
        if damage is not None:
            (topic, partition), offset, reason = damage
            self.damaged = UnreadableBatch(topic, partition, offset, None, reason)


def record_of(message: Message) -> FetchedRecord:
    """A message without error as a record (positional arguments: this runs once per record)."""
    kind, timestamp = message.timestamp()
    value = message.value()
    headers = message.headers()
    return FetchedRecord(
        message.topic(),  # type: ignore[arg-type]  # a message without error has them
        message.partition(),  # type: ignore[arg-type]
        message.offset(),  # type: ignore[arg-type]
        message.key(),
        value,
        None if headers is None else list(headers),  # type: ignore[arg-type]  # a consumer reads bytes
        -1 if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
        -1 if value is None else len(value),
    )


def raise_if_fatal(error: KafkaError) -> None:
    """An error event of the consumer's stream. librdkafka reports there what it retries by itself (a broker
    away, a topic not yet created, a poll interval exceeded: it rejoins), and those are only logged; a fatal
    error (a static member fenced) or a refusal (authorization) ends the run."""
    if error.fatal() or error.code() == KafkaError._FATAL or error.code() in _FATAL_IN_POLL:
        raise translate("reading input", error)
    log.warning("consumer: %s", describe(error))


def _partition_of(message: Message) -> TopicPartition | None:
    topic, partition = message.topic(), message.partition()
    if topic is None or partition is None or partition < 0:
        return None
    return TopicPartition(topic, partition)
