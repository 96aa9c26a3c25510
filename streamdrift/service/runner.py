"""The service: wires the parts (docs/ARCHITECTURE.md, "The service's parts") and runs the loop.

One turn: raise what a callback left fatal, apply a config reload, start a producer if the last one was rolled
back, restore waiting partitions, poll, process each partition's batch and hand the outcome to the sinks,
forward (repartition mode), checkpoint once per `processing.commit_interval_ms`. A fault the service outlives
rolls the interval back and the loop carries on from the last checkpoint (recovery.py).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence

import structlog

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.errors import (
    CheckpointRefused,
    Fenced,
    KafkaUnavailable,
    StreamdriftError,
)
from streamdrift.ports import Bound, GroupConsumer, InRecord, TopicPartition, Transport
from streamdrift.service.checkpoint import Checkpoint
from streamdrift.service.counters import AlertCounts, Counters
from streamdrift.service.effects import Effects
from streamdrift.service.endpoints import serve
from streamdrift.service.fetching import Fetcher
from streamdrift.service.forwarding import Forwarder
from streamdrift.service.guarantees import AtLeastOnce, ExactlyOnce, Guarantee
from streamdrift.service.health import Health
from streamdrift.service.ledger import Ledger
from streamdrift.service.metrics import ServiceMetrics
from streamdrift.service.processing import Outcome, Processor
from streamdrift.service.rebalance import Rebalancing
from streamdrift.service.recovery import Recovery
from streamdrift.service.reload import ReloadTrigger, reloaded_config
from streamdrift.service.restore import Restorer
from streamdrift.service.sinks import AlertSink, AlertsTopic
from streamdrift.service.state import StateStore, state_key
from streamdrift.service.summary import summary_fields
from streamdrift.service.topics import create_topics


class _NoBuffers:
    def drop(self, tp: TopicPartition) -> None:
        """No forwarding buffers outside repartition mode."""


class DriftService:
    """One member of the streamdrift consumer group."""

    def __init__(
        self,
        config: StreamdriftConfig,
        transport: Transport,
        *,
        stop: threading.Event | None = None,
        reload: ReloadTrigger | None = None,
        rebuild_from: Bound | None = None,
    ) -> None:
        self.config, self.transport, self.reload = config, transport, reload
        self.stop = stop or threading.Event()
        self.log = structlog.get_logger("streamdrift.service")
        processing, topics = config.processing, config.topics
        self.instance_id = (
            processing.instance_id or os.environ.get("STREAMDRIFT_INSTANCE_ID") or socket.gethostname()
        )
        self.lock = threading.RLock()  # the loop's state, shared with the rebalance callbacks
        self.counters = counters = Counters(alert_counts=AlertCounts(config.http.max_model_labels))
        self.monitor = monitor = Monitor(
            config.policies(), config_version=config.config_version, limits=config.monitor_limits()
        )
        decoder = EventDecoder(config.event_fields(), config.event_limits())
        repartition_topic = config.repartition_topic() if processing.repartition else None
        self.forwarder = None if repartition_topic is None else Forwarder(
            repartition_topic=repartition_topic, dead_letter_topic=topics.dead_letter, decoder=decoder,
            counters=counters, wait_s=processing.repartition_wait_ms / 1000,
            max_buffered=4 * processing.max_poll_records,
        )  # fmt: skip
        forwarder = self.forwarder
        self.subscription = [*topics.input, *([] if repartition_topic is None else [repartition_topic])]
        # Late labels: co-partitioned with the stateful topic, so label partition p meets the models of
        # partition p (the range assignor gives both to the same member).
        self.subscription += [] if topics.labels is None else [topics.labels]
        self.ledger = ledger = Ledger(
            labels_topic=topics.labels,
            forwards=(lambda tp: False) if forwarder is None else forwarder.forwards,
        )
        self.guarantee: Guarantee = (
            ExactlyOnce(
                transport,
                transactional_id=f"streamdrift-{config.kafka.group_id}-{self.instance_id}",
                transaction_timeout_ms=processing.transaction_timeout_ms,
                counters=counters,
            )
            if processing.guarantee == "exactly_once"
            else AtLeastOnce(transport, counters=counters)
        )
        self.sinks: Sequence[AlertSink] = [AlertsTopic(topics.alerts, self.guarantee)]
        # Transactional calls are bounded by this (ports.Producer); the loop may sit in one that long, or in a
        # restore.
        call_timeout_s = config.kafka.request_timeout_ms / 1000 + 10
        self.health = Health(
            counters, unhealthy_after_s=max(call_timeout_s, processing.restore_timeout_s) + 30
        )
        self.metrics = ServiceMetrics(counters, monitor, self.health.readiness)
        self.effects = effects = Effects(monitor, forwarder or _NoBuffers(), counters)
        self.state = StateStore(config, transport, state_key(config), counters)
        self.checkpoint = Checkpoint(
            ledger=ledger, models=monitor, state=self.state, guarantee=self.guarantee, sinks=self.sinks,
            effects=effects, counters=counters, duration=self.metrics.checkpoint_seconds,
            settings=lambda: self.config.processing,
        )  # fmt: skip
        self.processor = Processor(
            decoder=decoder, monitor=monitor, ledger=ledger, counters=counters,
            dead_letter_topic=topics.dead_letter, repartition_topic=repartition_topic,
            labels_topic=topics.labels, stateful_topic=repartition_topic or topics.input[0],
        )  # fmt: skip
        self.restorer = Restorer(
            ledger=ledger, monitor=monitor, state=self.state, effects=effects, counters=counters,
            forwarder=forwarder, labels_topic=topics.labels, auto_offset_reset=processing.auto_offset_reset,
            rebuild_from=rebuild_from, lock=self.lock, settle=self.guarantee.settle,
        )  # fmt: skip
        self.rebalancing = Rebalancing(
            ledger=ledger, checkpoint=self.checkpoint, guarantee=self.guarantee, effects=effects,
            counters=counters, lock=self.lock,
            commit_offsets_on_revoke=processing.guarantee == "exactly_once",
            stuck_after_s=max(10.0, processing.session_timeout_ms / 1000),
        )  # fmt: skip
        self.fetcher = Fetcher(
            ledger=ledger, counters=counters, writer=self.guarantee, dead_letter_topic=topics.dead_letter,
            skip=processing.skip_unreadable_batches, lock=self.lock,
        )  # fmt: skip
        self.recovery = Recovery(
            transport=transport, checkpoint=self.checkpoint, guarantee=self.guarantee,
            rebalancing=self.rebalancing, counters=counters, lock=self.lock,
        )  # fmt: skip

    @property
    def ready(self) -> bool:
        return self.health.readiness()[0]

    def run(self) -> None:
        """Run until `stop` is set; returns after the final checkpoint. Raises on fatal errors."""
        endpoints = serve(self.config.http, self.metrics.registry, self.health)
        try:
            self._run()
        finally:
            if endpoints is not None:
                endpoints.close()

    def _run(self) -> None:
        config = self.config
        admin = self.transport.connect()
        try:
            create_topics(config, admin, self.stop, alive=self.counters.turned)
        finally:
            admin.close()
        self.guarantee.start()
        self.consumer = consumer = self.transport.group_consumer(
            group_id=config.kafka.group_id, instance_id=self.instance_id,
            max_poll_records=config.processing.max_poll_records,
            auto_offset_reset=config.processing.auto_offset_reset,
            session_timeout_ms=config.processing.session_timeout_ms,
            max_poll_interval_ms=config.processing.max_poll_interval_ms,
        )  # fmt: skip
        self.effects.consumer = self.rebalancing.consumer = consumer
        consumer.subscribe(self.subscription, self.rebalancing)
        self.log.info(
            "started", input=config.topics.input,
            repartition=None if self.forwarder is None else self.forwarder.topic,
            alerts=config.topics.alerts, group_id=config.kafka.group_id, instance_id=self.instance_id,
            guarantee=config.processing.guarantee, config_version=config.config_version,
            transport=self.transport.name,
        )  # fmt: skip
        try:
            self._loop(consumer)
            with self.lock:
                self.checkpoint.run(consumer, all_snapshots=True)
        finally:
            self._close(consumer)
        self.log.info("stopped", **self.summary())

    def _close(self, consumer: GroupConsumer) -> None:
        """Close the clients; a failure to close is logged, never raised over what ended the run."""
        for close in (consumer.close, self.guarantee.close):
            try:
                close()
            except Exception as exc:  # best effort: the run is over either way
                self.log.warning("closing a Kafka client failed", error=f"{type(exc).__name__}: {exc}")

    def _loop(self, consumer: GroupConsumer) -> None:
        interval = self.config.processing.commit_interval_ms / 1000
        summary_every = self.config.logging.summary_interval_s
        last_commit = last_summary = time.monotonic()
        events_at_summary = 0
        while not self.stop.is_set():
            self.counters.turned()
            try:
                if self.rebalancing.fatal is not None:
                    raise self.rebalancing.fatal
                if self.reload is not None and self.reload.due(self.counters.loop_alive_at):
                    self._reload(self.reload, consumer)
                self.guarantee.start()
                if self.ledger.waiting:
                    self.restorer.restore(consumer)
                batch = self.fetcher.poll(consumer)
                with self.lock:
                    for tp, records in batch.items():
                        self._handle(consumer, tp, records)
                    now = time.monotonic()
                    if self.forwarder is not None:
                        out, reached = self.forwarder.release(consumer, now)
                        for record in out:
                            self.guarantee.write(record)
                        for tp, end in reached.items():
                            self.ledger.forwarded_up_to(tp, end)
                    if now - last_commit >= interval:
                        self.checkpoint.run(consumer)
                        self.health.measure_lag(self.ledger.held, consumer)
                        last_commit = now
                self.rebalancing.unstick(now)
                self.recovery.succeeded()
            except (CheckpointRefused, KafkaUnavailable, Fenced) as exc:
                self.stop.wait(self.recovery.recover(exc))
                now = time.monotonic()
            self.health.check(now, consumer, held=len(self.ledger.held), waiting=len(self.ledger.waiting))
            if now - last_summary >= summary_every:
                events = self.counters.totals["events"]
                rate = round((events - events_at_summary) / (now - last_summary), 1)
                self.log.info("summary", events_per_s=rate, **self.summary())
                events_at_summary, last_summary = events, now

    def _handle(self, consumer: GroupConsumer, tp: TopicPartition, records: Sequence[InRecord]) -> None:
        """One partition's fetched records: forwarded, or processed and the outcome handed on."""
        ledger = self.ledger
        if not ledger.processes(tp):
            if tp in ledger.waiting:  # fetched before its pause took effect: read again once restored
                consumer.seek(tp, records[0].offset)
            return
        age = self.processor.consumed(tp, records, time.time() * 1000)
        if age is not None:
            self.metrics.record_age_seconds.observe(age)
        if self.forwarder is not None and self.forwarder.forwards(tp):
            self.forwarder.add(tp, records)
            return
        self._deliver(self.processor.process(tp, records))
        ledger.processed_up_to(tp, records[-1].offset + 1)

    def _deliver(self, outcome: Outcome) -> None:
        totals, alert_counts = self.counters.totals, self.counters.alert_counts
        for alert in outcome.alerts:
            totals[f"alerts_{alert.level}"] += 1
            alert_counts.add(alert.model_id, alert.signal, alert.detector_type, alert.level)
            for sink in self.sinks:
                sink.add(alert)
        for record in outcome.records:
            self.guarantee.write(record)
        delays = self.monitor.label_delays_ms
        if delays:
            observe = self.metrics.label_delay_seconds.observe
            for delay in delays:
                observe(max(0.0, delay / 1000))
            delays.clear()

    def _reload(self, trigger: ReloadTrigger, consumer: GroupConsumer) -> None:
        """Apply a changed config file's detection settings (see reload.py); a bad file changes nothing."""
        merged = reloaded_config(trigger, self.config)
        if merged is None:
            return
        with self.lock:
            try:
                # A durable cut first: a restart replays from here under the new file, as this run goes on.
                self.checkpoint.run(consumer, all_snapshots=True)
            except StreamdriftError:
                trigger.requested.set()  # retried once the loop has recovered
                raise
            restarted = self.monitor.reconfigure(merged.policies(), config_version=merged.config_version)
            self.config = merged
            applied_at = {
                f"{topic}/{partition}": offset
                for (topic, partition), offset in self.counters.positions.items()
            }
        self.log.info(
            "config reloaded", config_version=merged.config_version, detectors_restarted=restarted,
            applied_at=applied_at,
        )  # fmt: skip

    def summary(self) -> dict[str, object]:
        """The figures of the periodic `summary` and final `stopped` log lines."""
        return summary_fields(
            self.counters, self.monitor, ready=self.ready, waiting=len(self.ledger.waiting),
            labels=self.config.topics.labels is not None,
        )  # fmt: skip
