"""Fetching input, and what to do with a record batch that cannot be read (a damaged batch on the broker):
it is fetched again `FETCH_ATTEMPTS` times in all, then skipped into the dead-letter topic when
`processing.skip_unreadable_batches`, else fatal with one line saying how to move past it."""

from __future__ import annotations

import threading

import structlog

from streamdrift.errors import BadRecord, FatalServiceError, UnreadableBatch
from streamdrift.ports import Batch, GroupConsumer, TopicPartition
from streamdrift.service.counters import Counters
from streamdrift.service.ledger import Ledger
from streamdrift.service.records import dead_letter_record
from streamdrift.service.sinks import RecordWriter

POLL_TIMEOUT_S = 0.2
FETCH_ATTEMPTS = 3
UNREADABLE_BATCH = "unreadable_batch"  # the dead-letter kind of a skipped batch


class Fetcher:
    def __init__(
        self,
        *,
        ledger: Ledger,
        counters: Counters,
        writer: RecordWriter,
        dead_letter_topic: str,
        skip: bool,
        lock: threading.RLock,
    ) -> None:
        self.ledger, self.counters, self.writer, self.lock = ledger, counters, writer, lock
        self.dead_letter_topic = dead_letter_topic
        self.skip = skip
        self.unreadable: tuple[tuple[str, int, int], int] | None = None  # (topic, partition, offset), fetches
        self.log = structlog.get_logger("streamdrift.service")

    def poll(self, consumer: GroupConsumer) -> Batch:
        """The next fetched records (none after an unreadable batch: it was handled)."""
        try:
            return consumer.poll(POLL_TIMEOUT_S)
        except UnreadableBatch as exc:
            where = (exc.topic, exc.partition, exc.offset)
            fetches = self.unreadable[1] + 1 if self.unreadable and self.unreadable[0] == where else 1
            self.unreadable = (where, fetches)
            tp = TopicPartition(exc.topic, exc.partition)
            if fetches < FETCH_ATTEMPTS:
                self.log.warning("unreadable record batch; fetching it again", error=str(exc), tries=fetches)
                consumer.seek(tp, exc.offset)
            elif self.skip:
                with self.lock:
                    self._skip(consumer, tp, exc)
            else:
                raise FatalServiceError(_unreadable_message(exc, fetches)) from exc
            return {}

    def _skip(self, consumer: GroupConsumer, tp: TopicPartition, exc: UnreadableBatch) -> None:
        """Move past a damaged batch: one dead letter names its offsets (only when live: a replay of it was
        skipped and dead-lettered before), and its end is committed like processed input."""
        end = exc.end if exc.end is not None and exc.end > exc.offset else exc.offset + 1
        if exc.offset >= self.ledger.replay_end(tp):
            self.counters.dead_letters[UNREADABLE_BATCH] += 1
            error = BadRecord(UNREADABLE_BATCH, f"offsets {exc.offset} to {end - 1} skipped: {exc.reason}")
            self.writer.write(
                dead_letter_record(
                    self.dead_letter_topic,
                    error,
                    key=None,
                    value=b"",
                    headers=[],
                    source_topic=exc.topic,
                    partition=exc.partition,
                    offset=exc.offset,
                )
            )
        self.log.warning("unreadable record batch skipped", error=str(exc), next_offset=end)
        consumer.seek(tp, end)
        if self.ledger.processes(tp) and not self.ledger.forwards(tp):
            self.ledger.processed_up_to(tp, end)


def _unreadable_message(exc: UnreadableBatch, fetches: int) -> str:
    """One line: where, why, and how an operator moves past it (README, "Compressed and damaged input")."""
    span = f"offsets {exc.offset} to {exc.end - 1}" if exc.end is not None and exc.end > exc.offset else "it"
    return (
        f"cannot read {exc.topic} partition {exc.partition} at offset {exc.offset}: {exc.reason} "
        f"(fetched {fetches} times); the batch is damaged on the broker. To skip {span} into the dead-letter "
        "topic, restart with processing.skip_unreadable_batches: true (README: Compressed and damaged input)"
    )
