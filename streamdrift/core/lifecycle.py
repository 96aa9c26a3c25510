"""Alert lifecycle: drift episodes per signal, and model-level alerts that group drifting signals.

Episodes (per signal): the first published drift opens one; its `episode_id` is that drift's `alert_id`.
Further drifts while it is open join it (published ones carry its id; ones the cooldown or a mute suppresses
only keep it open). After `resolve_after` values of the signal without a drift, a `resolved` alert closes it.
Everything counts values of the signal, never the clock, so replays and restarts agree.

Model-level alerts (per model): the first published drift of a watched signal (by default `feature:*` and
`category:*`) opens a window of `window` events of the model. When it closes, a `model` alert is published
if at least `min_signals` distinct signals drifted within it, naming them in the order they first drifted:
twenty features drifting together are one incident, not twenty pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from streamdrift.core.alert import RecordSource


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelAlertPolicy:
    enabled: bool = True
    min_signals: int = 3
    window: int = 500  # events of the model, from the first drift in the window
    signals: tuple[str, ...] = ("feature:*", "category:*")  # globs of the signals that count

    def watches(self, signal: str) -> bool:
        return any(fnmatchcase(signal, pattern) for pattern in self.signals)


class ModelWindow:
    """The drifts of one model's open window.

    >>> window = ModelWindow()
    >>> window.add("feature:a", 10, RecordSource(offset=3))
    >>> window.add("feature:a", 12, RecordSource(offset=5))
    >>> window.signals, window.closes_at(100)
    (['feature:a'], 110)
    """

    __slots__ = ("opened_at", "signals", "source")

    def __init__(self) -> None:
        self.opened_at: int | None = None  # the model's event count at the window's first drift
        self.source: RecordSource | None = None  # ... and that drift's record
        self.signals: list[str] = []

    def add(self, signal: str, event_index: int, source: RecordSource) -> None:
        if self.opened_at is None:
            self.opened_at, self.source = event_index, source
        if signal not in self.signals:
            self.signals.append(signal)

    def closes_at(self, window: int) -> int | None:
        return None if self.opened_at is None else self.opened_at + window

    def clear(self) -> None:
        self.opened_at, self.source, self.signals = None, None, []

    def export(self) -> tuple[Any, ...]:
        source = self.source
        saved_source = None if source is None else (
            source.topic, source.partition, source.offset, source.timestamp_ms
        )  # fmt: skip
        return self.opened_at, saved_source, list(self.signals)

    @classmethod
    def restored(cls, saved: tuple[Any, ...]) -> ModelWindow:
        window = cls()
        opened_at, source, signals = saved
        window.opened_at, window.signals = opened_at, list(signals)
        if source is not None:
            topic, partition, offset, timestamp_ms = source
            window.source = RecordSource(
                topic=topic, partition=partition, offset=offset, timestamp_ms=timestamp_ms
            )
        return window
