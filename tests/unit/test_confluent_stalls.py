"""A partition librdkafka stopped fetching is sought again (confluent/consumer.py, `_refetch_stalled`).

The stall itself cannot be produced on purpose against a broker (it was seen once in many runs, around a
damaged batch and a restore); these tests hold the rule to a stand-in for librdkafka's consumer that fetches
nothing, with a clock of their own: sought again only when read, below the high watermark, not at its end,
and silent for `STALLED_FETCH_S`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka import TopicPartition as Theirs

from streamdrift.confluent import consumer as consumer_module
from streamdrift.confluent.consumer import STALLED_FETCH_S, ConsumerBase
from streamdrift.ports import TopicPartition

TP = TopicPartition("in", 0)
INVALID = -1001  # librdkafka's position of a partition nothing was handed out of since its last seek


class PartitionEof:
    """The one kind of message these tests need from librdkafka: a partition reached its end."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def error(self) -> KafkaError:
        return KafkaError(KafkaError._PARTITION_EOF)

    def topic(self) -> str:
        return TP.topic

    def partition(self) -> int:
        return TP.partition

    def offset(self) -> int:
        return self._offset


@dataclass
class SilentConsumer:
    """librdkafka's consumer, fetching nothing: what `ConsumerBase` calls of it."""

    highwater: int = 100
    position_at: int = INVALID
    queued: list[object] = field(default_factory=list)
    seeks: list[int] = field(default_factory=list)

    def consume(self, num_messages: int, timeout: float) -> list[object]:
        handed, self.queued = self.queued, []
        return handed

    def assignment(self) -> list[Theirs]:
        return [Theirs(TP.topic, TP.partition)]

    def position(self, partitions: list[Theirs]) -> list[Theirs]:
        return [Theirs(TP.topic, TP.partition, self.position_at)]

    def get_watermark_offsets(self, partition: Theirs, **_: Any) -> tuple[int, int]:
        return 0, self.highwater

    def seek(self, partition: Theirs) -> None:
        self.seeks.append(partition.offset)

    def pause(self, partitions: list[Theirs]) -> None:
        pass

    def resume(self, partitions: list[Theirs]) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(consumer_module, "time", SimpleNamespace(monotonic=made.monotonic))
    return made


def reading_at(offset: int, librdkafka: SilentConsumer) -> ConsumerBase:
    consumer = ConsumerBase(cast(Consumer, librdkafka), max_poll_records=100, timeout_s=1.0)
    consumer.seek(TP, offset)  # as a restore does before resuming
    librdkafka.seeks.clear()
    return consumer


def poll_for(consumer: ConsumerBase, clock: Clock, seconds: float) -> None:
    """Poll every half second for `seconds`."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += 0.5
        assert consumer.poll(0.5) == {}


def test_a_partition_silent_below_its_high_watermark_is_sought_again_where_it_stands(clock: Clock) -> None:
    librdkafka = SilentConsumer()
    consumer = reading_at(40, librdkafka)
    poll_for(consumer, clock, STALLED_FETCH_S - 1)
    assert librdkafka.seeks == []  # not yet
    poll_for(consumer, clock, 2)
    assert librdkafka.seeks == [40]
    poll_for(consumer, clock, STALLED_FETCH_S - 1)
    assert librdkafka.seeks == [40]  # and again only after as long
    poll_for(consumer, clock, 2)
    assert librdkafka.seeks == [40, 40]


def test_librdkafkas_own_position_wins_over_the_last_seek(clock: Clock) -> None:
    librdkafka = SilentConsumer(position_at=57)
    consumer = reading_at(40, librdkafka)
    poll_for(consumer, clock, STALLED_FETCH_S + 1)
    assert librdkafka.seeks == [57]


def test_a_partition_read_to_its_high_watermark_is_left_alone(clock: Clock) -> None:
    librdkafka = SilentConsumer(highwater=40)
    consumer = reading_at(40, librdkafka)
    poll_for(consumer, clock, 3 * STALLED_FETCH_S)
    assert librdkafka.seeks == []


def test_a_partition_at_its_end_below_the_high_watermark_is_left_alone(clock: Clock) -> None:
    """read_committed: an open transaction holds the rest back; librdkafka said the partition ended there."""
    librdkafka = SilentConsumer()
    consumer = reading_at(40, librdkafka)
    librdkafka.queued.append(PartitionEof(40))
    poll_for(consumer, clock, 3 * STALLED_FETCH_S)
    assert librdkafka.seeks == []


def test_a_paused_partition_is_left_alone_and_its_wait_starts_when_resumed(clock: Clock) -> None:
    librdkafka = SilentConsumer()
    consumer = reading_at(40, librdkafka)
    consumer.pause([TP])
    poll_for(consumer, clock, 3 * STALLED_FETCH_S)
    assert librdkafka.seeks == []
    consumer.resume([TP])
    poll_for(consumer, clock, STALLED_FETCH_S - 1)
    assert librdkafka.seeks == []
    poll_for(consumer, clock, 2)
    assert librdkafka.seeks == [40]
