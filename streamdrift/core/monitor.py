"""Per-model signals and detectors: one event in, the alerts it triggers out.

Signals of a model (DESIGN §3):

- `feature:<name>`  numeric and bool features (bools as 0/1);
- `missing:<name>`  1 when a feature this model has sent before is absent or null, else 0;
- `prediction`      a numeric prediction, or `prediction:<class>` (one 0/1 stream per class) for labels;
- `score`           the model's score;
- `error`           when a label is present: |prediction - label| for numbers, 0/1 for classes.

A value that cannot reach a detector (NaN, infinity, text where a number belongs, a non-0/1 value for a binary
detector) is skipped for that signal and counted by reason: one NaN fed to River's ADWIN disables it for good.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from streamdrift.core.alert import AlertLevel, DriftAlert, RecordSource, alert_id
from streamdrift.core.detectors import DRIFT, NO_CHANGE, Detector
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.plan import ModelPlan, Policies, SignalPolicy
from streamdrift.core.scaling import Scaler

# Skip reasons: metric labels, part of the documented contract.
NON_FINITE: Final = "non_finite"
NON_NUMERIC: Final = "non_numeric"
NOT_BINARY: Final = "not_binary"
TOO_MANY_SIGNALS: Final = "too_many_signals"


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorLimits:
    """Bounds on what one model may grow to, whatever its events say."""

    max_features_per_model: int = 2_000
    max_classes_per_model: int = 100


class SignalTrack:
    """One signal of one model: its detector, and the cooldown that gates its alerts."""

    __slots__ = (
        "cooldown", "cooldown_ms", "detector", "name", "quiet_until", "quiet_until_ms", "scaler", "seen",
    )  # fmt: skip

    def __init__(self, name: str, policy: SignalPolicy, model_id: str) -> None:
        self.name = name
        self.detector = Detector(policy.detector, seed_key=f"{model_id}/{name}")
        self.scaler = None if policy.standardize is None else Scaler(policy.standardize)
        self.cooldown = policy.cooldown
        self.cooldown_ms = round(policy.cooldown_s * 1000)
        self.seen = 0
        self.quiet_until = 0  # alerts are suppressed while seen <= quiet_until
        self.quiet_until_ms = 0  # ... and while the record time is before this

    def export(self) -> tuple[Any, ...]:
        spec = self.detector.spec
        scaler = self.scaler
        return (
            spec.type, spec.params, self.seen, self.quiet_until, *self.detector.export(), self.quiet_until_ms,
            None if scaler is None else scaler.export(), None if scaler is None else scaler.spec.key(),
        )  # fmt: skip

    def restore(self, saved: tuple[Any, ...]) -> bool:
        """Take over a saved detector if it was built with this track's settings; False when they changed.

        The cooldown counters carry over either way: a changed cooldown applies from the next drift. A
        changed standardisation changes what the detector sees, so it starts fresh then too.
        """
        detector_type, params, seen, quiet_until, observations, in_warning, river_detector = saved[:7]
        self.seen, self.quiet_until = seen, quiet_until
        # Fields added later are absent from older snapshots.
        self.quiet_until_ms = saved[7] if len(saved) > 7 else 0
        scaler_state, standardize = (saved[8], saved[9]) if len(saved) > 9 else (None, None)
        spec = self.detector.spec
        if (detector_type, tuple(params)) != (spec.type, spec.params):
            return False
        scaler = self.scaler
        wanted = None if scaler is None else scaler.spec.key()
        if wanted != (None if standardize is None else tuple(standardize)):
            return False
        if scaler is not None and scaler_state is not None:
            scaler.restore(tuple(scaler_state))
        self.detector = Detector.restored(spec, observations, in_warning, river_detector)
        return True


class ModelMonitor:
    """Everything streamdrift holds for one model."""

    __slots__ = ("classes", "detectors", "features", "model_id", "plan", "tracks")

    def __init__(self, model_id: str, plan: ModelPlan) -> None:
        self.model_id = model_id
        self.plan = plan
        # name -> the feature's track and its missing-value track (None when that signal is disabled)
        self.features: dict[str, tuple[SignalTrack | None, SignalTrack | None]] = {}
        self.classes: dict[str, SignalTrack | None] = {}
        self.tracks: dict[str, SignalTrack | None] = {}
        self.detectors = 0  # tracks made: read by the metrics thread without walking the dicts above

    def track(self, name: str, policy: SignalPolicy) -> SignalTrack | None:
        if not policy.enabled:
            return None
        self.detectors += 1
        return SignalTrack(name, policy, self.model_id)


class Monitor:
    """The detection core. Feed it events in order; it returns the alerts each one triggers.

    Deterministic: the same events in the same order give the same alerts, byte for byte.

    >>> monitor = Monitor(Policies(), config_version="v0")
    >>> from streamdrift.core.event import InferenceEvent
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
        self.policies = policies
        self.config_version = config_version
        self.limits = limits or MonitorLimits()
        self.models: dict[str, ModelMonitor] = {}
        self.skipped: Counter[str] = Counter()  # values skipped, by reason
        self.suppressed: Counter[str] = Counter()  # alerts suppressed, by reason
        self.dirty: set[str] = set()  # models changed since the caller last cleared this (checkpoints)
        # Called with (model_id, signal, index of the value in the signal's stream, value, detector level:
        # NO_CHANGE, WARNING or DRIFT) for every value fed to a detector. For offline tools (replay reports);
        # the service leaves it None.
        self.observer: Callable[[str, str, int, float, int], None] | None = None

    def model(self, model_id: str) -> ModelMonitor:
        model = self.models.get(model_id)
        if model is None:
            model = self.models[model_id] = ModelMonitor(model_id, self.policies.plan_for(model_id))
        return model

    def process(self, event: InferenceEvent, source: RecordSource) -> list[DriftAlert]:
        model = self.model(event.model_id)
        self.dirty.add(event.model_id)
        alerts: list[DriftAlert] = []
        self._features(model, event, source, alerts)
        self._outputs(model, event, source, alerts)
        return alerts

    def export_model(self, model_id: str) -> dict[str, Any]:
        """A model's state as plain containers around River's objects: the body of a snapshot."""
        model = self.models[model_id]

        def saved(track: SignalTrack | None) -> tuple[Any, ...] | None:
            return None if track is None else track.export()

        return {
            "features": [(name, saved(f), saved(m)) for name, (f, m) in model.features.items()],
            "classes": [(label, saved(track)) for label, track in model.classes.items()],
            "tracks": [(kind, saved(track)) for kind, track in model.tracks.items()],
        }

    def restore_model(self, model_id: str, state: dict[str, Any]) -> int:
        """Rebuild a model from `export_model`'s output under the current config.

        Signals whose detector settings differ from the saved ones start fresh; returns how many did.
        """
        self.models.pop(model_id, None)
        model = self.model(model_id)
        plan = model.plan
        fresh = 0

        def rebuilt(name: str, policy: SignalPolicy, saved: tuple[Any, ...] | None) -> SignalTrack | None:
            nonlocal fresh
            track = model.track(name, policy)
            if track is not None and saved is not None and not track.restore(saved):
                fresh += 1
            return track

        for name, feature, missing in state["features"]:
            model.features[name] = (
                rebuilt(f"feature:{name}", plan.feature(name), feature),
                rebuilt(f"missing:{name}", plan.signal("missing"), missing),
            )
        for label, saved in state["classes"]:
            model.classes[label] = rebuilt(f"prediction:{label}", plan.signal("prediction"), saved)
        for kind, saved in state["tracks"]:
            model.tracks[kind] = rebuilt(kind, plan.signal(kind), saved)
        return fresh

    def reconfigure(self, policies: Policies, *, config_version: str) -> int:
        """Apply new policies to every model: a signal whose detector settings changed starts fresh, every
        other keeps its detector (cooldowns, enabled flags and mutes apply at once). Returns how many
        signals started fresh. Later alerts carry `config_version`."""
        self.policies = policies
        self.config_version = config_version
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
        self.dirty.discard(model_id)

    def _features(
        self, model: ModelMonitor, event: InferenceEvent, source: RecordSource, alerts: list[DriftAlert]
    ) -> None:
        values = event.features
        known = model.features
        for name in values:
            if name not in known:
                if len(known) >= self.limits.max_features_per_model:
                    self.skipped[TOO_MANY_SIGNALS] += 1
                    continue
                plan = model.plan
                known[name] = (
                    model.track(f"feature:{name}", plan.feature(name)),
                    model.track(f"missing:{name}", plan.signal("missing")),
                )
        for name, (feature_track, missing_track) in known.items():
            raw = values.get(name)
            if missing_track is not None:
                self._feed(model, missing_track, 1.0 if raw is None else 0.0, event, source, alerts)
            if feature_track is not None and raw is not None:
                value = self._number(raw)
                if value is not None:
                    self._feed(model, feature_track, value, event, source, alerts)

    def _outputs(
        self, model: ModelMonitor, event: InferenceEvent, source: RecordSource, alerts: list[DriftAlert]
    ) -> None:
        prediction = event.prediction
        if prediction is not None:
            if isinstance(prediction, str):
                self._classes(model, prediction, event, source, alerts)
            else:
                track = self._named(model, "prediction")
                value = self._number(prediction) if track is not None else None
                if track is not None and value is not None:
                    self._feed(model, track, value, event, source, alerts)
        if event.score is not None:
            track = self._named(model, "score")
            value = self._number(event.score) if track is not None else None
            if track is not None and value is not None:
                self._feed(model, track, value, event, source, alerts)
        if event.label is not None and prediction is not None:
            track = self._named(model, "error")
            if track is not None:
                error = self._error(prediction, event.label)
                if error is not None:
                    self._feed(model, track, error, event, source, alerts)

    def _named(self, model: ModelMonitor, kind: str) -> SignalTrack | None:
        tracks = model.tracks
        if kind not in tracks:
            tracks[kind] = model.track(kind, model.plan.signal(kind))  # type: ignore[arg-type]
        return tracks[kind]

    def _classes(
        self,
        model: ModelMonitor,
        prediction: str,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        classes = model.classes
        if prediction not in classes:
            if len(classes) >= self.limits.max_classes_per_model:
                self.skipped[TOO_MANY_SIGNALS] += 1
            else:
                classes[prediction] = model.track(f"prediction:{prediction}", model.plan.signal("prediction"))
        for label, track in classes.items():
            if track is not None:
                self._feed(model, track, 1.0 if label == prediction else 0.0, event, source, alerts)

    def _error(self, prediction: Scalar, label: Scalar) -> float | None:
        numeric = (int, float)
        if (
            isinstance(prediction, numeric)
            and isinstance(label, numeric)
            and not isinstance(prediction, bool)
            and not isinstance(label, bool)
        ):
            error = abs(prediction - label)
            if math.isfinite(error):
                return float(error)
            self.skipped[NON_FINITE] += 1
            return None
        return 0.0 if prediction == label else 1.0

    def _number(self, raw: Scalar) -> float | None:
        if isinstance(raw, float):
            if math.isfinite(raw):
                return raw
            self.skipped[NON_FINITE] += 1
            return None
        if isinstance(raw, int):  # bools included: True -> 1.0
            return float(raw)
        self.skipped[NON_NUMERIC] += 1
        return None

    def _feed(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        value: float,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        detector = track.detector
        scaler = track.scaler
        if scaler is not None:
            scaled = scaler.transform(value)
            if scaled is None:
                return  # still learning the signal's mean and std
            value = scaled
        if detector.binary and value not in (0.0, 1.0):
            self.skipped[NOT_BINARY] += 1
            return
        level = detector.update(value)
        track.seen += 1
        if self.observer is not None:
            self.observer(model.model_id, track.name, track.seen - 1, value, level)
        if level == NO_CHANGE:
            return
        # Record time, not the wall clock: a replay or a restart suppresses exactly what the live run did.
        at_ms = source.timestamp_ms if source.timestamp_ms is not None else event.timestamp_ms
        if track.seen <= track.quiet_until or (at_ms is not None and at_ms < track.quiet_until_ms):
            self.suppressed["cooldown"] += 1
            return
        if level == DRIFT:
            track.quiet_until = track.seen + track.cooldown
            if at_ms is not None:
                track.quiet_until_ms = at_ms + track.cooldown_ms
        if self.policies.mutes and self.policies.muted(model.model_id, track.name, at_ms):
            self.suppressed["mute"] += 1  # a muted detection still starts its cooldown
            return
        alerts.append(self._alert(model, track, "drift" if level == DRIFT else "warning", event, source))

    def _alert(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        level: AlertLevel,
        event: InferenceEvent,
        source: RecordSource,
    ) -> DriftAlert:
        detector = track.detector
        return DriftAlert(
            alert_id=alert_id(model.model_id, track.name, level, source),
            level=level,
            model_id=model.model_id,
            model_version=event.model_version,
            signal=track.name,
            detector_type=detector.spec.type,
            detector_params=detector.full_params(),
            source=source,
            observations=detector.observations,
            stats=detector.stats(),
            event_time_ms=event.timestamp_ms,
            config_version=self.config_version,
        )
