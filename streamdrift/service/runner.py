"""The run loop: restore, poll, detect, write alerts, dead letters and snapshots, checkpoint.

The checkpoint, once per `processing.commit_interval_ms` (and on revocation and shutdown), is a numbered
sequence; each step's failure has a defined outcome:

exactly_once (one Kafka transaction per interval, begun lazily at the first record):
  1. alerts and dead letters of the interval were sent inside the transaction as they happened;
  2. a snapshot of each changed model that is due (never snapshotted, or not for `snapshot_interval_ms`;
     every changed model on revocation and shutdown) goes to the state topic, partition = the model's input
     partition, holding the next input offset it reflects;
  3. `send_offsets_to_transaction(next offsets, consumer.group_metadata())`;
  4. `commit_transaction()`.
  A crash anywhere leaves the transaction open: the broker aborts it and no read_committed reader sees its
  records. A failure in 1-4 aborts it and rolls back: every model is dropped and restored. Either way the
  alerts equal those of an uninterrupted run.

at_least_once:
  1. alerts and dead letters were sent as they happened; 2. due snapshots are sent; 3. `flush()`, and every
  send of the interval must have succeeded; 4. commit the offsets. A crash between 1 and 4 may repeat alerts
  on restart, always with the same `alert_id`.

Restore: on assignment a partition stays paused until its models are restored from its state partition (to
the end, read committed). It is then read again from the oldest snapshot offset of its models: events below
the committed offset only bring detectors up to date (their alerts and dead letters were written before, so
they are not written again), and events a model's snapshot already reflects are skipped for that model.

Rebalance callbacks run on the consumer's network loop, where a blocking *consumer* call fails, so the
revocation checkpoint uses the producer only (its own network thread), while this member still belongs to
the old generation. In at_least_once mode revocation flushes but commits no offsets. Partitions lost by
eviction (a stall past max_poll_interval_ms) cannot be committed: the transaction is aborted and everything
is restored.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from operator import itemgetter
from typing import Any

import structlog

from streamdrift.config import load_config
from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.event import MISROUTED_LABEL, EventDecoder, InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.core.snapshot import REJECT_VERSION, SnapshotRejected
from streamdrift.errors import (
    BadRecord,
    CheckpointRefused,
    ConfigError,
    FatalServiceError,
    Fenced,
    KafkaUnavailable,
    StreamdriftError,
    UnreadableBatch,
)
from streamdrift.kafka.clients import (
    KafkaClients,
    RebalanceCallbacks,
    abandon_producer,
    bounded,
    committed_position,
    ensure_topics,
    offsets_to_commit,
    partition_counts,
    read_to_end,
    rejoin_group,
    seconds_since_heartbeat,
    topic_partition,
    translated_errors,
)
from streamdrift.kafka.ranges import Bound, offset_at
from streamdrift.service.endpoints import Endpoints
from streamdrift.service.metrics import AlertCounts, ServiceMetrics
from streamdrift.service.records import (
    OutRecord,
    alert_record,
    dead_letter_record,
    forwarded_record,
    record_source,
)
from streamdrift.service.reload import ReloadTrigger, merge_reloadable
from streamdrift.service.repartition import TimestampMerge
from streamdrift.service.state import StateStore, state_key

POLL_TIMEOUT_MS = 200
# Compaction never touches the active segment: small segments let the cleaner keep the state topic near
# one snapshot per model, so a restore reads little more than the latest state.
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.2",
}
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
HEARTBEAT_SILENCE_S = 10.0  # no heartbeat answered for this long (3 s interval): the broker is away
REFUSED_FOR_AT_MOST_S = 120.0  # checkpoints refused in a row for longer than this: give up (exit non-zero)
SCATTER_WARNINGS = 20  # models logged by name when input is not keyed by model_id; all are counted
LOOP_BLOCKED_S = 5.0  # the loop stuck in one call this long (a broker outage, a stall): not ready
FETCH_ATTEMPTS = 3  # an unreadable record batch is fetched this many times before it is fatal (or skipped)
UNREADABLE_BATCH = "unreadable_batch"  # the dead-letter kind of a skipped batch

# kafka-python's TopicPartition: a (topic, partition) named tuple. Only the adapter package imports kafka.
TopicPartition = Any


class DriftService:
    """One member of the streamdrift consumer group."""

    def __init__(
        self,
        config: StreamdriftConfig,
        clients: KafkaClients,
        *,
        stop: threading.Event | None = None,
        reload: ReloadTrigger | None = None,
        rebuild_from: Bound | None = None,
    ) -> None:
        self.config = config
        # `run --rebuild-state-from`: every restore also re-reads the input from here (alerts muted), so that
        # models whose snapshots were rejected (another river version) are rebuilt, not started fresh.
        self.rebuild_from = rebuild_from
        self.reload = reload
        self.clients = clients
        self.stop = stop or threading.Event()
        self.exactly_once = config.processing.guarantee == "exactly_once"
        # Repartition mode: input partitions only forward (no state); detection reads the internal topic.
        self.repartition_topic = config.repartition_topic() if config.processing.repartition else None
        self.subscription = list(config.topics.input)
        if self.repartition_topic is not None:
            self.subscription.append(self.repartition_topic)
        # Late labels: co-partitioned with the stateful topic, so label partition p meets the models of
        # partition p (the range assignor gives both to the same member).
        self.labels_topic = config.topics.labels
        if self.labels_topic is not None:
            self.subscription.append(self.labels_topic)
        self.merge: TimestampMerge[TopicPartition, Any] = TimestampMerge(
            wait_s=config.processing.repartition_wait_ms / 1000,
            max_buffered=4 * config.processing.max_poll_records,
        )
        self.merge_paused: set[TopicPartition] = set()  # input partitions paused while their buffer is full
        self.log = structlog.get_logger("streamdrift.service")
        self.state = StateStore(config, clients, state_key(config))
        self.decoder = EventDecoder(config.event_fields(), config.event_limits())
        self.monitor = Monitor(
            config.policies(), config_version=config.config_version, limits=config.monitor_limits()
        )
        self.instance_id = (
            config.processing.instance_id or os.environ.get("STREAMDRIFT_INSTANCE_ID") or socket.gethostname()
        )
        # Checkpoint state, shared with the rebalance callbacks (they run on the consumer's network loop).
        self.lock = threading.RLock()
        self.owned: set[TopicPartition] = set()  # assigned and restored: processed
        self.restoring: set[TopicPartition] = set()  # assigned, paused until their models are restored
        self.pending: dict[TopicPartition, int] = {}  # next input offset to commit, per partition
        self.model_partition: dict[str, TopicPartition] = {}
        self.next_offset: dict[str, int] = {}  # per model: events before this are already in its state
        self.scattered_models: set[str] = set()  # models seen on two partitions, logged by name
        self.snapshot_at: dict[str, float] = {}  # per model: when its last snapshot was sent
        self.unsnapshotted_from: dict[str, int] = {}  # per model: its first event not in a snapshot yet
        self.unsnapshotted_labels_from: dict[str, int] = {}  # ... and its first label not in a snapshot
        # Per partition being replayed after a restore: the committed offset. Below it, events only bring
        # detectors up to date (their alerts and dead letters were written before); no offset is committed.
        self.replay_until: dict[TopicPartition, int] = {}
        self.in_transaction = False
        self._init_recovery()
        # kafka-python's transactional calls wait without a deadline; a broker outage must not hang us.
        self.call_timeout_s = config.kafka.request_timeout_ms / 1000 + 10
        self.last_checkpoint_ok = time.monotonic()
        self.sends: list[Any] = []  # futures of the interval (at_least_once checks them at commit)
        self.totals: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.consumer: Any = None
        self.producer: Any = None
        self.listener: RebalanceCallbacks | None = None
        self.broker_answering = True
        self.was_ready = False
        self.readiness_checked_at = 0.0
        # When the rebalance in progress began (a revocation not yet followed by an assignment). kafka-python
        # has been seen to leave a rejoin waiting for good; past this long the member joins afresh.
        self.rebalance_started_at: float | None = None
        self.rebalance_stuck_after_s = max(10.0, config.processing.session_timeout_ms / 1000)
        self._init_published()

    def _init_recovery(self) -> None:
        """What the loop keeps to recover from faults, and to tell the ones it must not outlive."""
        self.transaction_began: float | None = None  # when the open transaction began (monotonic)
        self.initializing: Any = None  # a transactional producer whose initialisation has not completed
        # An error a rebalance callback met that must end the service (they run on kafka-python's thread).
        self.fatal: FatalServiceError | None = None
        self.unreadable: tuple[tuple[str, int, int], int] | None = None  # (topic, partition, offset), fetches
        # Since when checkpoints have been refused without one succeeding (None: the last one succeeded). Not
        # since the last success: after a long outage the first refusal is normal, and is rejoined.
        self.refused_since: float | None = None

    def _init_published(self) -> None:
        """What the HTTP thread reads (see endpoints.py, metrics.py): plain counters and a heartbeat."""
        self.loop_alive_at = time.monotonic()
        self.events_by_topic: Counter[str] = Counter()
        self.bytes_by_topic: Counter[str] = Counter()
        self.alert_counts = AlertCounts(self.config.http.max_model_labels)
        self.positions: dict[TopicPartition, int] = {}  # next offset to read, per partition
        self.lag: dict[tuple[str, int], int] = {}
        self.metrics = ServiceMetrics(self)
        # The loop may legitimately sit in one call this long: a bounded transactional call, a restore.
        self.unhealthy_after_s = max(self.call_timeout_s, self.config.processing.restore_timeout_s) + 30
        self.endpoints: Endpoints | None = None

    @property
    def ready(self) -> bool:
        return self.readiness()[0]

    def readiness(self) -> tuple[bool, str]:
        """Ready (partitions assigned, every one restored, the broker answering, the loop not stuck in a
        call), or why not. Read by /readyz from any thread."""
        if self.restoring:
            return False, f"restoring the state of {len(self.restoring)} partitions"
        blocked = time.monotonic() - self.loop_alive_at
        if blocked > LOOP_BLOCKED_S:
            return False, f"the processing loop has been waiting on the broker for {blocked:.0f} s"
        if not self.broker_answering:
            return False, "the broker is not answering"
        if not self.owned:
            return False, "no partitions assigned"
        return True, "ok"

    def liveness(self) -> tuple[bool, str]:
        """/healthz: the processing loop keeps turning (callable from any thread)."""
        silent = time.monotonic() - self.loop_alive_at
        if silent > self.unhealthy_after_s:
            return False, f"the processing loop has not turned for {silent:.0f} s"
        return True, "ok"

    def _check_readiness(self, now: float) -> None:
        """Log when readiness changes; the broker counts as away when heartbeats stop being answered."""
        if now - self.readiness_checked_at < 1.0:
            return
        self.readiness_checked_at = now
        self.broker_answering = (
            seconds_since_heartbeat(self.consumer) <= HEARTBEAT_SILENCE_S or not self.owned
        )
        ready, reason = self.readiness()
        if ready != self.was_ready:
            self.log.info("ready" if ready else "not ready", reason=reason)
            self.was_ready = ready

    # ---- lifecycle -------------------------------------------------------------------------------

    def run(self) -> None:
        """Run until `stop` is set; returns after the final checkpoint. Raises on fatal errors."""
        self._start_endpoints()
        try:
            self._run()
        finally:
            if self.endpoints is not None:
                self.endpoints.close()

    def _start_endpoints(self) -> None:
        settings = self.config.http
        if not settings.enabled:
            return
        try:
            self.endpoints = Endpoints(
                settings.host, settings.port, registry=self.metrics.registry,
                healthy=self.liveness, ready=self.readiness,
            )  # fmt: skip
        except OSError as exc:
            raise FatalServiceError(
                f"cannot serve HTTP on {settings.host}:{settings.port} ({exc.strerror or exc}); "
                "set http.port to a free port (0: any) or http.enabled: false"
            ) from exc
        self.endpoints.start()
        host, port = self.endpoints.address
        self.log.info("http listening", host=host, port=port, paths=["/metrics", "/healthz", "/readyz"])

    def _run(self) -> None:
        config = self.config
        self._create_topics()
        self._start_producer()
        self.consumer = self.clients.consumer(
            group_id=config.kafka.group_id,
            max_poll_records=config.processing.max_poll_records,
            auto_offset_reset=config.processing.auto_offset_reset,
            isolation_level="read_committed",
            # Static membership: a restarted replica takes its partitions back without a rebalance.
            group_instance_id=self.instance_id,
            session_timeout_ms=config.processing.session_timeout_ms,
            max_poll_interval_ms=config.processing.max_poll_interval_ms,
        )
        self.listener = RebalanceCallbacks(self.on_revoked, self.on_assigned, self.on_lost)
        self.consumer.subscribe(self.subscription, listener=self.listener)
        self.log.info(
            "started",
            input=config.topics.input,
            repartition=self.repartition_topic,
            alerts=config.topics.alerts,
            group_id=config.kafka.group_id,
            instance_id=self.instance_id,
            guarantee=config.processing.guarantee,
            config_version=config.config_version,
        )
        try:
            self._loop()
            with self.lock:
                self._checkpoint(all_snapshots=True)
        finally:
            self._close()
        self.log.info("stopped", **self._summary_fields())

    def _start_producer(self) -> None:
        if not self.exactly_once:
            self.producer = self.clients.producer(enable_idempotence=True)
            return
        producer = self.initializing
        if producer is None:
            # A stable id per replica: a restarted replica (or a replaced producer) fences the previous one.
            # init_transactions gives up after max_block_ms, before `bounded` would abandon it.
            producer = self.initializing = self.clients.producer(
                transactional_id=f"streamdrift-{self.config.kafka.group_id}-{self.instance_id}",
                transaction_timeout_ms=self.config.processing.transaction_timeout_ms,
                max_block_ms=self.config.kafka.request_timeout_ms,
            )
        try:
            bounded("initialising transactions", self.call_timeout_s, producer.init_transactions)
        except KafkaUnavailable:
            # Unanswered: retried on this same producer, which goes on waiting for its first request. A new
            # producer's request would race it, and whichever the broker answered last would fence the other.
            raise
        except BaseException:
            self.initializing = None
            abandon_producer(producer)
            raise
        self.initializing = None
        self.producer = producer

    def _replace_producer(self) -> None:
        """A transactional call went unanswered: abandon this producer; the loop starts a new one."""
        if self.producer is not None:
            abandon_producer(self.producer)
            self.producer = None
            self.totals["producers_replaced"] += 1

    def _create_topics(self) -> None:
        config = self.config
        topics = config.topics
        admin = self.clients.connect()
        try:
            counts = self._input_partition_counts(admin)
            wanted: dict[str, dict[str, Any]] = {}
            if self.repartition_topic is not None:
                # State is co-partitioned with the internal topic, which has the largest input's count.
                internal = self.repartition_topic
                partitions = partition_counts(admin, [internal]).get(internal) or max(counts.values())
                wanted[internal] = {
                    "num_partitions": partitions,
                    "replication_factor": topics.replication_factor,
                }
                stateful = f"the repartition topic {internal}"
            else:
                if len(set(counts.values())) > 1:
                    raise FatalServiceError(
                        f"input topics have different partition counts ({counts}); the state topic is "
                        "co-partitioned with the input, so they must all have the same count "
                        "(or set processing.repartition: true)"
                    )
                partitions = next(iter(counts.values()))
                stateful = "the input"
            existing = partition_counts(admin, [topics.state]).get(topics.state)
            if existing is not None and existing != partitions:
                raise FatalServiceError(
                    f"state topic {topics.state} has {existing} partitions but {stateful} has {partitions}; "
                    "it must be co-partitioned: delete it (state restarts fresh) or name another topics.state"
                )
            if topics.labels is not None:
                labels = partition_counts(admin, [topics.labels]).get(topics.labels)
                if labels is not None and labels != partitions:
                    raise FatalServiceError(
                        f"labels topic {topics.labels} has {labels} partitions but {stateful} has "
                        f"{partitions}; labels meet their model's state only when both are co-partitioned "
                        "(same partition count, keyed by model_id)"
                    )
            spec: dict[str, Any] = {
                "num_partitions": partitions,
                "replication_factor": topics.replication_factor,
            }
            created = ensure_topics(
                admin,
                {
                    topics.alerts: spec,
                    topics.dead_letter: spec,
                    topics.state: {**spec, "configs": STATE_TOPIC_CONFIG},
                    **({} if topics.labels is None else {topics.labels: spec}),
                    **wanted,
                },
            )
            if created:
                self.log.info("created topics", topics=created, partitions=partitions)
        finally:
            admin.close()

    def _input_partition_counts(self, admin: Any) -> dict[str, int]:
        """Wait for every input topic to exist; the state topic's partition count comes from them."""
        inputs = self.config.topics.input
        last_log = 0.0
        while True:
            counts = partition_counts(admin, inputs)
            missing = [topic for topic in inputs if topic not in counts]
            if not missing:
                return counts
            if self.stop.is_set():
                raise FatalServiceError(f"stopped while waiting for input topics {missing}")
            self.loop_alive_at = time.monotonic()  # waiting for topics is alive, not stuck
            if time.monotonic() - last_log > 30:
                self.log.warning("waiting for input topics to exist", missing=missing)
                last_log = time.monotonic()
            self.stop.wait(1.0)

    def _close(self) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.producer is not None:
            self.producer.close(timeout=10)
        if self.initializing is not None:
            abandon_producer(self.initializing)

    def _loop(self) -> None:
        interval = self.config.processing.commit_interval_ms / 1000
        summary_every = self.config.logging.summary_interval_s
        last_commit = last_summary = time.monotonic()
        events_at_summary = 0
        failures = 0
        while not self.stop.is_set():
            self.loop_alive_at = time.monotonic()
            try:
                if self.fatal is not None:
                    raise self.fatal
                if self.reload is not None and self.reload.due(self.loop_alive_at):
                    self._reload(self.reload)
                if self.producer is None:
                    self._start_producer()
                if self.restoring:
                    self._restore()
                batch = self._poll()
                with self.lock:
                    for partition, records in batch.items():
                        self._process(partition, records)
                    now = time.monotonic()
                    if self.repartition_topic is not None:
                        self._forward(now)
                    if now - last_commit >= interval:
                        self._checkpoint()
                        self._measure_lag()
                        last_commit = now
                self._unstick_rebalance(now)
                failures = 0
                self._check_readiness(now)
            except (CheckpointRefused, KafkaUnavailable, Fenced) as exc:
                self._recover(exc)
                self.stop.wait(RETRY_BACKOFF_S[min(failures, len(RETRY_BACKOFF_S) - 1)])
                failures += 1
                now = time.monotonic()
                self._check_readiness(now)
            if now - last_summary >= summary_every:
                self._log_summary(now - last_summary, self.totals["events"] - events_at_summary)
                events_at_summary = self.totals["events"]
                last_summary = now

    def _recover(self, exc: CheckpointRefused | KafkaUnavailable | Fenced) -> None:
        """Undo the open interval after a failure the service outlives; raises what it does not outlive."""
        if isinstance(exc, CheckpointRefused):
            self._rejoin(exc)
            return
        if isinstance(exc, Fenced):
            if not self._own_transaction_timed_out():
                raise exc  # another instance with this id: this one must stop
            # The broker ended our transaction itself (open past transaction_timeout_ms: a long stall, a long
            # broker pause), which fences the producer's epoch: roll back with a new producer.
            message = "the broker aborted the open transaction after processing.transaction_timeout_ms"
        else:
            # The broker is away, or a transactional call failed: processing resumes from the last checkpoint
            # once the broker answers again. Unless it refuses us for good (credentials, TLS).
            self.clients.raise_if_misconfigured()
            message = "broker unavailable or a transactional call failed"
        self.log.warning(f"{message}; rolling back to the last checkpoint", error=str(exc))
        self.totals["checkpoint_failures"] += 1
        with self.lock:
            self._rollback()

    def _own_transaction_timed_out(self) -> bool:
        """Whether the open transaction has been open for transaction_timeout_ms: a fence is then the broker's
        own abort of it (it bumps the producer's epoch), not a newer instance with our transactional id."""
        began = self.transaction_began
        timeout_s = self.config.processing.transaction_timeout_ms / 1000
        return began is not None and time.monotonic() - began >= timeout_s

    def _poll(self) -> dict[TopicPartition, list[Any]]:
        """The next fetched records. A batch that cannot be read is fetched again (`FETCH_ATTEMPTS` times in
        all), then skipped into the dead-letter topic if `processing.skip_unreadable_batches`, else fatal."""
        try:
            with translated_errors("reading input"):
                batch: dict[TopicPartition, list[Any]] = self.consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        except UnreadableBatch as exc:
            where = (exc.topic, exc.partition, exc.offset)
            fetches = self.unreadable[1] + 1 if self.unreadable and self.unreadable[0] == where else 1
            self.unreadable = (where, fetches)
            tp = topic_partition(exc.topic, exc.partition)
            if fetches < FETCH_ATTEMPTS:
                self.log.warning("unreadable record batch; fetching it again", error=str(exc), tries=fetches)
                self.consumer.seek(tp, exc.offset)
            elif self.config.processing.skip_unreadable_batches:
                with self.lock:
                    self._skip_unreadable(tp, exc)
            else:
                raise FatalServiceError(_unreadable_message(exc, fetches)) from exc
            return {}
        return batch

    def _skip_unreadable(self, tp: TopicPartition, exc: UnreadableBatch) -> None:
        """Move past a damaged batch: one dead letter names its offsets (only when live: a replay of it was
        skipped and dead-lettered before), and its end is committed like processed input."""
        end = exc.end if exc.end is not None and exc.end > exc.offset else exc.offset + 1
        replay_end = self.replay_until.get(tp, -1)
        if exc.offset >= replay_end:
            self.dead_letters[UNREADABLE_BATCH] += 1
            error = BadRecord(UNREADABLE_BATCH, f"offsets {exc.offset} to {end - 1} skipped: {exc.reason}")
            record = dead_letter_record(
                self.config.topics.dead_letter, error, key=None, value=b"", headers=[],
                source_topic=exc.topic, partition=exc.partition, offset=exc.offset,
            )  # fmt: skip
            self._send(record)
        self.log.warning("unreadable record batch skipped", error=str(exc), next_offset=end)
        self.consumer.seek(tp, end)
        if tp in self.owned and not self._forwards(tp):
            self._processed_up_to(tp, end, replay_end)

    def _reload(self, trigger: ReloadTrigger) -> None:
        """Apply a changed config file's detection settings (see reload.py); a bad file changes nothing."""
        try:
            new = load_config(trigger.path)
        except ConfigError as exc:
            for problem in exc.problems:
                self.log.error("config reload refused", problem=problem)
            self.log.warning(
                "config reload refused; running on the previous config",
                config_version=self.config.config_version,
                problems=len(exc.problems),
            )
            return
        merged, ignored = merge_reloadable(self.config, new)
        if ignored:
            self.log.warning("config changes that need a restart were not applied", sections=ignored)
        if merged is self.config:
            self.log.info(
                "config reloaded: no detection setting changed", config_version=merged.config_version
            )
            return
        with self.lock:
            try:
                # A durable cut first: a restart replays from here under the new file, as this run goes on.
                self._checkpoint(all_snapshots=True)
            except StreamdriftError:
                trigger.requested.set()  # retried once the loop has recovered
                raise
            restarted = self.monitor.reconfigure(merged.policies(), config_version=merged.config_version)
            self.config = merged
            applied_at = {f"{tp.topic}/{tp.partition}": offset for tp, offset in self.positions.items()}
        self.log.info(
            "config reloaded",
            config_version=merged.config_version,
            detectors_restarted=restarted,
            applied_at=applied_at,
        )

    def _unstick_rebalance(self, now: float) -> None:
        """Join the group afresh when a rebalance has not completed for `rebalance_stuck_after_s`."""
        started = self.rebalance_started_at
        if started is None or now - started < self.rebalance_stuck_after_s:
            return
        self.log.warning(
            "the rebalance has not completed; joining the group again", waited_s=round(now - started, 1)
        )
        self.totals["rebalances_restarted"] += 1
        with self.lock:
            self._join_again()
            self.rebalance_started_at = now

    def _join_again(self) -> None:
        assert self.listener is not None
        rejoin_group(self.consumer, self.subscription, self.listener)

    def _rejoin(self, refused: CheckpointRefused) -> None:
        """The group moved on without us (an eviction after a stall, a rebalance we missed): the interval
        was rolled back; join again and redo it from the last checkpoint."""
        now = time.monotonic()
        if self.refused_since is None:
            self.refused_since = now
        elif now - self.refused_since > REFUSED_FOR_AT_MOST_S:
            raise FatalServiceError(
                f"checkpoints refused for {REFUSED_FOR_AT_MOST_S:.0f} s: {refused}"
            ) from refused
        self.totals["checkpoint_failures"] += 1
        self.log.warning(
            "checkpoint refused; rejoining the group and redoing the interval", error=str(refused)
        )
        with self.lock:
            self._join_again()
            # Models were dropped by the rollback; the next assignment restores them.
            self.owned.clear()
            self.restoring.clear()

    # ---- processing ------------------------------------------------------------------------------

    def _process(self, partition: TopicPartition, records: list[Any]) -> None:
        if partition not in self.owned:
            if partition in self.restoring:
                # Fetched before the pause took effect: read these again once the partition is restored.
                self.consumer.seek(partition, records[0].offset)
            return
        self._count_consumed(partition, records)
        if self._forwards(partition):
            self.merge.add(partition, records)
            return
        if partition.topic == self.labels_topic:
            self._process_labels(partition, records)
            return
        from_repartition = partition.topic == self.repartition_topic
        replay_end = self.replay_until.get(partition, -1)
        if records[0].offset < replay_end <= records[-1].offset:
            # The end of a replay: its part only brings detectors up to date, the rest is live.
            cut = next(i for i, record in enumerate(records) if record.offset >= replay_end)
            self._process_events(partition, records[:cut], from_repartition, live=False)
            self._process_events(partition, records[cut:], from_repartition, live=True)
        else:
            self._process_events(partition, records, from_repartition, live=records[0].offset >= replay_end)
        self.totals["events"] += len(records)
        self._processed_up_to(partition, records[-1].offset + 1, replay_end)

    def _process_events(
        self, partition: TopicPartition, records: list[Any], from_repartition: bool, *, live: bool
    ) -> None:
        """Decode, then each model's events of the batch at once (Monitor.process_batch); the alerts are
        published in record order, as one event at a time would have them.

        A replayed event (live False) only brings detectors up to date; the core still returns the alerts of
        late labels it releases that were not published before (labels.py)."""
        decode = self.decoder.decode
        next_offset = self.next_offset
        model_partition = self.model_partition
        runs: dict[str, tuple[list[InferenceEvent], list[Any], bool]] = {}
        # Once per record: locals over attributes, the rare cases (a model new here or homed elsewhere, a
        # re-read event) off the common path.
        for record in records:
            try:
                event = decode(record.key, record.value)
            except BadRecord as error:
                if live:
                    self._dead_letter(error, record)
                continue
            model_id = event.model_id
            home = model_partition.get(model_id)
            at_home = home == partition  # offsets order events within one partition only
            if not at_home:
                at_home = self._claim(model_id, partition) == partition
            elif record.offset < next_offset.get(model_id, -1):
                self.totals["already_applied"] += 1  # a re-read event its restored state already reflects
                continue
            run = runs.get(model_id)
            if run is None:
                run = runs[model_id] = ([], [], at_home)
            run[0].append(event)
            run[1].append(record)
        process_batch = self.monitor.process_batch
        unsnapshotted = self.unsnapshotted_from
        found: list[tuple[int, list[DriftAlert]]] = []
        for model_id, (events, kept, at_home) in runs.items():

            def source(index: int, kept: list[Any] = kept) -> RecordSource:
                return record_source(kept[index], from_repartition)

            for index, alerts in process_batch(model_id, events, source, live=live):
                found.append((kept[index].offset, alerts))
            if at_home:
                next_offset[model_id] = kept[-1].offset + 1
                if model_id not in unsnapshotted:
                    unsnapshotted[model_id] = kept[0].offset
            if not live:
                self.totals["replayed"] += len(events)
        found.sort(key=itemgetter(0))
        for _, alerts in found:
            self._publish(alerts)

    def _processed_up_to(self, partition: TopicPartition, end: int, replay_end: int) -> None:
        """Everything before `end` is processed: commit it at the next checkpoint, unless still replaying."""
        if end >= replay_end:
            self.pending[partition] = end
            self.replay_until.pop(partition, None)

    def _publish(self, alerts: list[DriftAlert]) -> None:
        topic = self.config.topics.alerts
        for alert in alerts:
            self.totals[f"alerts_{alert.level}"] += 1
            self.alert_counts.add(alert.model_id, alert.signal, alert.detector_type, alert.level)
            self._send(alert_record(topic, alert))

    def _process_labels(self, partition: TopicPartition, records: list[Any]) -> None:
        """Late labels: each resolves an earlier prediction of its model (see core/labels.py).

        Label partition p serves the models whose home is partition p of the stateful topic; a label for a
        model that lives elsewhere is dead-lettered (the labels topic is not keyed by model_id). A label
        its model's restored state already reflects is skipped.
        """
        monitor = self.monitor
        replay_end = self.replay_until.get(partition, -1)
        home_of_new = self._stateful_partition(partition.partition)
        for record in records:
            live = record.offset >= replay_end
            try:
                label = self.decoder.decode_label(record.key, record.value)
                model_id = label.model_id
                home = self.model_partition.get(model_id)
                if home is None and home_of_new in self.owned and record.key == model_id.encode():
                    # A label before any prediction of its model: keyed by model_id, it is on the partition
                    # the model's events are on, so the model starts here.
                    home = self._claim(model_id, home_of_new)
                    self.next_offset[model_id] = self.positions.get(home_of_new, 0)
                if home is None or home.partition != partition.partition:
                    where = "an unknown partition" if home is None else f"partition {home.partition}"
                    raise BadRecord(
                        MISROUTED_LABEL,
                        f"a label of model {model_id!r} read from partition {partition.partition} of "
                        f"{partition.topic}, but the model lives on {where}: key labels by model_id, "
                        "with as many partitions as the input",
                    )
            except BadRecord as error:
                if live:
                    self._dead_letter(error, record)
                continue
            position = monitor.label_position(model_id)
            if position is not None and record.offset < position:
                self.totals["already_applied"] += 1
                continue
            self.unsnapshotted_labels_from.setdefault(model_id, record.offset)
            source = RecordSource(
                topic=record.topic, partition=record.partition, offset=record.offset,
                timestamp_ms=record.timestamp,
            )  # fmt: skip
            alerts = monitor.label(model_id, label.event_id, label.label, source, live=live)
            if alerts:
                self._publish(alerts)
        self.totals["labels"] += len(records)
        delays = monitor.label_delays_ms
        if delays:
            observe = self.metrics.label_delay_seconds.observe
            for delay in delays:
                observe(max(0.0, delay / 1000))
            delays.clear()
        self._processed_up_to(partition, records[-1].offset + 1, replay_end)

    def _stateful_partition(self, number: int) -> TopicPartition:
        """Partition `number` of the topic models live on (the first input, or the repartition topic)."""
        return topic_partition(self.repartition_topic or self.config.topics.input[0], number)

    def _dead_letter(self, error: BadRecord, record: Any) -> None:
        self.dead_letters[error.kind] += 1
        out = dead_letter_record(
            self.config.topics.dead_letter, error, key=record.key, value=record.value,
            headers=list(record.headers or []), source_topic=record.topic, partition=record.partition,
            offset=record.offset,
        )  # fmt: skip
        self._send(out)

    def _count_consumed(self, partition: TopicPartition, records: list[Any]) -> None:
        """Per fetched batch (never per record): the metrics of what was read."""
        topic = partition.topic
        self.events_by_topic[topic] += len(records)
        sizes = [record.serialized_value_size for record in records]
        total = sum(sizes)
        if min(sizes) < 0:  # a null value's size is -1
            total = sum(size for size in sizes if size > 0)
        self.bytes_by_topic[topic] += total
        newest = records[-1]
        self.positions[partition] = newest.offset + 1
        if newest.timestamp >= 0:
            self.metrics.record_age_seconds.observe(max(0.0, time.time() - newest.timestamp / 1000))

    def _forwards(self, partition: TopicPartition) -> bool:
        """An input partition in repartition mode: it only forwards, keyed by model_id, and has no state."""
        return self.repartition_topic is not None and partition.topic != self.repartition_topic

    def _forward(self, now: float) -> None:
        """Forward the input records the timestamp merge releases; pause partitions buffering too much."""
        assert self.repartition_topic is not None
        topic, dead_letter = self.repartition_topic, self.config.topics.dead_letter
        consumer = self.consumer
        for record in self.merge.drain(lambda tp: read_to_end(consumer, tp), now):
            headers = list(record.headers or [])
            try:
                event = self.decoder.decode(record.key, record.value)
            except BadRecord as error:
                self.dead_letters[error.kind] += 1
                out = dead_letter_record(
                    dead_letter, error, key=record.key, value=record.value, headers=headers,
                    source_topic=record.topic, partition=record.partition, offset=record.offset,
                )  # fmt: skip
            else:
                out = forwarded_record(
                    topic, event.model_id, value=record.value, headers=headers, timestamp_ms=record.timestamp,
                    source_topic=record.topic, partition=record.partition, offset=record.offset,
                )  # fmt: skip
                self.totals["forwarded"] += 1
            self._send(out)
            self.pending[topic_partition(record.topic, record.partition)] = record.offset + 1
        full = set(self.merge.full())
        if full - self.merge_paused:
            consumer.pause(*(full - self.merge_paused))
        if self.merge_paused - full:
            consumer.resume(*(self.merge_paused - full))
        self.merge_paused = full

    def _claim(self, model_id: str, partition: TopicPartition) -> TopicPartition:
        """The model's home partition (where its state is snapshotted); warns when it arrives elsewhere."""
        home = self.model_partition.get(model_id)
        if home is None:
            self.model_partition[model_id] = home = partition
        elif home != partition:
            self.totals["model_in_two_partitions"] += 1
            if model_id not in self.scattered_models and len(self.scattered_models) < SCATTER_WARNINGS:
                self.scattered_models.add(model_id)
                self.log.warning(
                    "a model arrives on two partitions: the input is not keyed by model_id, so this model's "
                    "detectors see an interleaving that depends on partition order, and its state can be "
                    "lost on rebalance; produce with key = model_id",
                    model_id=model_id,
                    first=str(home),
                    second=str(partition),
                    more_not_logged=len(self.scattered_models) == SCATTER_WARNINGS,
                )
        return home

    def _begin_transaction(self) -> None:
        """Open the interval's transaction at its first record (exactly_once only)."""
        if self.exactly_once and not self.in_transaction:
            with translated_errors("beginning a transaction", transactional=True):
                self.producer.begin_transaction()
            self.in_transaction = True
            self.transaction_began = time.monotonic()

    def _send(self, record: OutRecord) -> None:
        self._begin_transaction()
        with translated_errors("sending a record", transactional=self.exactly_once):
            future = self.producer.send(
                record.topic, key=record.key, value=record.value, headers=record.headers,
                partition=record.partition, timestamp_ms=record.timestamp_ms,
            )  # fmt: skip
        if not self.exactly_once:
            self.sends.append(future)

    # ---- checkpoint, restore, rollback -----------------------------------------------------------

    def _checkpoint(self, *, commit_offsets: bool = True, all_snapshots: bool = False) -> None:
        """Make the interval's alerts and snapshots durable and commit their offsets (see module doc).

        `all_snapshots`: snapshot every changed model, due or not (at shutdown and revocation, so the next
        owner has nothing to replay).
        """
        if not self.pending and not self.in_transaction and not self.monitor.dirty:
            return
        if self.producer is None:
            return  # being replaced: everything since the last checkpoint was rolled back
        started = time.monotonic()
        self._send_snapshots(everything=all_snapshots)
        offsets = offsets_to_commit(self.pending, self._replay_watermarks())
        try:
            if self.exactly_once:
                self._begin_transaction()  # an interval of offsets only still commits them in one
                producer, metadata = self.producer, self.consumer.group_metadata()

                def commit() -> None:
                    if offsets:
                        producer.send_offsets_to_transaction(offsets, metadata)
                    producer.commit_transaction()

                bounded("committing the transaction", self.call_timeout_s, commit)
                self.in_transaction = False
                self.transaction_began = None
            else:
                with translated_errors("flushing alerts"):
                    self.producer.flush()
                failed = [future for future in self.sends if future.failed()]
                if failed:
                    raise FatalServiceError(f"{len(failed)} writes failed, first: {failed[0].exception}")
                self.sends.clear()
                if commit_offsets and offsets:
                    with translated_errors("committing offsets"):
                        self.consumer.commit(offsets)
        except CheckpointRefused:
            self._rollback()  # the caller decides how to carry on
            raise
        self.last_checkpoint_ok = time.monotonic()
        self.refused_since = None
        self.pending.clear()
        self.totals["checkpoints"] += 1
        self.totals["checkpoint_ms"] += round((self.last_checkpoint_ok - started) * 1000)
        self.metrics.checkpoint_seconds.observe(self.last_checkpoint_ok - started)

    def _measure_lag(self) -> None:
        """Per owned partition: records between what was read and the last known high watermark."""
        lag: dict[tuple[str, int], int] = {}
        for tp in self.owned:
            highwater, position = self.consumer.highwater(tp), self.positions.get(tp)
            if highwater is not None and position is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        self.lag = lag

    def _replay_watermarks(self) -> dict[TopicPartition, int]:
        """Per partition, the oldest event a model holds outside its snapshot: a restore reads from there."""
        watermarks: dict[TopicPartition, int] = {}
        for model_id, offset in self.unsnapshotted_from.items():
            tp = self.model_partition[model_id]
            if offset < watermarks.get(tp, offset + 1):
                watermarks[tp] = offset
        if self.labels_topic is not None:
            for model_id, offset in self.unsnapshotted_labels_from.items():
                tp = topic_partition(self.labels_topic, self.model_partition[model_id].partition)
                if offset < watermarks.get(tp, offset + 1):
                    watermarks[tp] = offset
        return watermarks

    def _send_snapshots(self, *, everything: bool) -> None:
        """Snapshot the changed models that are due: never snapshotted, or not for snapshot_interval_ms.

        A model's first snapshot is never deferred, so every model with input before a committed offset
        has a snapshot to restore and replay from.
        """
        monitor = self.monitor
        now = time.monotonic()
        not_before = now - self.config.processing.snapshot_interval_ms / 1000
        due = [
            model_id
            for model_id in monitor.dirty
            if everything or self.snapshot_at.get(model_id, -1.0) <= not_before
        ]
        for model_id in due:
            partition = self.model_partition[model_id]
            record = self.state.snapshot_record(
                model_id,
                partition.topic,
                partition.partition,
                self.next_offset[model_id],
                monitor.export_model(model_id),
            )
            self.totals["snapshot_bytes"] += len(record.value or b"")
            self._send(record)
            self.snapshot_at[model_id] = now
            self.unsnapshotted_from.pop(model_id, None)
            self.unsnapshotted_labels_from.pop(model_id, None)
            monitor.dirty.discard(model_id)
        self.totals["snapshots"] += len(due)

    def _restore(self) -> None:
        """Restore the models of the partitions awaiting it, seek them to their committed offsets, resume."""
        with self.lock:
            partitions = self.restoring & set(self.consumer.assignment())
            self.restoring = set(partitions)
        stateless = {tp for tp in partitions if self._forwards(tp)}
        # Label partitions hold no state of their own: their models' positions come with the models.
        labels = {tp for tp in partitions if tp.topic == self.labels_topic}
        stateful = partitions - stateless - labels
        restored = self.state.restore({(tp.topic, tp.partition) for tp in stateful})
        with self.lock:
            models = 0
            for tp in stateless:
                self.merge.drop(tp)
                self.merge.assign([tp])
                self._seek_committed(tp)
            for tp in stateful:
                self._drop_partition_models(tp)
                replay_from = None
                for model in restored[(tp.topic, tp.partition)]:
                    try:
                        reset = self.monitor.restore_model(model.model_id, model.state)
                    except SnapshotRejected as rejected:  # a signed state of the wrong shape
                        self.state.reject(model.model_id, rejected, partition=tp.partition)
                        continue
                    self.totals["signals_reset_by_config"] += reset
                    self.model_partition[model.model_id] = tp
                    self.next_offset[model.model_id] = model.offset
                    # No entry in snapshot_at: a restored model is snapshotted as soon as it changes, so
                    # that a service restarted more often than snapshot_interval_ms does not re-read an
                    # ever longer stretch of input at each restart.
                    replay_from = model.offset if replay_from is None else min(replay_from, model.offset)
                    models += 1
                self._seek_for_replay(tp, replay_from)
            for tp in labels:  # after the models they serve
                self._drop_partition_models(tp)
                served = (m for m, home in self.model_partition.items() if home.partition == tp.partition)
                reflected = [p for m in served if (p := self.monitor.label_position(m)) is not None]
                self._seek_for_replay(tp, min(reflected, default=None))
            self._warn_if_versions_rejected()
            self.consumer.resume(*partitions)
            self.owned |= partitions
            self.restoring -= partitions
            self.log.info(
                "partitions restored",
                partitions=sorted(str(tp) for tp in self.owned),
                restored_models=models,
                rejected_snapshots=dict(self.state.rejected),
            )

    def _warn_if_versions_rejected(self) -> None:
        """Never a silent fresh start of the fleet: snapshots of another river version (an upgrade) leave
        their models fresh unless the input is re-read (`run --rebuild-state-from`)."""
        rejected = sum(r.rejected[REJECT_VERSION] for r in self.state.last_restore.values())
        if rejected and self.rebuild_from is None:
            self.log.error(
                "snapshots of another river version rejected",
                models=rejected,
                river_version_running=RIVER_VERSION,
                hint="their detectors start fresh; to rebuild them from the input instead, restart with "
                "--rebuild-state-from TIME (README: Upgrading River)",
            )

    def _seek_for_replay(self, tp: TopicPartition, replay_from: int | None) -> None:
        """Seek to where the restored models need to be brought up to date from: the committed offset's
        watermark (else `replay_from`, the oldest offset a restored model's state reflects), replaying
        from there to the committed offset."""
        position = self._seek_committed(tp)
        if position is None:
            return
        committed, watermark = position
        if watermark is None:  # committed without a watermark: the oldest snapshot bounds it
            watermark = committed if replay_from is None else min(committed, replay_from)
        if self.rebuild_from is not None:
            start = offset_at(self.consumer, tp, self.rebuild_from)
            self.log.info("rebuilding state", partition=str(tp), from_offset=start, to_offset=committed)
            watermark = min(watermark, start)
        if watermark < committed:
            self.consumer.seek(tp, watermark)
            self.replay_until[tp] = committed

    def _seek_committed(self, tp: TopicPartition) -> tuple[int, int | None] | None:
        """Seek to the committed offset (or per auto_offset_reset); returns what committed_position says."""
        position = committed_position(self.consumer, tp)
        if position is not None:
            self.consumer.seek(tp, position[0])
        elif self.config.processing.auto_offset_reset == "earliest":
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek_to_end(tp)
        return position

    def _rollback(self) -> None:
        """Forget everything since the last checkpoint: drop every model, restore all partitions.

        exactly_once replaces the producer instead of aborting: whatever state a failed call left it in, the
        new producer's initialisation (same transactional id) ends the old transaction on the broker before
        the loop restores anything, so the restore reads a settled cut (the transaction aborted, or committed
        if its commit had reached the broker) and goes on from there.
        """
        if self.exactly_once and self.producer is not None:
            if self.in_transaction:
                self.totals["transactions_aborted"] += 1
            self._replace_producer()
        self.in_transaction = False
        self.transaction_began = None
        self.sends.clear()
        self.pending.clear()
        for tp in self.owned | self.restoring:
            self._drop_partition_models(tp)
        self.restoring |= self.owned
        self.owned = set()
        if self.restoring:
            self.consumer.pause(*self.restoring)

    def _drop_partition_models(self, tp: TopicPartition) -> None:
        self.replay_until.pop(tp, None)
        self.positions.pop(tp, None)
        self.merge.drop(tp)  # an input partition in repartition mode: its buffer is read again
        self.merge_paused.discard(tp)
        for model_id in [m for m, home in self.model_partition.items() if home == tp]:
            del self.model_partition[model_id]
            self.next_offset.pop(model_id, None)
            self.snapshot_at.pop(model_id, None)
            self.unsnapshotted_from.pop(model_id, None)
            self.unsnapshotted_labels_from.pop(model_id, None)
            self.monitor.drop_model(model_id)

    # ---- rebalance callbacks (on the consumer's network loop) ------------------------------------

    def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """A rebalance starts: finish the interval while this member still owns the partitions."""
        with self.lock:
            try:
                # at_least_once commits no offsets here: a blocking consumer call fails on this thread.
                self._checkpoint(commit_offsets=self.exactly_once, all_snapshots=True)
            except StreamdriftError as exc:
                if isinstance(exc, FatalServiceError) and not (
                    isinstance(exc, Fenced) and self._own_transaction_timed_out()
                ):
                    self.fatal = exc  # raised by the loop: kafka-python swallows a callback's exceptions
                self.log.warning("could not checkpoint on revocation; rolling back", error=str(exc))
                self._rollback()
            # Not restored yet, and no longer ours until the next assignment says so: restoring them now
            # would make blocking consumer calls (committed offsets, seeks) in the middle of the rejoin,
            # which can leave kafka-python's rejoin waiting for good.
            self.restoring -= revoked
            self.rebalance_started_at = time.monotonic()
        self.log.info("partitions revoked", partitions=sorted(str(tp) for tp in revoked))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        with self.lock:
            self.rebalance_started_at = None
            for tp in (self.owned | self.restoring) - assigned:
                self._drop_partition_models(tp)
                self.pending.pop(tp, None)
            # Input partitions of repartition mode always start over from their committed offset: what
            # their merge buffer held is fetched again.
            fresh = {tp for tp in assigned if tp not in self.owned or self._forwards(tp)}
            # A label partition is read again whenever the models it serves are restored.
            renewed = {
                tp.partition for tp in fresh if tp.topic != self.labels_topic and not self._forwards(tp)
            }
            fresh |= {tp for tp in assigned if tp.topic == self.labels_topic and tp.partition in renewed}
            for tp in fresh & self.owned:
                self._drop_partition_models(tp)
            self.owned &= assigned
            self.restoring = set(fresh)
            if fresh:
                self.consumer.pause(*fresh)
        self.log.info(
            "partitions assigned", partitions=sorted(str(tp) for tp in assigned), to_restore=len(fresh)
        )

    def on_lost(self, lost: set[TopicPartition]) -> None:
        with self.lock:
            self.log.warning("partitions lost (evicted from the group); rolling back", partitions=len(lost))
            self._rollback()
            self.restoring -= lost
            for tp in lost:
                self.pending.pop(tp, None)

    def _log_summary(self, seconds: float, events: int) -> None:
        self.log.info("summary", events_per_s=round(events / seconds, 1), **self._summary_fields())

    def _summary_fields(self) -> dict[str, Any]:
        monitor = self.monitor
        return {
            "ready": self.ready,
            "restoring_partitions": len(self.restoring),
            "events": self.totals["events"],
            "replayed_events": self.totals["replayed"],
            "alerts_drift": self.totals["alerts_drift"],
            "alerts_warning": self.totals["alerts_warning"],
            "dead_letters": dict(self.dead_letters),
            "skipped_values": dict(monitor.skipped),
            "suppressed_alerts": dict(monitor.suppressed),
            **(
                {}
                if self.labels_topic is None
                else {"labels_read": self.totals["labels"], "labels": dict(monitor.labels)}
            ),
            "models": len(monitor.models),
            "checkpoints": self.totals["checkpoints"],
            "snapshots": self.totals["snapshots"],
            "rejected_snapshots": dict(self.state.rejected),
            "transactions_aborted": self.totals["transactions_aborted"],
            "models_in_two_partitions": self.totals["model_in_two_partitions"],
            "rebalances_restarted": self.totals["rebalances_restarted"],
        }


def _unreadable_message(exc: UnreadableBatch, fetches: int) -> str:
    """One line: where, why, and how an operator moves past it (README, "Compressed and damaged input")."""
    span = f"offsets {exc.offset} to {exc.end - 1}" if exc.end is not None and exc.end > exc.offset else "it"
    return (
        f"cannot read {exc.topic} partition {exc.partition} at offset {exc.offset}: {exc.reason} "
        f"(fetched {fetches} times); the batch is damaged on the broker. To skip {span} into the dead-letter "
        "topic, restart with processing.skip_unreadable_batches: true (README: Compressed and damaged input)"
    )
