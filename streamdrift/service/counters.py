"""What the processing loop counts, for the logs, /metrics and /readyz (read from the HTTP thread).

The loop writes plain numbers and Counters; a reader copies them (a dict copy is atomic under the GIL), so a
scrape sees a consistent snapshot of each without locking the loop.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

OTHER_MODELS = "_other"
AlertKey = tuple[str, str, str, str]  # model label, signal, detector type, level


class AlertCounts:
    """Alerts sent, by model (capped), signal, detector and level."""

    def __init__(self, max_model_labels: int) -> None:
        self.max_model_labels = max_model_labels
        self.labelled_models: set[str] = set()
        self.counts: Counter[AlertKey] = Counter()

    def add(self, model_id: str, signal: str, detector: str, level: str) -> None:
        if model_id not in self.labelled_models:
            if len(self.labelled_models) >= self.max_model_labels:
                model_id = OTHER_MODELS
            else:
                self.labelled_models.add(model_id)
        self.counts[(model_id, signal, detector, level)] += 1


@dataclass(slots=True, kw_only=True)
class Counters:
    alert_counts: AlertCounts
    # events, replayed, labels, already_applied, alerts_<level>, checkpoints, checkpoint_ms, snapshots,
    # snapshot_bytes, checkpoint_failures, transactions_aborted, producers_replaced, forwarded,
    # model_in_two_partitions, rebalances_restarted, signals_reset_by_config
    totals: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)  # by error kind
    events_by_topic: Counter[str] = field(default_factory=Counter)
    bytes_by_topic: Counter[str] = field(default_factory=Counter)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to read
    lag: dict[tuple[str, int], int] = field(default_factory=dict)  # behind the high watermark
    rejected_snapshots: Counter[str] = field(default_factory=Counter)  # by reason, since start
    restored_records: int = 0  # state records read while restoring, since start
    records_to_restore: int = 0  # the size of the latest restore
    partitions_held: int = 0  # restored (replaying or live)
    partitions_waiting: int = 0  # assigned, waiting for their restore
    loop_alive_at: float = field(default_factory=time.monotonic)  # the loop's last turn
    broker_answering: bool = True

    def turned(self) -> None:
        """The loop turned (or is waiting on purpose, not stuck)."""
        self.loop_alive_at = time.monotonic()
