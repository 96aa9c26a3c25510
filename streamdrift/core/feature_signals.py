"""An event's features as signals: `feature:`, `category:`, `new_category:`, `missing:` and the quality ones.

A feature's first non-null value settles its type: a string makes it categorical (one 0/1 stream per
frequent category, categorical.py), anything else numeric (one stream, with bounds for out-of-range when
that signal is on, quality.py). Every feature the model has sent before has a `missing:` stream.
"""

from __future__ import annotations

from typing import Final

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.categorical import OTHER, CategoryProfile
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.judge import Judge
from streamdrift.core.quality import FeatureRange
from streamdrift.core.skips import TOO_MANY_SIGNALS, TYPE_MISMATCH, number
from streamdrift.core.tracks import (
    CATEGORICAL,
    NUMERIC,
    OUT_OF_RANGE_SIGNAL,
    TYPE_MISMATCH_SIGNAL,
    UNSETTLED,
    FeatureWatch,
    ModelMonitor,
)

# What an event's feature values say for the quality signals (FeatureSignals.take).
MISMATCH: Final = 1  # a value of the wrong type for its feature
CHECKED: Final = 2  # a feature with known bounds: the event counts for out-of-range
OUTSIDE: Final = 4  # a value outside its feature's bounds


class FeatureSignals:
    """Feeds each event's feature values to their signals' detectors through the judge."""

    __slots__ = ("_feed", "_judge", "_lane_drift", "max_features", "skipped")

    def __init__(self, judge: Judge, *, max_features: int) -> None:
        self._judge = judge
        # Bound once: the hot loop calls them for most values.
        self._feed = judge.feed
        self._lane_drift = judge.lane_drift
        self.skipped = judge.skipped
        self.max_features = max_features  # features watched per model; later ones are skipped

    def take(
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
        """Any feature value but the common one (see `take`): a first value, which settles the feature's
        type, a category, an int or bool, a value that cannot be fed, a feature with bounds. Returns the
        MISMATCH, CHECKED and OUTSIDE flags it sets."""
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
        value = number(raw, self.skipped)
        if value is None:
            return flags
        if bounds is not None and (out := bounds.outside(value)) is not None:
            flags |= CHECKED | (OUTSIDE if out else 0)
        if watch.numeric is not None:
            self._feed(model, watch.numeric, value, event, source, alerts)
        return flags

    def _watch(self, model: ModelMonitor, name: str) -> None:
        """Start watching a feature the model has not sent before (its type settles at its first value)."""
        if len(model.features) >= self.max_features:
            self.skipped[TOO_MANY_SIGNALS] += 1
            return
        model.features[name] = FeatureWatch(model.track(f"missing:{name}", model.plan.signal("missing")))

    def _settle(
        self, model: ModelMonitor, name: str, watch: FeatureWatch, raw: Scalar
    ) -> tuple[int, FeatureRange | None]:
        """A feature's first non-null value fixes its type, and so its signals: (its kind, its bounds)."""
        plan, policies = model.plan, self._judge.policies
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
        if self._judge.policies.categorical.new_category and profile.is_new(value):
            self._new_category(model, name, value, profile, event, source, alerts)
        feed = self._feed
        for category, track in watch.categories.items():
            if track is not None:
                feed(model, track, 1.0 if category == value else 0.0, event, source, alerts)
        if watch.other is not None:
            feed(model, watch.other, 0.0 if value in watch.categories else 1.0, event, source, alerts)

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
        self._judge.one_off(
            model, f"new_category:{name}", event, source, alerts,
            detector=("new_category", {"warmup": policy.warmup, "max_categories": policy.max_categories}),
            observations=profile.seen, stats={"value": value, "known": len(profile.known or ())},
        )  # fmt: skip
