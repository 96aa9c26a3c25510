"""What the group consumer and the reader share: polling, positions, seeks, offsets by time and watermarks.

librdkafka forgets a partition's position when it seeks (it knows it again from the first record after), and
refuses to seek a partition whose fetching has not started yet, as in the rebalance callback that assigned
it. So the target of each seek is kept until a record of the partition arrives, and a refused seek is made
by assigning the partition again at that offset (`_assign_at`).

librdkafka has also been seen, rarely, to stop fetching a partition for good after a pause, a seek and a
resume around a damaged batch (a restore in front of one): no record, no end, no error. A partition that is
read (assigned, not paused), known to be below its last fetch's high watermark and not at its end, and from
which nothing has come for `STALLED_FETCH_S`, is sought again where it stands (`_refetch_stalled`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, OFFSET_STORED, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as Theirs

from streamdrift.confluent.damage import batch_end
from streamdrift.confluent.errors import translate_exception, translated_errors
from streamdrift.confluent.records import Fetched
from streamdrift.errors import UnreadableBatch
from streamdrift.ports import Batch, Bound, TopicPartition

log = logging.getLogger("streamdrift.confluent")

READ_TO_END_TIMEOUT_S = 1.0  # unanswered this long: not known to be read to its end
# A seek librdkafka refuses because the partition's fetching has not started yet (or is being restarted).
_NOT_FETCHING = frozenset({KafkaError._STATE, KafkaError._UNKNOWN_PARTITION, KafkaError._OUTDATED})
# A partition read below its high watermark that has yielded nothing this long is sought again; librdkafka
# fetches every few hundred milliseconds at most (fetch.wait.max.ms 500), so 10 s is never a slow fetch.
STALLED_FETCH_S = 10.0
_STALL_CHECK_S = 1.0  # how often the partitions read are looked at


def theirs(tp: TopicPartition, offset: int | None = None) -> Theirs:
    return Theirs(tp.topic, tp.partition) if offset is None else Theirs(tp.topic, tp.partition, offset)


def ours(partitions: Collection[Theirs]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in partitions}


class ConsumerBase:
    def __init__(
        self,
        consumer: Consumer,
        *,
        max_poll_records: int,
        timeout_s: float,
        cooperative: bool = False,
        prober: Callable[[], Consumer] | None = None,
    ) -> None:
        self._consumer = consumer
        self._prober = prober  # makes a consumer of its own to find where a damaged batch ends
        self._batch_ends: dict[tuple[TopicPartition, int], int | None] = {}
        self._max_poll_records = max_poll_records
        self._timeout_s = timeout_s
        self._cooperative = cooperative  # incremental (un)assignment: cooperative rebalancing
        self._targets: dict[TopicPartition, int] = {}  # seeks no record has followed yet
        self._next: dict[TopicPartition, int] = {}  # where the next record is due: a seek's or past the last
        self._ends: dict[TopicPartition, int] = {}  # where each partition last reached its end
        self._paused: set[TopicPartition] = set()
        self._damaged: UnreadableBatch | None = None
        # When each partition last yielded something (record, end, error) or was sought or resumed.
        self._heard: dict[TopicPartition, float] = {}
        self._stalls_checked_at = 0.0

    # ---- reading ---------------------------------------------------------------------------------

    # Error events of the stream that say nothing about what this consumer reads (see ConfluentReader).
    _ignored_errors: frozenset[int] = frozenset()

    def poll(self, timeout_s: float) -> Batch:
        """Records by partition. A damaged batch raises `UnreadableBatch` after the records before it (at
        the next poll, as kafka-python does), with the partition positioned where reading stopped: polls
        after a `seek` to `offset` fetch it again, and a seek past it moves on."""
        if self._damaged is not None:
            pending, self._damaged = self._damaged, None
            raise pending
        with translated_errors("reading input"):
            messages = self._consumer.consume(num_messages=self._max_poll_records, timeout=timeout_s)
        fetched = Fetched(messages, self._ignored_errors)
        now = time.monotonic()
        heard = self._heard
        for tp in fetched.records.keys() | fetched.ends.keys():
            heard[tp] = now
        damaged = fetched.damaged
        if damaged is not None:
            heard[TopicPartition(damaged.topic, damaged.partition)] = now
        if now - self._stalls_checked_at >= _STALL_CHECK_S:
            self._stalls_checked_at = now
            self._refetch_stalled(now, fetched.records)
        if damaged is not None:
            damaged = self._placed(damaged, fetched.records)
        for tp, read in fetched.records.items():
            self._targets.pop(tp, None)
            self._next[tp] = read[-1].offset + 1
        self._ends.update(fetched.ends)
        if damaged is not None:
            # What librdkafka fetched after the damage is dropped; its position afterwards is not trusted.
            self.seek(TopicPartition(damaged.topic, damaged.partition), damaged.offset)
            if damaged.end is not None and damaged.offset >= damaged.end:
                return fetched.records  # a stale report of a batch already passed: read on from here
            if not fetched.records:
                raise damaged
            self._damaged = damaged
        return fetched.records

    def _refetch_stalled(self, now: float, fetched: Batch) -> None:
        for tp in self.assignment() - self._paused:
            since = self._heard.setdefault(tp, now)
            if now - since < STALLED_FETCH_S:
                continue
            self._heard[tp] = now
            position, highwater = self._known_position(tp), self.highwater(tp)
            if tp in fetched or position is None or highwater is None or position >= highwater:
                continue  # read up to the last fetch's high watermark: nothing is known to be missing
            end = self._ends.get(tp)
            if end is not None and position >= end:
                continue  # at its end (read_committed: an open transaction holds the rest back)
            log.warning(
                "%s yielded nothing for %.0f s at offset %d, below its high watermark %d: seeking it again",
                tp, now - since, position, highwater,
            )  # fmt: skip
            self.seek(tp, position)

    def _placed(self, damaged: UnreadableBatch, fetched: Batch) -> UnreadableBatch:
        """The damage where reading stopped, with the batch's end. librdkafka names the batch by its first
        offset even when reading started inside it (a seek past the first damaged records), and it can still
        hand out an error of a batch fetched before a seek past it: reading stopped at the later of the
        batch's start and where the next record was due. A report whose stop is at or past the batch's
        known end is such a stale one."""
        tp = TopicPartition(damaged.topic, damaged.partition)
        read = fetched.get(tp)
        due = read[-1].offset + 1 if read else self._next.get(tp, -1)
        end = self._batch_end(tp, damaged.offset)
        return UnreadableBatch(tp.topic, tp.partition, max(damaged.offset, due), end, damaged.reason)

    def _batch_end(self, tp: TopicPartition, first: int) -> int | None:
        """Where the damaged batch librdkafka names by its `first` offset ends (damage.py), found once."""
        key = (tp, first)
        if key not in self._batch_ends and self._prober is not None:
            self._batch_ends[key] = batch_end(self._prober, tp, first, self.watermarks(tp)[1])
        return self._batch_ends.get(key)

    def assignment(self) -> set[TopicPartition]:
        with translated_errors("reading the assignment"):
            return ours(self._consumer.assignment())

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self._paused.update(partitions)
        with translated_errors("pausing partitions"):
            self._consumer.pause([theirs(tp) for tp in partitions])

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self._paused.difference_update(partitions)
        now = time.monotonic()
        self._heard.update((tp, now) for tp in partitions)
        with translated_errors("resuming partitions"):
            self._consumer.resume([theirs(tp) for tp in partitions])

    # ---- positions -------------------------------------------------------------------------------

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._ends.pop(partition, None)
        self._heard[partition] = time.monotonic()
        if offset >= 0:
            self._targets[partition] = self._next[partition] = offset
        else:
            self._targets.pop(partition, None)
            self._next.pop(partition, None)
        try:
            self._consumer.seek(theirs(partition, offset))
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            refused = isinstance(error, KafkaError) and error.code() in _NOT_FETCHING
            if not refused or partition not in self.assignment():
                raise translate_exception(f"seeking {partition} to {offset}", exc) from exc
            self._assign_at(partition, offset)

    def seek_to_beginning(self, partition: TopicPartition) -> None:
        self.seek(partition, OFFSET_BEGINNING)

    def seek_to_end(self, partition: TopicPartition) -> None:
        self.seek(partition, OFFSET_END)

    def _assign_at(self, partition: TopicPartition, offset: int) -> None:
        """Seek a partition librdkafka does not fetch yet: assign it again, starting at `offset`."""
        action = f"seeking {partition} to {offset}"
        with translated_errors(action):
            if self._cooperative:
                self._consumer.incremental_unassign([theirs(partition)])
                self._consumer.incremental_assign([theirs(partition, offset)])
            else:  # an assignment replaces the whole one: every other partition keeps its place
                current = ours(self._consumer.assignment())
                starts = {tp: self._start_of(tp) for tp in current} | {partition: offset}
                self._consumer.assign([theirs(tp, start) for tp, start in starts.items()])
            paused = [theirs(tp) for tp in self._paused & ours(self._consumer.assignment())]
            if paused:
                self._consumer.pause(paused)

    def _start_of(self, partition: TopicPartition) -> int:
        known = self._known_position(partition)
        return OFFSET_STORED if known is None else known

    def _known_position(self, partition: TopicPartition) -> int | None:
        """The next offset to hand out, when known: librdkafka's, or the target of a seek not followed yet
        by a record (librdkafka forgets its position at a seek)."""
        with translated_errors(f"reading the position of {partition}"):
            (found,) = self._consumer.position([theirs(partition)])
        if found.offset >= 0:
            return found.offset
        return self._targets.get(partition)

    # ---- offsets ---------------------------------------------------------------------------------

    def highwater(self, partition: TopicPartition) -> int | None:
        """The high watermark of the partition's last fetch (None before one)."""
        with translated_errors(f"reading the watermarks of {partition}"):
            found = self._consumer.get_watermark_offsets(theirs(partition), cached=True)
        if found is None or found[1] < 0:
            return None
        return found[1]

    def read_to_end(self, partition: TopicPartition) -> bool:
        """Whether every record up to the last stable offset was handed out. The figures at hand (the last
        fetch's high watermark, where the partition last reached its end) say when that may be so; the
        broker is then asked (one ListOffsets, which answers the last stable offset for read_committed)."""
        highwater = self.highwater(partition)
        position = self._known_position(partition)
        if highwater is None or position is None:
            return False
        end = self._ends.get(partition)
        if position < highwater and (end is None or position < end):
            return False
        try:
            _, stable = self._consumer.get_watermark_offsets(
                theirs(partition), timeout=READ_TO_END_TIMEOUT_S, cached=False
            )
        except KafkaException:  # the broker is slow or away: not known, so not read to its end
            return False
        return position >= stable

    def watermarks(self, partition: TopicPartition, timeout_s: float | None = None) -> tuple[int, int]:
        """The partition's first offset and its end (read_committed: its last stable offset), from the
        broker."""
        timeout = self._timeout_s if timeout_s is None else timeout_s
        with translated_errors(f"reading the offsets of {partition}"):
            low, high = self._consumer.get_watermark_offsets(theirs(partition), timeout=timeout, cached=False)
        return low, high

    def offset_at(self, partition: TopicPartition, bound: Bound) -> int:
        """The offset itself, or the first record at or after the time (the end when there is none)."""
        if bound.offset is not None:
            return bound.offset
        if bound.time_ms is not None:
            with translated_errors(f"finding {partition} at {bound}"):
                (found,) = self._consumer.offsets_for_times(
                    [theirs(partition, bound.time_ms)], timeout=self._timeout_s
                )
            if found.error is not None:
                raise translate_exception(f"finding {partition} at {bound}", KafkaException(found.error))
            if found.offset >= 0:
                return found.offset
        return self.watermarks(partition)[1]

    def end_offsets(
        self, partitions: Sequence[TopicPartition], timeout_s: float | None = None
    ) -> dict[TopicPartition, int]:
        return {tp: self.watermarks(tp, timeout_s)[1] for tp in partitions}

    def beginning_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.watermarks(tp)[0] for tp in partitions}

    def close(self) -> None:
        with translated_errors("closing the consumer"):
            self._consumer.close()
