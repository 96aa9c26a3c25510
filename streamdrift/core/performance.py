"""Estimated performance of binary classifiers, per model window, as the monitor runs it (CBPE: cbpe.py).

`profile build` fits a `CbpeReference` per model from the reference's labelled events (`ReferenceSample`:
its scores, inline labels and predicted classes) and keeps it in the model's profile document under
`performance`. In the service, each model `reference.performance` selects with such a reference has a
`PerformanceWatch`: every event with a finite score counts in its window, its predicted class being its
prediction when that is 0/1 or a bool, else `score >= threshold` (the reference's); an inline label (0/1 or a
bool) counts for the realized metrics. When the window holds the reference's `window_events` events it
closes: each metric's estimate with its 95% band, the realized metrics when every event of the window had a
label, and each estimate outside the reference's band is one `estimated:<metric>` alert (judge.py). A closed
window whose labels are not all in waits for late labels (the labels topic, by event id; the latest
`AWAITING_WINDOWS` windows per model): the one that completes it gives the window's realized metrics.

Events that cannot count are skipped and counted: no finite score (`no_score`), a prediction that is not a
class of a binary classifier (`not_binary`), no prediction and a reference fitted without a threshold.
"""

from __future__ import annotations

import fnmatch
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from streamdrift.core.cbpe import CbpeReference, Estimate, estimate_with_bands, realized
from streamdrift.core.event import InferenceEvent, Scalar

STATE_FORMAT: Final = "streamdrift.performance-window/1"
# Closed windows kept per model for their late labels: each holds window_events scores, classes and ids.
AWAITING_WINDOWS: Final = 2


def binary(value: Scalar) -> int | None:
    """A class of a binary classifier (0/1 or a bool) as 0 or 1; None for anything else."""
    if value is True or value is False:
        return int(value)
    if type(value) in (int, float) and value in (0, 1):
        return int(value)
    return None


def finite(value: Scalar) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]
    return None


@dataclass(slots=True)
class ReferenceSample:
    """One model's labelled reference events for `CbpeReference.fit` (profile build)."""

    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    predictions: list[int | None] = field(default_factory=list)

    def add(self, event: InferenceEvent) -> None:
        score, label = finite(event.score), binary(event.label)
        if score is not None and label is not None:
            self.scores.append(score)
            self.labels.append(label)
            self.predictions.append(binary(event.prediction))

    def fit(self, window_events: int, threshold: float) -> CbpeReference | None:
        """The reference, or None with fewer than two windows of labelled events."""
        if len(self.scores) < 2 * window_events:
            return None
        carried = [prediction for prediction in self.predictions if prediction is not None]
        return CbpeReference.fit(
            self.scores, self.labels, carried if len(carried) == len(self.scores) else None,
            threshold=threshold, window_events=window_events,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A closed window: its estimates, which left the reference's band, and the realized metrics (None
    unless every event of the window had a label)."""

    ordinal: int  # windows of the model closed before this one
    events: int
    estimates: Mapping[str, Estimate]
    left_band: Mapping[str, bool]
    realized: Mapping[str, float] | None


@dataclass(slots=True)
class Window:
    """One window's events: scores, predicted classes, labels (None until known), where each event id is."""

    ordinal: int
    scores: list[float] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # event id -> its index, for late labels
    missing: int = 0  # labels not known yet

    def add(self, score: float, predicted: int, label: int | None, event_id: str | None) -> None:
        if event_id is not None:
            self.positions.setdefault(event_id, len(self.scores))
        self.scores.append(score)
        self.predicted.append(predicted)
        self.labels.append(label)
        self.missing += label is None

    def label(self, event_id: str, label: int) -> bool:
        """Take a late label of one of the window's events (the first for each); True when it was one."""
        position = self.positions.get(event_id)
        if position is None or self.labels[position] is not None:
            return False
        self.labels[position] = label
        self.missing -= 1
        return True

    def realized(self) -> dict[str, float]:
        """The realized metrics (every label known)."""
        scores, predicted = np.asarray(self.scores), np.asarray(self.predicted, dtype=bool)
        return realized(np.asarray(self.labels, dtype=bool), predicted, scores)

    def export(self) -> tuple[Any, ...]:
        return self.ordinal, self.scores, self.predicted, self.labels, self.positions

    @classmethod
    def restored(cls, saved: Sequence[Any]) -> Window:
        ordinal, scores, predicted, labels, positions = saved
        window = cls(ordinal, list(scores), list(predicted), list(labels), dict(positions))
        window.missing = sum(label is None for label in window.labels)
        return window


class PerformanceWatch:
    """One model's open window, and its closed windows still waiting for late labels (the latest
    `AWAITING_WINDOWS`: older ones give up on their realized metrics)."""

    __slots__ = ("awaiting", "reference", "window")

    def __init__(self, reference: CbpeReference) -> None:
        self.reference = reference
        self.window = Window(0)
        self.awaiting: list[Window] = []

    def add(self, model_id: str, event: InferenceEvent) -> ClosedWindow | str | None:
        """Count the event; returns the window it closed, a skip reason, or None."""
        score = finite(event.score)
        if score is None:
            return "no_score"
        if event.prediction is None:
            threshold = self.reference.threshold
            if threshold is None:
                return "no_prediction"
            predicted = int(score >= threshold)
        else:
            carried = binary(event.prediction)
            if carried is None:
                return "not_binary"
            predicted = carried
        self.window.add(score, predicted, binary(event.label), event.event_id)
        if len(self.window.scores) < self.reference.window_events:
            return None
        return self._close(model_id)

    def late_label(self, event_id: str, label: Scalar) -> dict[str, float] | None:
        """A label from the labels topic: the realized metrics of the closed window it completes, if any."""
        known = binary(label)
        if known is None or self.window.label(event_id, known):
            return None
        for window in self.awaiting:
            if window.label(event_id, known):
                if window.missing:
                    return None
                self.awaiting.remove(window)
                return window.realized()
        return None

    def _close(self, model_id: str) -> ClosedWindow:
        reference, window = self.reference, self.window
        scores, predicted = np.asarray(window.scores), np.asarray(window.predicted, dtype=bool)
        # A seed of the model and the window's ordinal: a replay draws the same bands.
        seed = zlib.crc32(f"{model_id}\x1f{window.ordinal}".encode())
        estimates = estimate_with_bands(reference.calibration(scores), predicted, scores, seed)
        closed = ClosedWindow(
            ordinal=window.ordinal, events=len(scores), estimates=estimates,
            left_band={name: reference.bands[name].excludes(e.value) for name, e in estimates.items()},
            realized=None if window.missing else window.realized(),
        )  # fmt: skip
        if window.missing and window.positions:  # late labels may complete it
            self.awaiting = [*self.awaiting, window][-AWAITING_WINDOWS:]
        self.window = Window(window.ordinal + 1)
        return closed

    def export(self) -> dict[str, Any]:
        # Not "window": KSWIN has an attribute of that name (see tracks.export_model).
        return {
            "format": STATE_FORMAT, "open_window": self.window.export(),
            "awaiting": [window.export() for window in self.awaiting],
        }  # fmt: skip

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take over the saved windows (of a reference of the same window size; else they start anew)."""
        if state.get("format") != STATE_FORMAT:
            return
        window = Window.restored(state["open_window"])
        if len(window.scores) >= self.reference.window_events:
            return  # another reference's window, longer than this one's
        self.window = window
        self.awaiting = [Window.restored(saved) for saved in state["awaiting"]][-AWAITING_WINDOWS:]


def references(
    models: Mapping[str, Mapping[str, Any]], selected: str, window_events: int
) -> dict[str, CbpeReference]:
    """The CBPE reference of every profiled model matching `selected` that has one; ValueError when one is
    malformed or fitted for windows of another size."""
    found: dict[str, CbpeReference] = {}
    for model_id, document in models.items():
        saved = document.get("performance")
        if saved is None or not fnmatch.fnmatchcase(model_id, selected):
            continue
        try:
            reference = CbpeReference.from_dict(saved)
        except ValueError as error:
            raise ValueError(f"model {model_id!r}: {error}") from None
        if reference.window_events != window_events:
            raise ValueError(
                f"model {model_id!r}: its profile's CBPE reference is for windows of "
                f"{reference.window_events} events, not {window_events} (build the profile again with this "
                "config)"
            )
        found[model_id] = reference
    return found
