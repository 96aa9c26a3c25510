"""Per-model signals and detectors: one event in, the alerts it triggers out.

Signals of a model (README "Signals"; docs/ARCHITECTURE.md §3):

- `feature:<name>`            numeric and bool features (bools as 0/1);
- `category:<name>=<value>`   a categorical feature: one 0/1 stream per frequent category, and `=_other`;
- `new_category:<name>`       one alert per category first seen after the warm-up (categorical.py);
- `missing:<name>`            1 when a feature this model has sent before is absent or null, else 0;
- `quality:type_mismatch`     1 for an event with a value of the wrong type for its feature, else 0;
- `quality:out_of_range`      1 for an event with a numeric value outside its feature's bounds (quality.py);
- `multivariate:reconstruction` the event's error under a PCA fitted on the model's reference profile:
                              how features move together (multivariate.py); models the config selects;
- `estimated:<metric>`        a performance window's estimate (CBPE) outside its reference band
                              (performance.py); models the config selects;
- `prediction`                a numeric prediction, or `prediction:<class>` (one 0/1 stream per class);
- `score`                     the model's score;
- `error`                     when a label is known: |prediction - label| for numbers, 0/1 for classes;
                              with a labels topic, in prediction order once the label has arrived (labels.py);
- `model`                     a model-level alert grouping drifting signals (lifecycle.py).

A value that cannot reach a detector (NaN, infinity, text where a number belongs, a non-0/1 value for a binary
detector) is skipped for that signal and counted by reason: one NaN fed to River's ADWIN disables it for good.

`live=False` marks an event whose alerts were published before (a restored partition being brought up to
date): its detectors are updated, its alerts are not returned.

`Monitor` is the way in; feature_signals.py and output_signals.py feed each kind of signal, judge.py turns
what the detectors say into alerts, skips.py names the reasons a value is skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.detectors import DRIFT, NO_CHANGE, WARNING
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.feature_signals import FeatureSignals
from streamdrift.core.judge import Judge, Observer
from streamdrift.core.lanes import Queue, SteadyModels, plain_values
from streamdrift.core.output_signals import OutputSignals
from streamdrift.core.plan import Policies
from streamdrift.core.skips import (
    INCOMPLETE_ROW,
    NON_FINITE,
    NON_NUMERIC,
    NOT_BINARY,
    TOO_MANY_SIGNALS,
    TYPE_MISMATCH,
)
from streamdrift.core.snapshot import REJECT_SHAPE, SnapshotRejected
from streamdrift.core.tracks import RECONSTRUCTION_SIGNAL, ModelMonitor, export_model, restore_model

# Besides the monitor: the detector levels its observer is called with, and the skip reasons that key
# Monitor.skipped (skips.py).
__all__ = [
    "DRIFT",
    "INCOMPLETE_ROW",
    "NON_FINITE",
    "NON_NUMERIC",
    "NOT_BINARY",
    "NO_CHANGE",
    "TOO_MANY_SIGNALS",
    "TYPE_MISMATCH",
    "WARNING",
    "Monitor",
    "MonitorLimits",
    "Observer",
]

# What every exported model state holds (tracks.export_model); other keys are optional, for older snapshots.
_EXPORTED_KEYS: Final = frozenset({"features", "classes", "tracks"})


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorLimits:
    """Bounds on what one model may grow to, whatever its events say."""

    max_features_per_model: int = 2_000
    max_classes_per_model: int = 100


class Monitor:
    """The detection core. Feed it events in order; it returns the alerts each one triggers.

    Deterministic: the same events in the same order give the same alerts, byte for byte.

    >>> monitor = Monitor(Policies(), config_version="v0")
    >>> alerts = [
    ...     monitor.process(InferenceEvent(model_id="m", features={"x": float(i >= 500)}),
    ...                     RecordSource(offset=i))
    ...     for i in range(1000)
    ... ]
    >>> [(i, a[0].signal) for i, a in enumerate(alerts) if a]
    [(511, 'feature:x')]
    """

    def __init__(
        self, policies: Policies, *, config_version: str, limits: MonitorLimits | None = None
    ) -> None:
        self.limits = limits or MonitorLimits()
        self.models: dict[str, ModelMonitor] = {}
        self.skipped: Counter[str] = Counter()  # values skipped, by reason
        self.suppressed: Counter[str] = Counter()  # alerts suppressed, by reason
        self.labels: Counter[str] = Counter()  # the late-label join's outcomes (labels.py)
        self.label_delays_ms: list[int] = []  # delays of joined labels; the caller drains it
        self.dirty: set[str] = set()  # models changed since the caller last cleared this (checkpoints)
        # Per model, its latest closed performance window's estimated and realized metrics (performance.py):
        # replaced whole, never changed in place, for the metrics thread to read.
        self.estimated: dict[str, dict[str, float]] = {}
        self.realized: dict[str, dict[str, float]] = {}
        # The judge holds the policies and the counters it shares with the signal kinds.
        self._judge = Judge(policies, config_version, self.skipped, self.suppressed)
        self._features = FeatureSignals(self._judge, max_features=self.limits.max_features_per_model)
        self._outputs = OutputSignals(
            self._judge, labels=self.labels, max_classes=self.limits.max_classes_per_model
        )
        self._steady = SteadyModels()  # models whose plain events skip the full path (lanes.py)

    @property
    def policies(self) -> Policies:
        """The policies in force (`reconfigure` replaces them)."""
        return self._judge.policies

    @property
    def config_version(self) -> str:
        """The config version later alerts carry."""
        return self._judge.config_version

    @property
    def observer(self) -> Observer | None:
        """Called with (model_id, signal, index of the value in the signal's stream, value, detector level:
        NO_CHANGE, WARNING or DRIFT) for every value fed to a detector. For offline tools (replay reports);
        the service leaves it None. With an observer, every value takes the full feed (no armed tracks)."""
        return self._judge.observer

    @observer.setter
    def observer(self, observer: Observer | None) -> None:
        self._judge.observer = observer
        if observer is not None:
            for model in self.models.values():
                self._steady.unsteady(model)
                for track in model.each_track():
                    track.disarm()

    def model(self, model_id: str) -> ModelMonitor:
        model = self.models.get(model_id)
        if model is None:
            model = self.models[model_id] = ModelMonitor(model_id, self.policies.plan_for(model_id))
        return model

    def process(self, event: InferenceEvent, source: RecordSource, *, live: bool = True) -> list[DriftAlert]:
        """One event through the full path: every value fed and judged."""
        model = self.model(event.model_id)
        self._steady.unsteady(model)
        self.dirty.add(event.model_id)
        model.events += 1
        alerts: list[DriftAlert] = []
        out = alerts if live else []
        self._features.take(model, event, source, out)
        if model.pca is not None:
            self._reconstruction(model, event, source, out)
        self._outputs.take(model, event, source, alerts, live)
        if model.performance is not None:
            self._performance(model, event, source, out)
        if model.window.opened_at is not None:
            self._judge.close_window(model, event, source, out)
        if model.reference is not None:
            for result in model.reference.add(event, source, model.events):
                if result.crossed:
                    self._judge.reference(model, event, source, result, out)
        return alerts

    def _reconstruction(
        self, model: ModelMonitor, event: InferenceEvent, source: RecordSource, out: list[DriftAlert]
    ) -> None:
        """The event's reconstruction error under its model's reference PCA: `multivariate:reconstruction`."""
        track = model.named(RECONSTRUCTION_SIGNAL, "multivariate")
        pca = model.pca
        if track is None or pca is None:
            return
        error = pca.error(event.features)
        if error is None:  # a feature of the PCA absent, null, or not a finite number: no row to project
            self.skipped[INCOMPLETE_ROW] += 1
            return
        self._judge.feed(model, track, error, event, source, out)

    def _performance(
        self, model: ModelMonitor, event: InferenceEvent, source: RecordSource, out: list[DriftAlert]
    ) -> None:
        """The event in its model's performance window; a window it closes publishes its estimates."""
        watch = model.performance
        assert watch is not None
        outcome = watch.add(model.model_id, event)
        if isinstance(outcome, str):
            self.skipped[f"performance_{outcome}"] += 1
        elif outcome is not None:
            self.estimated[model.model_id] = {name: e.value for name, e in outcome.estimates.items()}
            if outcome.realized is not None:
                self.realized[model.model_id] = dict(outcome.realized)
            self._judge.performance(model, event, source, outcome, watch.reference, out)

    def process_many(
        self,
        events: Sequence[InferenceEvent],
        source: Callable[[int], RecordSource],
        *,
        live: bool = True,
    ) -> list[tuple[int, list[DriftAlert]]]:
        """Events of any models in record order, and the source of the i-th: the same alerts and state as
        `process` on each in turn, each list of alerts with the index of the event that triggered it.

        Cheaper per event: the plain events of steady models go to River in one call (lanes.py), whatever
        the number of models the batch is spread over."""
        found: list[tuple[int, list[DriftAlert]]] = []
        process = self.process
        if self._judge.observer is not None:  # every value to the observer: the full path
            for index, event in enumerate(events):
                if alerts := process(event, source(index), live=live):
                    found.append((index, alerts))
            return found
        models, dirty = self.models, self.dirty
        shapes, find = self._steady.shapes, self._steady.find
        queue = Queue()
        index, total = 0, len(events)
        while index < total:
            # Queue the plain events up to the next that is not plain, or the end.
            while index < total:
                event = events[index]
                model_id = event.model_id
                model = models.get(model_id)
                if model is None:
                    break
                shape = shapes.get(model_id) or find(model)
                if shape is None or (values := plain_values(shape, event)) is None:
                    break
                queue.add(index, shape, values)
                dirty.add(model_id)
                index += 1
            if queue:
                drifted = queue.feed()
                if drifted is not None:
                    index = drifted  # it runs the full path now; the events queued after it are queued again
            if index < total:
                if alerts := process(events[index], source(index), live=live):
                    found.append((index, alerts))
                index += 1
        return found

    def label(
        self, model_id: str, event_id: str, label: Scalar, source: RecordSource, *, live: bool = True
    ) -> list[DriftAlert]:
        """A late label (from the labels topic) for an earlier prediction of this model."""
        model = self.model(model_id)
        join = model.join
        if join is None:
            raise ValueError("late labels need a labels policy (Policies.labels)")
        self._steady.unsteady(model)
        self.dirty.add(model_id)
        join.position = source.offset + 1
        delay = join.label(event_id, label, source.timestamp_ms, live, self.labels)
        if delay is not None:
            self.label_delays_ms.append(delay)
        alerts: list[DriftAlert] = []
        self._outputs.errors(model, join.release(live), alerts)
        if model.performance is not None and (realized := model.performance.late_label(event_id, label)):
            self.realized[model_id] = realized  # a closed window's realized metrics, its labels all in
        return alerts

    def label_position(self, model_id: str) -> int | None:
        """The next labels-topic offset a model's state reflects (None: no late label yet)."""
        model = self.models.get(model_id)
        return None if model is None or model.join is None else model.join.position

    def export_model(self, model_id: str) -> dict[str, Any]:
        """A model's state as plain containers around River's objects: the body of a snapshot."""
        model = self.models[model_id]
        self._steady.unsteady(model)
        return export_model(model)

    def restore_model(self, model_id: str, state: dict[str, Any]) -> int:
        """Rebuild a model from `export_model`'s output under the current config.

        Signals whose detector settings differ from the saved ones start fresh; returns how many did.
        A state of another shape (a signed snapshot can still hold anything the unpickler allows) raises
        `SnapshotRejected` and leaves the model absent, never half restored.
        """
        self.models.pop(model_id, None)
        self._steady.forget(model_id)
        try:
            if not isinstance(state, dict) or _EXPORTED_KEYS - state.keys():
                raise TypeError(f"a {type(state).__name__}, not the dict of an exported model")
            return restore_model(self.model(model_id), state)
        except (TypeError, ValueError, LookupError, AttributeError) as exc:
            self.models.pop(model_id, None)
            raise SnapshotRejected(REJECT_SHAPE, f"model {model_id!r}: {type(exc).__name__}: {exc}") from None

    def reconfigure(self, policies: Policies, *, config_version: str) -> int:
        """Apply new policies to every model: a signal whose detector settings changed starts fresh, every
        other keeps its detector (cooldowns, enabled flags and mutes apply at once). Returns how many
        signals started fresh. Later alerts carry `config_version`."""
        self._judge.policies = policies
        self._judge.config_version = config_version
        fresh = 0
        for model_id in list(self.models):
            state = self.export_model(model_id)
            fresh += self.restore_model(model_id, state)
            self.dirty.add(model_id)
        return fresh

    def detector_count(self) -> int:
        """Detectors held across all models (safe to call from another thread)."""
        return sum(model.detectors for model in list(self.models.values()))

    def drop_model(self, model_id: str) -> None:
        self.models.pop(model_id, None)
        self._steady.forget(model_id)
        self.dirty.discard(model_id)
        self.estimated.pop(model_id, None)
        self.realized.pop(model_id, None)
