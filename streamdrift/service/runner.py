"""The run loop: poll, detect, write alerts and dead letters, checkpoint.

The checkpoint, once per `processing.commit_interval_ms` (and on revocation and shutdown), is a numbered
sequence; each step's failure has a defined outcome:

exactly_once (one Kafka transaction per interval, begun lazily at the first record):
  1. alerts and dead letters of the interval were sent inside the transaction as they happened;
  2. `send_offsets_to_transaction(next offsets, consumer.group_metadata())`;
  3. `commit_transaction()`.
  A failure in 1-3, or a crash anywhere, leaves the transaction open: the broker aborts it, no reader
  (read_committed) ever sees its records, and the input is read again from the last committed offsets.

at_least_once:
  1. `flush()` the producer and check every send of the interval succeeded (else: stop, commit nothing);
  2. commit the next offsets.
  A crash between sends and 2 repeats alerts on restart, always with the same `alert_id`.

Rebalance callbacks run on the consumer's network loop, where a blocking *consumer* call fails, so the
revocation checkpoint uses the producer only (it has its own network thread): in exactly_once mode it
commits the open transaction with the offsets while this member still belongs to the old generation. In
at_least_once mode revocation commits nothing: the next owner re-reads the uncommitted records, which
at-least-once allows.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import structlog

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import RecordSource
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.errors import BadRecord, FatalServiceError
from streamdrift.kafka.clients import (
    KafkaClients,
    RebalanceCallbacks,
    ensure_topics,
    offsets_to_commit,
    partition_counts,
    translated_errors,
)
from streamdrift.service.records import OutRecord, alert_record, dead_letter_record

POLL_TIMEOUT_MS = 200

# kafka-python's TopicPartition: a (topic, partition) named tuple. Only the adapter package imports kafka.
TopicPartition = Any


class DriftService:
    """One member of the streamdrift consumer group."""

    def __init__(
        self, config: StreamdriftConfig, clients: KafkaClients, *, stop: threading.Event | None = None
    ) -> None:
        self.config = config
        self.clients = clients
        self.stop = stop or threading.Event()
        self.exactly_once = config.processing.guarantee == "exactly_once"
        self.log = structlog.get_logger("streamdrift.service")
        self.decoder = EventDecoder(config.event_fields(), config.event_limits())
        self.monitor = Monitor(
            config.policies(), config_version=config.config_version, limits=config.monitor_limits()
        )
        self.model_partition: dict[str, TopicPartition] = {}
        self.pending: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self.in_transaction = False
        self.sends: list[Any] = []  # futures of the interval (at_least_once checks them at commit)
        self.lock = threading.Lock()  # the checkpoint state, shared with the rebalance listener
        self.totals: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.consumer: Any = None
        self.producer: Any = None

    # ---- lifecycle -------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until `stop` is set; returns after the final checkpoint. Raises on fatal errors."""
        config = self.config
        self._create_topics()
        if self.exactly_once:
            transactional_id = f"streamdrift-{config.kafka.group_id}-{uuid.uuid4().hex[:12]}"
            self.producer = self.clients.producer(
                transactional_id=transactional_id, transaction_timeout_ms=30_000
            )
            with translated_errors("initialising transactions"):
                self.producer.init_transactions()
        else:
            self.producer = self.clients.producer(enable_idempotence=True)
        self.consumer = self.clients.consumer(
            group_id=config.kafka.group_id,
            max_poll_records=config.processing.max_poll_records,
            auto_offset_reset=config.processing.auto_offset_reset,
            isolation_level="read_committed",
        )
        self.consumer.subscribe(
            config.topics.input, listener=RebalanceCallbacks(self.on_revoked, self.on_assigned)
        )
        self.log.info(
            "started",
            input=config.topics.input,
            alerts=config.topics.alerts,
            group_id=config.kafka.group_id,
            guarantee=config.processing.guarantee,
            config_version=config.config_version,
        )
        try:
            self._loop()
            with self.lock:
                self._checkpoint()
        finally:
            self._close()
        self.log.info("stopped", **self._summary_fields())

    def _create_topics(self) -> None:
        config = self.config
        admin = self.clients.admin()
        try:
            counts = partition_counts(admin, config.topics.input)
            for topic in config.topics.input:
                if topic not in counts:
                    self.log.warning("input topic does not exist yet; waiting for it", topic=topic)
            partitions = max(counts.values(), default=1)
            spec = {"num_partitions": partitions, "replication_factor": config.topics.replication_factor}
            created = ensure_topics(admin, {config.topics.alerts: spec, config.topics.dead_letter: spec})
            if created:
                self.log.info("created topics", topics=created, partitions=partitions)
        finally:
            admin.close()

    def _close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.producer is not None:
            self.producer.close(timeout=10)

    def _loop(self) -> None:
        interval = self.config.processing.commit_interval_ms / 1000
        summary_every = self.config.logging.summary_interval_s
        last_commit = last_summary = time.monotonic()
        since_summary = Counter[str]()
        while not self.stop.is_set():
            batch = self.consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
            with self.lock:
                for partition, records in batch.items():
                    self._process(partition, records)
                    since_summary["events"] += len(records)
                now = time.monotonic()
                if now - last_commit >= interval:
                    self._checkpoint()
                    last_commit = now
            if now - last_summary >= summary_every:
                elapsed = now - last_summary
                self.log.info(
                    "summary",
                    events_per_s=round(since_summary["events"] / elapsed, 1),
                    **self._summary_fields(),
                )
                since_summary.clear()
                last_summary = now

    # ---- processing ------------------------------------------------------------------------------

    def _process(self, partition: TopicPartition, records: list[Any]) -> None:
        topics = self.config.topics
        decode = self.decoder.decode
        process = self.monitor.process
        for record in records:
            try:
                event = decode(record.key, record.value)
            except BadRecord as error:
                self.dead_letters[error.kind] += 1
                self._send(
                    dead_letter_record(
                        topics.dead_letter,
                        error,
                        key=record.key,
                        value=record.value,
                        headers=list(record.headers or []),
                        source_topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                )
                continue
            self._claim(event.model_id, partition)
            source = RecordSource(
                topic=record.topic, partition=record.partition, offset=record.offset,
                timestamp_ms=record.timestamp,
            )  # fmt: skip
            for alert in process(event, source):
                self.totals[f"alerts_{alert.level}"] += 1
                self._send(alert_record(topics.alerts, alert))
        self.totals["events"] += len(records)
        self.pending[partition] = records[-1].offset + 1

    def _claim(self, model_id: str, partition: TopicPartition) -> None:
        home = self.model_partition.get(model_id)
        if home is None:
            self.model_partition[model_id] = partition
        elif home != partition:
            self.totals["model_in_two_partitions"] += 1
            if self.totals["model_in_two_partitions"] == 1:
                self.log.warning(
                    "a model arrives on two partitions: input is not keyed by model_id, so its detectors "
                    "see an interleaving that depends on partition order",
                    model_id=model_id,
                    first=str(home),
                    second=str(partition),
                )

    def _send(self, record: OutRecord) -> None:
        if self.exactly_once and not self.in_transaction:
            with translated_errors("beginning a transaction"):
                self.producer.begin_transaction()
            self.in_transaction = True
        with translated_errors("sending a record"):
            future = self.producer.send(
                record.topic, key=record.key, value=record.value, headers=record.headers
            )
        if not self.exactly_once:
            self.sends.append(future)

    # ---- checkpoint ------------------------------------------------------------------------------

    def _checkpoint(self, *, commit_offsets: bool = True) -> None:
        """Make the interval's alerts durable and commit the offsets they came from (see module doc)."""
        if not self.pending and not self.in_transaction:
            return
        offsets = offsets_to_commit(self.pending)
        if self.exactly_once:
            if not self.in_transaction:
                with translated_errors("beginning a transaction"):
                    self.producer.begin_transaction()
                self.in_transaction = True
            with translated_errors("committing the transaction"):
                if offsets:
                    self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
                self.producer.commit_transaction()
            self.in_transaction = False
        else:
            with translated_errors("flushing alerts"):
                self.producer.flush()
            failed = [future for future in self.sends if future.failed()]
            if failed:
                raise FatalServiceError(
                    f"{len(failed)} alert or dead-letter writes failed: {failed[0].exception}"
                )
            self.sends.clear()
            if commit_offsets and offsets:
                with translated_errors("committing offsets"):
                    self.consumer.commit(offsets)
        self.pending.clear()
        self.totals["checkpoints"] += 1

    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """On the consumer's network loop as a rebalance starts: finish the interval while we own it."""
        with self.lock:
            if self.exactly_once:
                self._checkpoint()
            else:
                self._checkpoint(commit_offsets=False)  # the next owner re-reads uncommitted input
        self.log.info("partitions revoked", partitions=sorted(str(tp) for tp in revoked))

    def on_assigned(self, owned: set[TopicPartition]) -> None:
        with self.lock:
            self.pending = {tp: offset for tp, offset in self.pending.items() if tp in owned}
            gone = [model for model, tp in self.model_partition.items() if tp not in owned]
            for model_id in gone:
                del self.model_partition[model_id]
                self.monitor.models.pop(model_id, None)
        self.log.info(
            "partitions assigned", partitions=sorted(str(tp) for tp in owned), dropped_models=len(gone)
        )

    def _summary_fields(self) -> dict[str, Any]:
        monitor = self.monitor
        return {
            "events": self.totals["events"],
            "alerts_drift": self.totals["alerts_drift"],
            "alerts_warning": self.totals["alerts_warning"],
            "dead_letters": dict(self.dead_letters),
            "skipped_values": dict(monitor.skipped),
            "suppressed_alerts": dict(monitor.suppressed),
            "models": len(monitor.models),
            "checkpoints": self.totals["checkpoints"],
        }
