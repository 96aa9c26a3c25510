"""The checkpoint: once per `processing.commit_interval_ms`, on revocation and at shutdown, it makes the
interval durable in numbered steps (docs/ARCHITECTURE.md, "The checkpoint"):

  1. sinks flushed: every alert sink holds the interval's alerts durably (sinks.py) — before any snapshot, so
     that a snapshot is never durable while an alert of an event it reflects is not (a restore skips the
     events its snapshot reflects: at_least_once would lose that alert on a crash in between);
  2. snapshots: each changed model that is due (never snapshotted, or not for `snapshot_interval_ms`; every
     changed model on revocation, reload and shutdown) goes to the state topic, partition = the model's home
     partition, holding the next input offset it reflects — within `max_snapshots_per_s` (`SnapshotBudget`),
     those snapshotted longest ago first;
  3. offsets: the pending input offsets, each carrying where a restore must read from (ledger.py);
  4. commit: exactly_once `send_offsets_to_transaction` + `commit_transaction`; at_least_once flush (every
     send must have succeeded) + commit the offsets (guarantees.py).

A crash anywhere leaves the interval uncommitted: in exactly_once the broker aborts its transaction and no
read_committed reader sees its records; in at_least_once its alerts may repeat on restart, with the same
`alert_id`. A failure in 1-4 is rolled back (`rollback`, the one place that undoes an interval): every model
is dropped and restored, so the alerts equal those of an uninterrupted run. `run` never rolls back itself:
its callers do, for whatever they catch (recovery.py, rebalance.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from prometheus_client import Histogram

from streamdrift.config.processing import ProcessingSettings
from streamdrift.ports import GroupConsumer
from streamdrift.service.counters import Counters
from streamdrift.service.effects import Effects
from streamdrift.service.guarantees import Guarantee
from streamdrift.service.ledger import Ledger
from streamdrift.service.sinks import AlertSink
from streamdrift.service.state import StateStore


class ModelStates(Protocol):
    """The detectors' side of a snapshot (core.monitor.Monitor)."""

    @property
    def dirty(self) -> set[str]: ...  # models changed since their last snapshot
    def export_model(self, model_id: str) -> dict[str, object]: ...


class SnapshotBudget:
    """At most `per_s()` snapshots a second on average (0: no limit), so that the cost of keeping state is
    bounded per second, not per model: with more changed models than that, each waits its turn (the least
    recently snapshotted first, ledger.py) and a restore replays a longer stretch of input instead.

    A token bucket holding at most one second's worth: a checkpoint after a long one does not write a burst.
    """

    def __init__(self, per_s: Callable[[], int]) -> None:
        self.per_s = per_s
        self.tokens = 0.0
        self.filled_at: float | None = None

    def allowance(self, now: float) -> int | None:
        """How many snapshots a checkpoint may write now (None: any number)."""
        rate = self.per_s()
        if rate <= 0:
            return None
        elapsed = 1.0 if self.filled_at is None else now - self.filled_at
        self.tokens = min(float(rate), self.tokens + elapsed * rate)
        self.filled_at = now
        return int(self.tokens)

    def spent(self, snapshots: int) -> None:
        self.tokens -= snapshots


class Checkpoint:
    def __init__(
        self,
        *,
        ledger: Ledger,
        models: ModelStates,
        state: StateStore,
        guarantee: Guarantee,
        sinks: Sequence[AlertSink],
        effects: Effects,
        counters: Counters,
        duration: Histogram,
        settings: Callable[[], ProcessingSettings],
    ) -> None:
        self.ledger, self.models, self.state = ledger, models, state
        self.guarantee, self.sinks, self.effects = guarantee, sinks, effects
        self.counters, self.duration = counters, duration
        self.settings = settings  # the config's processing section in force (a reload replaces it)
        self.budget = SnapshotBudget(lambda: self.settings().max_snapshots_per_s)
        self.refused_since: float | None = None  # checkpoints refused in a row since (None: the last worked)

    def run(
        self, consumer: GroupConsumer, *, commit_offsets: bool = True, all_snapshots: bool = False
    ) -> None:
        """Make the interval durable. `all_snapshots`: every changed model, due or not (so that the next
        owner has nothing to replay). Raises what a step raises; the caller rolls back."""
        if not self.guarantee.ready:
            return  # being replaced: everything since the last checkpoint was rolled back
        started = time.monotonic()
        due = self.ledger.snapshots_due(
            self.models.dirty,
            not_before=started - self.settings().snapshot_interval_ms / 1000,
            everything=all_snapshots,
            limit=None if all_snapshots else self.budget.allowance(started),
        )
        if not self.ledger.pending and not self.guarantee.open and not due:
            return  # nothing to make durable (changed models not due yet wait for a later interval)
        for sink in self.sinks:  # 1
            sink.flush()
        self._snapshots(due, now=started)  # 2
        if not all_snapshots:
            self.budget.spent(len(due))
        offsets = self.ledger.offsets_to_commit()  # 3
        self.guarantee.commit(offsets, consumer, commit_offsets=commit_offsets)  # 4
        finished = time.monotonic()
        self.refused_since = None
        self.ledger.committed()
        totals = self.counters.totals
        totals["checkpoints"] += 1
        totals["checkpoint_ms"] += round((finished - started) * 1000)
        self.duration.observe(finished - started)

    def rollback(self) -> None:
        """Forget everything since the last checkpoint: the producer is replaced (an open transaction dies
        with it), the sinks drop the interval, every model is dropped and every partition restored again."""
        self.guarantee.discard()
        for sink in self.sinks:
            sink.discard()
        self.effects.apply(self.ledger.rollback())

    def _snapshots(self, due: list[str], *, now: float) -> None:
        ledger, models = self.ledger, self.models
        totals = self.counters.totals
        for model_id in due:
            home = ledger.home[model_id]
            record = self.state.snapshot_record(
                model_id,
                home.topic,
                home.partition,
                ledger.next_offset[model_id],
                models.export_model(model_id),
            )
            totals["snapshot_bytes"] += len(record.value or b"")
            self.guarantee.write(record)
            ledger.snapshotted(model_id, now)
            models.dirty.discard(model_id)
        totals["snapshots"] += len(due)
