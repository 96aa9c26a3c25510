"""One strategy per delivery guarantee: how an interval's records are written, committed and discarded.

Both own the producer. A rollback replaces it in both: whatever state a failed call left it in, a new
producer starts clean, and in exactly_once its initialisation (same transactional id) ends the old transaction
on the broker before anything is restored, so the restore reads a settled cut (the transaction aborted, or
committed if its commit had reached the broker).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Mapping
from typing import Protocol

from streamdrift.errors import CheckpointRefused, KafkaUnavailable
from streamdrift.ports import CommitOffset, GroupConsumer, OutRecord, Producer, TopicPartition, Transport
from streamdrift.service.counters import Counters


class Guarantee(Protocol):
    @property
    def ready(self) -> bool: ...  # a producer is started (else: rolled back, being replaced)
    @property
    def open(self) -> bool: ...  # records written since the last commit
    def start(self) -> None: ...  # a producer, if there is none; `KafkaUnavailable`: call again later
    def write(self, record: OutRecord) -> None: ...
    def flush(self) -> None: ...  # what was written is durable, or in the open transaction
    # Steps 3 and 4 of the checkpoint (checkpoint.py). `commit_offsets` False: durable records, no offsets.
    def commit(
        self, offsets: Mapping[TopicPartition, CommitOffset], consumer: GroupConsumer, *, commit_offsets: bool
    ) -> None: ...
    def discard(self) -> None: ...
    def transaction_timed_out(self, now: float) -> bool: ...
    # Before a restore reads the committed offsets of `partitions` (see ExactlyOnce.settle).
    def settle(self, consumer: GroupConsumer, partitions: Collection[TopicPartition]) -> None: ...
    def close(self) -> None: ...


class ExactlyOnce:
    """One Kafka transaction per interval, begun at its first record; offsets committed inside it."""

    def __init__(
        self, transport: Transport, *, transactional_id: str, transaction_timeout_ms: int, counters: Counters
    ) -> None:
        self.transport = transport
        self.transactional_id = transactional_id
        self.transaction_timeout_s = transaction_timeout_ms / 1000
        self.counters = counters
        self.producer: Producer | None = None
        self.initializing: Producer | None = None  # a producer whose initialisation has not completed
        self.transaction_began: float | None = None  # monotonic; None: no transaction open
        self.settled = False  # the producer's orphaned offsets cleared (settle)

    @property
    def ready(self) -> bool:
        return self.producer is not None

    @property
    def open(self) -> bool:
        return self.transaction_began is not None

    def start(self) -> None:
        if self.producer is not None:
            return
        producer = self.initializing
        if producer is None:
            # A stable id per replica: a restarted replica (or a replaced producer) fences the previous one.
            producer = self.initializing = self.transport.producer(
                transactional_id=self.transactional_id,
                transaction_timeout_ms=round(self.transaction_timeout_s * 1000),
            )
        try:
            producer.init_transactions()
        except KafkaUnavailable:
            # Unanswered: retried on this same producer, which goes on waiting for its first request. A new
            # producer's request would race it, and whichever the broker answered last would fence the other.
            raise
        except BaseException:
            self.initializing = None
            producer.abandon()
            raise
        self.initializing = None
        self.producer = producer
        self.settled = False

    def write(self, record: OutRecord) -> None:
        producer = self._producer()
        if self.transaction_began is None:
            producer.begin_transaction()
            self.transaction_began = time.monotonic()
        producer.send(record)

    def flush(self) -> None:
        """Nothing to wait for: the transaction's commit makes its records durable all at once."""

    def commit(
        self, offsets: Mapping[TopicPartition, CommitOffset], consumer: GroupConsumer, *, commit_offsets: bool
    ) -> None:
        producer = self._producer()
        if self.transaction_began is None:  # an interval of offsets only still commits them in one
            producer.begin_transaction()
            self.transaction_began = time.monotonic()
        if offsets:
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
        producer.commit_transaction()
        self.transaction_began = None

    def discard(self) -> None:
        if self.producer is not None:
            if self.transaction_began is not None:
                self.counters.totals["transactions_aborted"] += 1
            self.producer.abandon()
            self.producer = None
            self.counters.totals["producers_replaced"] += 1
        self.transaction_began = None

    def transaction_timed_out(self, now: float) -> bool:
        """Whether the open transaction has been open for transaction_timeout_ms: a fence is then the broker's
        own abort of it (it bumps the producer's epoch), not a newer instance with our transactional id."""
        began = self.transaction_began
        return began is not None and now - began >= self.transaction_timeout_s

    def settle(self, consumer: GroupConsumer, partitions: Collection[TopicPartition]) -> None:
        """Clear offsets a replaced producer left pending in the group, once per new producer, before they
        are read. A replaced producer's offset commit (TxnOffsetCommit) that reaches the broker after the new
        producer's initialisation ended its transaction — sent before an outage, or before the broker froze —
        is kept as pending by the group coordinator (which does not check the producer's epoch) with no
        transaction left to complete it: the group's offsets stay unstable, and read_committed reads of them
        (both clients ask for stable offsets) wait until they time out, at every restore. The pending offsets
        of a producer id go when one of its transactions that holds the group's offsets completes: an
        aborted transaction with an offset commit of one partition (its offset is never seen) clears them.
        (The cause is read from the symptom — both clients timing out on stable offset reads after an outage,
        restore after restore — and from the protocol; this cleared it in every outage run since.)"""
        if self.settled or self.transaction_began is not None or not partitions:
            return
        producer = self._producer()
        first = min(partitions)
        producer.begin_transaction()
        # The group may have moved on since this member's last join (its session expired during an outage):
        # the offset commit is refused then, but the group's offsets partition joined the transaction before
        # it (AddOffsetsToTxn), so the abort clears what is pending all the same.
        with contextlib.suppress(CheckpointRefused):
            producer.send_offsets_to_transaction({first: CommitOffset(0, "")}, consumer.group_metadata())
        producer.abort_transaction()
        self.settled = True

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()
        if self.initializing is not None:
            self.initializing.abandon()

    def _producer(self) -> Producer:
        if self.producer is None:
            raise KafkaUnavailable("the producer is being replaced after a rollback")
        return self.producer


class AtLeastOnce:
    """Records sent as they come; the checkpoint flushes them (every send must have succeeded), then commits
    the offsets. A crash in between repeats alerts on restart, with the same `alert_id`."""

    def __init__(self, transport: Transport, *, counters: Counters) -> None:
        self.transport = transport
        self.counters = counters
        self.producer: Producer | None = None
        self.written = False

    @property
    def ready(self) -> bool:
        return self.producer is not None

    @property
    def open(self) -> bool:
        return self.written

    def start(self) -> None:
        if self.producer is None:
            self.producer = self.transport.producer()

    def write(self, record: OutRecord) -> None:
        if self.producer is None:
            raise KafkaUnavailable("the producer is being replaced after a rollback")
        self.producer.send(record)
        self.written = True

    def flush(self) -> None:
        """Every record sent so far is on the broker (`FatalServiceError` when one could not be written)."""
        if self.producer is None:
            raise KafkaUnavailable("the producer is being replaced after a rollback")
        self.producer.flush()

    def commit(
        self, offsets: Mapping[TopicPartition, CommitOffset], consumer: GroupConsumer, *, commit_offsets: bool
    ) -> None:
        if self.producer is None:
            raise KafkaUnavailable("the producer is being replaced after a rollback")
        self.producer.flush()
        self.written = False
        if commit_offsets and offsets:
            consumer.commit(offsets)

    def discard(self) -> None:
        # Its unsent records belong to the rolled-back interval, which is processed again.
        if self.producer is not None:
            self.producer.abandon()
            self.producer = None
            self.counters.totals["producers_replaced"] += 1
        self.written = False

    def transaction_timed_out(self, now: float) -> bool:
        return False

    def settle(self, consumer: GroupConsumer, partitions: Collection[TopicPartition]) -> None:
        """Offsets are committed outside transactions: none are ever pending."""

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close()
