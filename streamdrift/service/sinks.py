"""Where alerts go: the alert-sink seam (docs/ARCHITECTURE.md §8, "Where to add things").

The loop hands every alert to each sink (`add`); the checkpoint flushes them all before it commits the
interval's offsets (`flush`: after it, the sink must hold the interval's alerts durably), and a rollback
discards what they hold of the interval (`discard`: the interval is processed again and its alerts added
again). A sink that cannot make alerts durable in step with the checkpoint gives at-least-once delivery: an
alert keeps its `alert_id` when it is repeated.
"""

from __future__ import annotations

from typing import Protocol

from streamdrift.core.alert import DriftAlert
from streamdrift.ports import OutRecord
from streamdrift.service.records import alert_record


class AlertSink(Protocol):
    def add(self, alert: DriftAlert) -> None: ...
    def flush(self) -> None: ...
    def discard(self) -> None: ...


class RecordWriter(Protocol):
    def write(self, record: OutRecord) -> None: ...
    def flush(self) -> None: ...  # what was written is durable (or in the open transaction)


class AlertsTopic:
    """The alerts topic: written inside the interval's transaction (exactly_once) or flushed with it."""

    def __init__(self, topic: str, writer: RecordWriter) -> None:
        self.topic = topic
        self.writer = writer

    def add(self, alert: DriftAlert) -> None:
        self.writer.write(alert_record(self.topic, alert))

    def flush(self) -> None:
        self.writer.flush()

    def discard(self) -> None:
        """Nothing of its own: the rollback replaces the producer, and an open transaction is aborted."""
