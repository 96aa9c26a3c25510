"""kafka-python's KafkaProducer behind the ports' `Producer` (ports.py).

kafka-python's transactional calls wait without a deadline, and a broker outage must not hang the service:
each runs in a thread of its own with `call_timeout_s`; past it, `KafkaUnavailable`, and the caller abandons
the producer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kafka import KafkaProducer, OffsetAndMetadata
from kafka import errors as kafka_errors
from kafka.structs import TopicPartition as KafkaTopicPartition

from streamdrift.errors import CheckpointRefused, FatalServiceError, Fenced, KafkaUnavailable
from streamdrift.kafka.errors import translated_errors
from streamdrift.ports import CommitOffset, GroupMetadata, OutRecord, TopicPartition

T = TypeVar("T")


class KafkaPythonProducer:
    def __init__(self, producer: KafkaProducer, *, transactional: bool, call_timeout_s: float) -> None:
        self._producer: Any = producer
        self._transactional = transactional
        self._call_timeout_s = call_timeout_s
        self._sends: list[Any] = []  # futures since the last flush (checked there when not transactional)

    def init_transactions(self) -> None:
        bounded("initialising transactions", self._call_timeout_s, self._producer.init_transactions)

    def begin_transaction(self) -> None:
        with translated_errors("beginning a transaction", transactional=True):
            self._producer.begin_transaction()

    def send(self, record: OutRecord) -> None:
        with translated_errors("sending a record", transactional=self._transactional):
            future = self._producer.send(
                record.topic, key=record.key, value=record.value, headers=record.headers,
                partition=record.partition, timestamp_ms=record.timestamp_ms,
            )  # fmt: skip
        if not self._transactional:
            self._sends.append(future)

    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, CommitOffset], group: GroupMetadata
    ) -> None:
        theirs = {
            KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(c.offset, c.metadata, -1)
            for tp, c in offsets.items()
        }
        try:
            bounded(
                "committing the transaction", self._call_timeout_s,
                lambda: self._producer.send_offsets_to_transaction(theirs, group),
            )  # fmt: skip
        except Fenced as fence:
            if isinstance(fence.__cause__, kafka_errors.FencedInstanceIdError):
                # The member the offsets name is not the group's any more (its session expired while the
                # broker was away, and it joined again): the group moved on, as for a stale generation.
                raise CheckpointRefused(f"committing the transaction: {fence.__cause__}") from fence
            raise

    def commit_transaction(self) -> None:
        bounded("committing the transaction", self._call_timeout_s, self._producer.commit_transaction)

    def abort_transaction(self) -> None:
        bounded("aborting the transaction", self._call_timeout_s, self._producer.abort_transaction)

    def flush(self) -> None:
        with translated_errors("flushing alerts"):
            self._producer.flush()
        failed = [future for future in self._sends if future.failed()]
        self._sends.clear()
        if failed:
            raise FatalServiceError(f"{len(failed)} writes failed, first: {failed[0].exception}")

    def close(self) -> None:
        self._producer.close(timeout=10)

    def abandon(self) -> None:
        """Close a producer that may be wedged, without waiting for it, in a thread of its own."""
        producer = self._producer

        def close() -> None:
            try:
                producer.close(timeout=0)
            except Exception:  # its flush gave up on records that no longer matter: stop its I/O thread
                sender = getattr(producer, "_sender", None)
                if sender is not None:
                    sender.force_close()

        threading.Thread(target=close, name="kafka: closing", daemon=True).start()


def bounded(action: str, timeout_s: float, call: Callable[[], T]) -> T:
    """Run a blocking transactional call with a deadline. Past it the call is abandoned in its thread and
    `KafkaUnavailable` is raised. Errors are translated as transactional (`translated_errors`)."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name=f"kafka: {action}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        raise KafkaUnavailable(f"{action}: no answer within {timeout_s:.0f} s")
    succeeded, value = outcome[0]
    if succeeded:
        result: T = value
        return result
    with translated_errors(action, transactional=True):
        raise value
