"""The figures of the service's periodic `summary` log line and its final `stopped` line."""

from __future__ import annotations

from streamdrift.core.monitor import Monitor
from streamdrift.service.counters import Counters


def summary_fields(
    counters: Counters, monitor: Monitor, *, ready: bool, waiting: int, labels: bool
) -> dict[str, object]:
    totals = counters.totals
    return {
        "ready": ready,
        "restoring_partitions": waiting,
        "events": totals["events"],
        "replayed_events": totals["replayed"],
        "alerts_drift": totals["alerts_drift"],
        "alerts_warning": totals["alerts_warning"],
        "dead_letters": dict(counters.dead_letters),
        "skipped_values": dict(monitor.skipped),
        "suppressed_alerts": dict(monitor.suppressed),
        **({"labels_read": totals["labels"], "labels": dict(monitor.labels)} if labels else {}),
        "models": len(monitor.models),
        "checkpoints": totals["checkpoints"],
        "snapshots": totals["snapshots"],
        "rejected_snapshots": dict(counters.rejected_snapshots),
        "transactions_aborted": totals["transactions_aborted"],
        "models_in_two_partitions": totals["model_in_two_partitions"],
        "rebalances_restarted": totals["rebalances_restarted"],
    }
