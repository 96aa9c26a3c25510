"""Per-model signals and detectors: one event in, the alerts it triggers out.

Signals of a model (README "Signals"; docs/ARCHITECTURE.md §2):

- `feature:<name>`            numeric and bool features (bools as 0/1);
- `category:<name>=<value>`   a categorical feature: one 0/1 stream per frequent category, and `=_other`;
- `new_category:<name>`       one alert per category first seen after the warm-up (categorical.py);
- `missing:<name>`            1 when a feature this model has sent before is absent or null, else 0;
- `quality:type_mismatch`     1 for an event with a value of the wrong type for its feature, else 0;
- `quality:out_of_range`      1 for an event with a numeric value outside its feature's bounds (quality.py);
- `prediction`                a numeric prediction, or `prediction:<class>` (one 0/1 stream per class);
- `score`                     the model's score;
- `error`                     when a label is known: |prediction - label| for numbers, 0/1 for classes;
                              with a labels topic, in prediction order once the label has arrived (labels.py);
- `model`                     a model-level alert grouping drifting signals (lifecycle.py).

A value that cannot reach a detector (NaN, infinity, text where a number belongs, a non-0/1 value for a binary
detector) is skipped for that signal and counted by reason: one NaN fed to River's ADWIN disables it for good.

`live=False` marks an event whose alerts were published before (a restored partition being brought up to
date): its detectors are updated, its alerts are not returned.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from streamdrift.core.alert import AlertLevel, DriftAlert, RecordSource, alert_id
from streamdrift.core.categorical import OTHER, CategoryProfile
from streamdrift.core.columns import take_columns
from streamdrift.core.detectors import DRIFT, NO_CHANGE
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.labels import Awaiting
from streamdrift.core.plan import Policies
from streamdrift.core.quality import FeatureRange
from streamdrift.core.snapshot import REJECT_SHAPE, SnapshotRejected
from streamdrift.core.tracks import (
    CATEGORICAL,
    NUMERIC,
    OUT_OF_RANGE_SIGNAL,
    TYPE_MISMATCH_SIGNAL,
    UNSETTLED,
    FeatureWatch,
    ModelMonitor,
    SignalTrack,
    export_model,
    restore_model,
)

# Skip reasons: metric labels, part of the documented contract.
NON_FINITE: Final = "non_finite"
NON_NUMERIC: Final = "non_numeric"
NOT_BINARY: Final = "not_binary"
TOO_MANY_SIGNALS: Final = "too_many_signals"
TYPE_MISMATCH: Final = "type_mismatch"

# What every exported model state holds (tracks.export_model); other keys are optional, for older snapshots.
_EXPORTED_KEYS: Final = frozenset({"features", "classes", "tracks"})

# What an event's feature values say for the quality signals (Monitor._features).
MISMATCH: Final = 1  # a value of the wrong type for its feature
CHECKED: Final = 2  # a feature with known bounds: the event counts for out-of-range
OUTSIDE: Final = 4  # a value outside its feature's bounds


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
        self.policies = policies
        self.config_version = config_version
        self.limits = limits or MonitorLimits()
        self.models: dict[str, ModelMonitor] = {}
        self.skipped: Counter[str] = Counter()  # values skipped, by reason
        self.suppressed: Counter[str] = Counter()  # alerts suppressed, by reason
        self.labels: Counter[str] = Counter()  # the late-label join's outcomes (labels.py)
        self.label_delays_ms: list[int] = []  # delays of joined labels; the caller drains it
        self.dirty: set[str] = set()  # models changed since the caller last cleared this (checkpoints)
        self._observer: Callable[[str, str, int, float, int], None] | None = None

    @property
    def observer(self) -> Callable[[str, str, int, float, int], None] | None:
        """Called with (model_id, signal, index of the value in the signal's stream, value, detector level:
        NO_CHANGE, WARNING or DRIFT) for every value fed to a detector. For offline tools (replay reports);
        the service leaves it None. With an observer, every value takes the full feed (no armed tracks)."""
        return self._observer

    @observer.setter
    def observer(self, observer: Callable[[str, str, int, float, int], None] | None) -> None:
        self._observer = observer
        if observer is not None:
            for model in self.models.values():
                for track in model.each_track():
                    track.disarm()

    def model(self, model_id: str) -> ModelMonitor:
        model = self.models.get(model_id)
        if model is None:
            model = self.models[model_id] = ModelMonitor(model_id, self.policies.plan_for(model_id))
        return model

    def process(self, event: InferenceEvent, source: RecordSource, *, live: bool = True) -> list[DriftAlert]:
        model = self.model(event.model_id)
        self.dirty.add(event.model_id)
        model.events += 1
        alerts: list[DriftAlert] = []
        out = alerts if live else []
        self._features(model, event, source, out)
        self._outputs(model, event, source, alerts, live)
        if model.window.opened_at is not None:
            self._close_window(model, event, source, out)
        return alerts

    def process_batch(
        self,
        model_id: str,
        events: Sequence[InferenceEvent],
        source: Callable[[int], RecordSource],
        *,
        live: bool = True,
    ) -> list[tuple[int, list[DriftAlert]]]:
        """Events of one model, in order, and the source of the i-th: the same alerts and state as `process`
        on each in turn, each list of alerts with the index of the event that triggered it.

        Cheaper per event: over the leading events that only armed tracks need, each track takes its
        column of values at once (columns.py)."""
        model = self.model(model_id)
        self.dirty.add(model_id)
        done = 0 if self._observer is not None else take_columns(model, events)
        found = []
        process = self.process
        for index in range(done, len(events)):
            alerts = process(events[index], source(index), live=live)
            if alerts:
                found.append((index, alerts))
        return found

    def label(
        self, model_id: str, event_id: str, label: Scalar, source: RecordSource, *, live: bool = True
    ) -> list[DriftAlert]:
        """A late label (from the labels topic) for an earlier prediction of this model."""
        model = self.model(model_id)
        join = model.join
        if join is None:
            raise ValueError("late labels need a labels policy (Policies.labels)")
        self.dirty.add(model_id)
        join.position = source.offset + 1
        delay = join.label(event_id, label, source.timestamp_ms, live, self.labels)
        if delay is not None:
            self.label_delays_ms.append(delay)
        alerts: list[DriftAlert] = []
        self._errors(model, join.release(live), alerts)
        return alerts

    def label_position(self, model_id: str) -> int | None:
        """The next labels-topic offset a model's state reflects (None: no late label yet)."""
        model = self.models.get(model_id)
        return None if model is None or model.join is None else model.join.position

    def export_model(self, model_id: str) -> dict[str, Any]:
        """A model's state as plain containers around River's objects: the body of a snapshot."""
        return export_model(self.models[model_id])

    def restore_model(self, model_id: str, state: dict[str, Any]) -> int:
        """Rebuild a model from `export_model`'s output under the current config.

        Signals whose detector settings differ from the saved ones start fresh; returns how many did.
        A state of another shape (a signed snapshot can still hold anything the unpickler allows) raises
        `SnapshotRejected` and leaves the model absent, never half restored.
        """
        self.models.pop(model_id, None)
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

    # ---- inputs ----------------------------------------------------------------------------------

    def _features(
        self, model: ModelMonitor, event: InferenceEvent, source: RecordSource, alerts: list[DriftAlert]
    ) -> None:
        values = event.features
        known = model.features
        for name in values:
            if name not in known:
                self._watch(model, name)
        flags = 0  # MISMATCH, CHECKED, OUTSIDE: what the event says for the quality signals
        feed = self._feed
        # The hot loop of the service: once per feature per event. Locals over attributes, nothing looked
        # up twice, the common value (a finite float of a numeric feature without bounds) handled here and
        # every other in `_value`, and an armed track's value straight to River (SignalTrack): most values
        # of a calm stream cost one call.
        for name, watch in known.items():
            raw = values.get(name)
            missing = watch.missing
            if missing is not None:
                flag = 1.0 if raw is None else 0.0
                lane = missing.fast
                if lane is None:
                    feed(model, missing, flag, event, source, alerts)
                elif lane(flag):
                    self._lane_drift(model, missing, flag, event, source, alerts)
                else:
                    missing.seen += 1
            if watch.plain and type(raw) is float and raw - raw == 0.0:  # finite: inf - inf, nan - nan: nan
                numeric = watch.numeric
                if numeric is not None:
                    lane = numeric.fast
                    if lane is None:
                        feed(model, numeric, raw, event, source, alerts)
                    elif lane(raw):
                        self._lane_drift(model, numeric, raw, event, source, alerts)
                    else:
                        numeric.seen += 1
            elif raw is not None or watch.bounds is not None:
                flags |= self._value(model, name, watch, raw, event, source, alerts)
        if known:
            track = model.named(TYPE_MISMATCH_SIGNAL, "type_mismatch")
            if track is not None:
                feed(model, track, 1.0 if flags & MISMATCH else 0.0, event, source, alerts)
        if flags & CHECKED:
            track = model.named(OUT_OF_RANGE_SIGNAL, "out_of_range")
            if track is not None:
                feed(model, track, 1.0 if flags & OUTSIDE else 0.0, event, source, alerts)

    def _value(
        self,
        model: ModelMonitor,
        name: str,
        watch: FeatureWatch,
        raw: Scalar,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> int:
        """Any feature value but the common one (see `_features`): a first value, which settles the
        feature's type, a category, an int or bool, a value that cannot be fed, a feature with bounds.
        Returns the MISMATCH, CHECKED and OUTSIDE flags it sets."""
        flags = 0
        bounds = watch.bounds
        if bounds is not None and bounds.seen >= bounds.warmup:
            flags = CHECKED  # known bounds: the event counts for out-of-range, whatever its value
        if raw is None:
            return flags
        kind = watch.kind
        if kind == UNSETTLED:
            kind, bounds = self._settle(model, name, watch, raw)
        if kind == CATEGORICAL:
            if type(raw) is str:
                self._category(model, name, watch, raw, event, source, alerts)
                return flags
            self.skipped[TYPE_MISMATCH] += 1
            return flags | MISMATCH
        if type(raw) is str:
            self.skipped[TYPE_MISMATCH] += 1
            return flags | MISMATCH
        value = self._number(raw)
        if value is None:
            return flags
        if bounds is not None and (out := bounds.outside(value)) is not None:
            flags |= CHECKED | (OUTSIDE if out else 0)
        if watch.numeric is not None:
            self._feed(model, watch.numeric, value, event, source, alerts)
        return flags

    def _watch(self, model: ModelMonitor, name: str) -> None:
        """Start watching a feature the model has not sent before (its type settles at its first value)."""
        if len(model.features) >= self.limits.max_features_per_model:
            self.skipped[TOO_MANY_SIGNALS] += 1
            return
        model.features[name] = FeatureWatch(model.track(f"missing:{name}", model.plan.signal("missing")))

    def _settle(
        self, model: ModelMonitor, name: str, watch: FeatureWatch, raw: Scalar
    ) -> tuple[int, FeatureRange | None]:
        """A feature's first non-null value fixes its type, and so its signals: (its kind, its bounds)."""
        plan, policies = model.plan, self.policies
        if type(raw) is str:
            watch.kind = CATEGORICAL
            watch.profile = CategoryProfile(policies.categorical)
        else:
            watch.kind = NUMERIC
            watch.numeric = model.track(f"feature:{name}", plan.feature(name))
            if plan.signal("out_of_range").enabled:
                watch.bounds = FeatureRange(policies.ranges, policies.ranges.given(model.model_id, name))
            watch.plain = watch.bounds is None
        return watch.kind, watch.bounds

    def _category(
        self,
        model: ModelMonitor,
        name: str,
        watch: FeatureWatch,
        value: str,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        profile = watch.profile
        assert profile is not None
        if profile.warming_up:
            if profile.learn(value):  # the warm-up is over: the frequent categories get their streams
                policy = model.plan.signal("categorical")
                for category in profile.top:
                    watch.categories[category] = model.track(f"category:{name}={category}", policy)
                watch.other = model.track(f"category:{name}={OTHER}", policy)
            return
        if self.policies.categorical.new_category and profile.is_new(value):
            self._new_category(model, name, value, profile, event, source, alerts)
        feed = self._feed
        for category, track in watch.categories.items():
            if track is not None:
                feed(model, track, 1.0 if category == value else 0.0, event, source, alerts)
        if watch.other is not None:
            feed(model, watch.other, 0.0 if value in watch.categories else 1.0, event, source, alerts)

    def _outputs(
        self,
        model: ModelMonitor,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
        live: bool,
    ) -> None:
        """The event's own detections reach `alerts` only when it is live; so do the late-label join's
        releases (labels.py), which may be live even when the event that released them is not."""
        own = alerts if live else []
        prediction = event.prediction
        if prediction is not None:
            if type(prediction) is str:
                self._classes(model, prediction, event, source, own)
            else:
                self._output(model, "prediction", prediction, event, source, own)
        if event.score is not None:
            self._output(model, "score", event.score, event, source, own)
        if prediction is None:
            return
        join = model.join
        if join is not None:
            join.predict(
                event.event_id, prediction, event.label, source, event.model_version, event.timestamp_ms,
                live, self.labels,
            )  # fmt: skip
            self._errors(model, join.release(live), alerts)
        elif event.label is not None:
            self._error(model, prediction, event.label, event, source, own)

    def _output(
        self,
        model: ModelMonitor,
        name: Literal["prediction", "score"],
        raw: Scalar,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """A numeric prediction or the score: the one signal of that name, made at its first value."""
        tracks = model.tracks
        track = tracks[name] if name in tracks else model.named(name, name)
        if track is None:
            return
        value = raw if type(raw) is float and raw - raw == 0.0 else self._number(raw)  # as in _features
        if value is not None:
            self._feed(model, track, value, event, source, alerts)

    def _errors(self, model: ModelMonitor, released: list[Awaiting], alerts: list[DriftAlert]) -> None:
        """Feed the predictions the join released, in prediction order; only live ones may alert."""
        for entry in released:
            event = InferenceEvent(
                model_id=model.model_id, model_version=entry.model_version, timestamp_ms=entry.event_ms,
                features={}, prediction=entry.prediction, label=entry.label,
            )  # fmt: skip
            out = alerts if entry.live else []
            self._error(model, entry.prediction, entry.label, event, entry.source, out)

    def _error(
        self,
        model: ModelMonitor,
        prediction: Scalar,
        label: Scalar,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        track = model.named("error", "error")
        if track is None:
            return
        numeric = (int, float)
        if (
            isinstance(prediction, numeric)
            and isinstance(label, numeric)
            and not isinstance(prediction, bool)
            and not isinstance(label, bool)
        ):
            error = abs(prediction - label)
            if not math.isfinite(error):
                self.skipped[NON_FINITE] += 1
                return
            value = float(error)
        else:
            value = 0.0 if prediction == label else 1.0
        self._feed(model, track, value, event, source, alerts)

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

    # ---- detection and alerts --------------------------------------------------------------------

    def _feed(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        value: float,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        lane = track.fast
        if lane is not None:
            if lane(value):
                self._lane_drift(model, track, value, event, source, alerts)
            else:
                track.seen += 1
            return
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
        self._judge(model, track, value, detector.update(value), event, source, alerts)

    def _lane_drift(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        value: float,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """An armed track's detector drifted on `value` (already fed): back to the full feed."""
        track.disarm()
        self._judge(model, track, value, track.detector.drifted_in_lane(), event, source, alerts)

    def _judge(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        value: float,
        level: int,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """What a value the detector took means: episodes, cooldowns, mutes and the alerts they let out."""
        track.seen += 1
        observer = self._observer
        if observer is not None:
            observer(model.model_id, track.name, track.seen - 1, value, level)
        if level != DRIFT and track.episode is not None:
            track.episode_quiet += 1
            if track.episode_quiet >= track.resolve_after:
                alerts.append(self._alert(model, track, "resolved", event, source, episode=track.episode))
                track.episode = None
        if level == NO_CHANGE:
            if observer is None:
                track.arm()
            return
        if level == DRIFT and track.episode is not None:
            track.episode_quiet = 0  # a drift joins the open episode, whether published or not
            track.episode_drifts += 1
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
        if level != DRIFT:
            alerts.append(self._alert(model, track, "warning", event, source, episode=track.episode))
            return
        alert = self._alert(model, track, "drift", event, source, episode=track.episode)
        alerts.append(alert)
        if track.episode is None and track.resolve_after > 0:
            track.episode, track.episode_quiet, track.episode_drifts = alert.alert_id, 0, 1
        model_alerts = self.policies.model_alerts
        if model_alerts.enabled and model_alerts.watches(track.name):
            model.window.add(track.name, model.events, source)

    def _alert(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        level: AlertLevel,
        event: InferenceEvent,
        source: RecordSource,
        *,
        episode: str | None,
    ) -> DriftAlert:
        detector = track.detector
        this_id = alert_id(model.model_id, track.name, level, source)
        stats = detector.stats()
        if level == "resolved":
            stats = {**stats, "episode_drifts": track.episode_drifts, "quiet_values": track.episode_quiet}
        return DriftAlert(
            alert_id=this_id,
            level=level,
            model_id=model.model_id,
            model_version=event.model_version,
            signal=track.name,
            detector_type=detector.spec.type,
            detector_params=detector.full_params(),
            source=source,
            observations=detector.observations,
            stats=stats,
            event_time_ms=event.timestamp_ms,
            config_version=self.config_version,
            # A drift outside an episode opens one named after itself.
            episode_id=episode if episode is not None or level != "drift" else this_id,
        )

    def _new_category(
        self,
        model: ModelMonitor,
        name: str,
        value: str,
        profile: CategoryProfile,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        policy = profile.policy
        self._one_off(
            model, f"new_category:{name}", event, source, alerts,
            detector=("new_category", {"warmup": policy.warmup, "max_categories": policy.max_categories}),
            observations=profile.seen, stats={"value": value, "known": len(profile.known or ())},
        )  # fmt: skip

    def _close_window(
        self, model: ModelMonitor, event: InferenceEvent, source: RecordSource, alerts: list[DriftAlert]
    ) -> None:
        """At the end of a model's window: one `model` alert if enough distinct signals drifted in it."""
        window, policy = model.window, self.policies.model_alerts
        closes_at = window.closes_at(policy.window)
        if closes_at is None or model.events < closes_at:
            return
        signals, opened = tuple(window.signals), window.source
        window.clear()
        if len(signals) < policy.min_signals or opened is None:
            return
        opened_at = {"topic": opened.topic, "partition": opened.partition, "offset": opened.offset}
        self._one_off(
            model, "model", event, source, alerts,
            detector=("model", {"min_signals": policy.min_signals, "window": policy.window}),
            observations=policy.window, stats={"drifting": len(signals), "opened_at": opened_at},
            signals=signals,
        )  # fmt: skip

    def _one_off(
        self,
        model: ModelMonitor,
        signal: str,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
        *,
        detector: tuple[str, dict[str, Any]],
        observations: int,
        stats: dict[str, Any],
        signals: tuple[str, ...] | None = None,
    ) -> None:
        """A drift alert that is not a River detector's (a new category, a model-level alert): its own
        episode, never resolved; mutes apply to it like to any other."""
        at_ms = source.timestamp_ms if source.timestamp_ms is not None else event.timestamp_ms
        if self.policies.mutes and self.policies.muted(model.model_id, signal, at_ms):
            self.suppressed["mute"] += 1
            return
        this_id = alert_id(model.model_id, signal, "drift", source)
        detector_type, params = detector
        alerts.append(
            DriftAlert(
                alert_id=this_id,
                level="drift",
                model_id=model.model_id,
                model_version=event.model_version,
                signal=signal,
                detector_type=detector_type,
                detector_params=params,
                source=source,
                observations=observations,
                stats=stats,
                event_time_ms=event.timestamp_ms,
                config_version=self.config_version,
                episode_id=this_id,
                signals=signals,
            )
        )
