"""Restoring the partitions the ledger says wait for it: their models from the state topic, their positions.

A restored partition is read again from the oldest snapshot offset of its models (or the watermark committed
with its offset): events below the committed offset only bring detectors up to date (their alerts and dead
letters were written before), and events a model's snapshot already reflects are skipped for that model
(docs/ARCHITECTURE.md, "Restore").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection

import structlog

from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.monitor import Monitor
from streamdrift.core.snapshot import REJECT_VERSION, SnapshotRejected
from streamdrift.ports import Bound, GroupConsumer, TopicPartition
from streamdrift.service.counters import Counters
from streamdrift.service.effects import Effects
from streamdrift.service.forwarding import Forwarder
from streamdrift.service.ledger import Actions, Ledger, replay_from
from streamdrift.service.state import StateStore


class Restorer:
    def __init__(
        self,
        *,
        ledger: Ledger,
        monitor: Monitor,
        state: StateStore,
        effects: Effects,
        counters: Counters,
        forwarder: Forwarder | None,
        labels_topic: str | None,
        auto_offset_reset: str,
        rebuild_from: Bound | None,
        lock: threading.RLock,
        settle: Callable[[GroupConsumer, Collection[TopicPartition]], None],
    ) -> None:
        self.ledger, self.monitor, self.state, self.effects = ledger, monitor, state, effects
        self.counters, self.forwarder, self.labels_topic = counters, forwarder, labels_topic
        self.auto_offset_reset = auto_offset_reset
        # `run --rebuild-state-from`: every restore also re-reads the input from here (alerts muted), so that
        # models whose snapshots were rejected (another river version) are rebuilt, not started fresh.
        self.rebuild_from = rebuild_from
        self.lock = lock
        self.settle = settle  # the guarantee's (guarantees.py): offsets a replaced producer left pending
        self.log = structlog.get_logger("streamdrift.service")

    def restore(self, consumer: GroupConsumer) -> None:
        """Restore the waiting partitions still assigned, seek them, resume them."""
        with self.lock:
            starting = self.ledger.start_restore(consumer.assignment())
            self.effects.apply(starting)
        partitions = starting.drop
        forwarder = self.forwarder
        stateless = {tp for tp in partitions if forwarder is not None and forwarder.forwards(tp)}
        # Label partitions hold no state of their own: their models' positions come with the models.
        labels = {tp for tp in partitions if tp.topic == self.labels_topic}
        stateful = partitions - stateless - labels
        restored = self.state.restore(
            {(tp.topic, tp.partition) for tp in stateful}
        )  # the slow part: unlocked
        self.settle(consumer, partitions)  # before their committed offsets are read
        with self.lock:
            models = replay = 0
            for tp in stateless:
                assert forwarder is not None
                forwarder.restart(tp)
                committed = self._seek_committed(consumer, tp)
                self.ledger.restored(tp, read_from=None, committed=committed)
            for tp in stateful:
                oldest = None
                for model in restored[(tp.topic, tp.partition)]:
                    try:
                        reset = self.monitor.restore_model(model.model_id, model.state)
                    except SnapshotRejected as rejected:  # a signed state of the wrong shape
                        self.state.reject(model.model_id, rejected, partition=tp.partition)
                        continue
                    self.counters.totals["signals_reset_by_config"] += reset
                    self.ledger.restored_model(model.model_id, tp, model.offset)
                    oldest = model.offset if oldest is None else min(oldest, model.offset)
                    models += 1
                replay += self._seek_for_replay(consumer, tp, oldest)
            for tp in labels:  # after the models they serve
                served = (m for m, home in self.ledger.home.items() if home.partition == tp.partition)
                reflected = [p for m in served if (p := self.monitor.label_position(m)) is not None]
                replay += self._seek_for_replay(consumer, tp, min(reflected, default=None))
            self._warn_if_versions_rejected()
            self.effects.apply(Actions(resume=partitions))
            self.log.info(
                "partitions restored",
                partitions=sorted(str(tp) for tp in self.ledger.held),
                restored_models=models,
                replay_offsets=replay,
                rejected_snapshots=dict(self.state.rejected),
            )

    def _seek_for_replay(self, consumer: GroupConsumer, tp: TopicPartition, oldest: int | None) -> int:
        """Seek to where the restored models need to be brought up to date from: the committed offset's
        watermark (else `oldest`, the oldest offset a restored model's state reflects), replaying from there
        to the committed offset. Returns how many offsets that replay re-reads."""
        committed = consumer.committed(tp)
        if committed is None:
            self._seek_default(consumer, tp)
            self.ledger.restored(tp, read_from=None, committed=None)
            return 0
        start = replay_from(committed)
        if start is None:  # committed without a watermark: the oldest snapshot bounds it
            start = committed.offset if oldest is None else min(committed.offset, oldest)
        if self.rebuild_from is not None:
            rebuild = consumer.offset_at(tp, self.rebuild_from)
            self.log.info(
                "rebuilding state", partition=str(tp), from_offset=rebuild, to_offset=committed.offset
            )
            start = min(start, rebuild)
        consumer.seek(tp, min(start, committed.offset))
        self.ledger.restored(tp, read_from=start, committed=committed.offset)
        return max(0, committed.offset - start)

    def _seek_committed(self, consumer: GroupConsumer, tp: TopicPartition) -> int | None:
        committed = consumer.committed(tp)
        if committed is None:
            self._seek_default(consumer, tp)
            return None
        consumer.seek(tp, committed.offset)
        return committed.offset

    def _seek_default(self, consumer: GroupConsumer, tp: TopicPartition) -> None:
        """Nothing committed: per `processing.auto_offset_reset`."""
        if self.auto_offset_reset == "earliest":
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek_to_end(tp)

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
