"""Where a damaged record batch ends. librdkafka names a damaged batch by its first offset only; kafka-python
tells its end too, which the service needs to skip the batch in one step into one dead letter
(`processing.skip_unreadable_batches`). So the end is found the way an operator would: by reading from later
offsets with a consumer of its own — an offset inside the damaged batch fails again, one past it reads — first
doubling the distance, then halving the interval: about 2·log2(batch size) fetches.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError
from confluent_kafka import TopicPartition as Theirs

from streamdrift.confluent.errors import DAMAGED
from streamdrift.ports import TopicPartition

PROBE_WAIT_S = 15.0  # a probe that gets neither a record nor an error within this long: the end stays unknown
MAX_PROBES = 64


class _Unknown(Exception):
    """A probe that could not tell (the broker slow or away)."""


def batch_end(
    make_consumer: Callable[[], Consumer], tp: TopicPartition, damaged_at: int, end: int
) -> int | None:
    """The first offset after the damaged batch holding `damaged_at` (at most the partition's `end`), or None
    when it cannot be told."""
    probes = 0

    def readable(offset: int) -> bool:
        # A consumer of its own per probe: one reassigned from probe to probe can still hand out what an
        # earlier probe fetched (a record past this offset, or that probe's error), which misplaces the end.
        nonlocal probes
        probes += 1
        if probes > MAX_PROBES:
            raise _Unknown
        consumer = make_consumer()
        try:
            consumer.assign([Theirs(tp.topic, tp.partition, offset)])
            deadline = time.monotonic() + PROBE_WAIT_S
            while time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is None or error.code() == KafkaError._PARTITION_EOF:
                    return True
                if error.code() in DAMAGED:
                    return False
            raise _Unknown
        finally:
            consumer.close()

    try:
        known_bad, step = damaged_at, 1
        while True:  # double the distance until a readable offset (or the end)
            candidate = known_bad + step
            if candidate >= end:
                readable_at = end
                break
            if readable(candidate):
                readable_at = candidate
                break
            known_bad, step = candidate, step * 2
        while readable_at - known_bad > 1:  # the first readable offset in (known_bad, readable_at]
            middle = (known_bad + readable_at) // 2
            if readable(middle):
                readable_at = middle
            else:
                known_bad = middle
        return readable_at
    except _Unknown:
        return None
