"""What the core holds per model: its signals' detectors and everything around them, and their snapshots.

`Monitor` (monitor.py) decides what to feed; this module is the state it feeds, and how that state is exported
to plain containers (the body of a snapshot) and rebuilt under a possibly changed config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from streamdrift.core.categorical import CategoryProfile
from streamdrift.core.detectors import Detector
from streamdrift.core.labels import LabelJoin
from streamdrift.core.lifecycle import ModelWindow
from streamdrift.core.performance import PerformanceWatch
from streamdrift.core.plan import ModelPlan, SignalKind, SignalPolicy
from streamdrift.core.quality import FeatureRange
from streamdrift.core.scaling import Scaler

# A feature's type, settled by its first non-null value: a string makes it categorical.
UNSETTLED: Final = 0
NUMERIC: Final = 1
CATEGORICAL: Final = 2

TYPE_MISMATCH_SIGNAL: Final = "quality:type_mismatch"
OUT_OF_RANGE_SIGNAL: Final = "quality:out_of_range"
RECONSTRUCTION_SIGNAL: Final = "multivariate:reconstruction"


class SignalTrack:
    """One signal of one model: its detector, the cooldown that gates its alerts, and its open episode.

    While nothing but the detector needs a value (no scaler, no open episode, no pending drift, no observer),
    the track is *armed*: `fast` is River's own update, which the caller runs instead of the whole feed and
    counts by `seen` alone; the first True it returns is a drift, and the caller disarms the track and hands
    that value to the full feed. `armed_at` keeps `detector.observations` right without a second count per
    value.
    """

    __slots__ = (
        "armed_at", "cooldown", "cooldown_ms", "detector", "episode", "episode_drifts", "episode_quiet",
        "fast", "last_drift_at", "name", "quiet_until", "quiet_until_ms", "resolve_after", "scaler", "seen",
    )  # fmt: skip

    def __init__(self, name: str, policy: SignalPolicy, model_id: str) -> None:
        self.name = name
        self.detector = Detector(policy.detector, seed_key=f"{model_id}/{name}")
        self.scaler = None if policy.standardize is None else Scaler(policy.standardize)
        self.cooldown = policy.cooldown
        self.cooldown_ms = round(policy.cooldown_s * 1000)
        self.resolve_after = policy.resolve_after
        self.seen = 0
        self.quiet_until = 0  # alerts are suppressed while seen <= quiet_until
        self.quiet_until_ms = 0  # ... and while the record time is before this
        self.episode: str | None = None  # the open episode's id
        self.episode_quiet = 0  # values since the episode's last drift
        self.episode_drifts = 0  # drifts in the episode, suppressed ones included
        self.last_drift_at = 0  # the model's event count at the episode's last drift
        self.fast: Callable[[float], bool] | None = None
        self.armed_at = 0

    def arm(self) -> None:
        """Arm the track if its values may skip the full feed (see the class docstring)."""
        if self.fast is None and self.episode is None and self.scaler is None:
            lane = self.detector.lane()
            if lane is not None:
                self.fast, self.armed_at = lane, self.seen

    def disarm(self) -> None:
        """Back to the full feed for every value."""
        self._count_lane()
        self.fast = None

    def _count_lane(self) -> None:
        """The detector's count takes in the values that went through the lane since `armed_at`."""
        if self.fast is not None:
            self.detector.observations += self.seen - self.armed_at
            self.armed_at = self.seen

    def export(self) -> tuple[Any, ...]:
        self._count_lane()  # an armed track stays armed
        spec = self.detector.spec
        scaler = self.scaler
        return (
            spec.type, spec.params, self.seen, self.quiet_until, *self.detector.export(), self.quiet_until_ms,
            None if scaler is None else scaler.export(), None if scaler is None else scaler.spec.key(),
            self.episode, self.episode_quiet, self.episode_drifts, self.last_drift_at,
        )  # fmt: skip

    def restore(self, saved: tuple[Any, ...]) -> bool:
        """Take over a saved detector if it was built with this track's settings; False when they changed.

        The cooldown counters and the open episode carry over either way: a changed cooldown applies from
        the next drift. A changed standardisation changes what the detector sees, so it starts fresh then.
        """
        detector_type, params, seen, quiet_until, observations, in_warning, river_detector = saved[:7]
        self.seen, self.quiet_until = seen, quiet_until
        # Fields added later are absent from older snapshots.
        self.quiet_until_ms = saved[7] if len(saved) > 7 else 0
        scaler_state, standardize = (saved[8], saved[9]) if len(saved) > 9 else (None, None)
        if len(saved) > 12:
            self.episode, self.episode_quiet, self.episode_drifts = saved[10:13]
        if len(saved) > 13:
            self.last_drift_at = saved[13]
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


class FeatureWatch:
    """One feature of one model: its signals, by the type its first non-null value settled."""

    __slots__ = ("bounds", "categories", "kind", "missing", "numeric", "other", "plain", "profile")

    def __init__(self, missing: SignalTrack | None) -> None:
        self.kind = UNSETTLED
        self.plain = False  # numeric without bounds: a finite float needs nothing but its detector
        self.missing = missing  # missing:<name>
        self.numeric: SignalTrack | None = None  # feature:<name>
        self.bounds: FeatureRange | None = None  # for quality:out_of_range
        self.profile: CategoryProfile | None = None  # a categorical feature's warm-up and known values
        self.categories: dict[str, SignalTrack | None] = {}  # category:<name>=<value>, after the warm-up
        self.other: SignalTrack | None = None  # category:<name>=_other


class ModelMonitor:
    """Everything streamdrift holds for one model."""

    __slots__ = (
        "classes", "detectors", "events", "features", "join", "model_id", "pca", "performance", "plan",
        "reference", "tracks", "window",
    )  # fmt: skip

    def __init__(self, model_id: str, plan: ModelPlan) -> None:
        self.model_id = model_id
        self.plan = plan
        self.features: dict[str, FeatureWatch] = {}
        self.classes: dict[str, SignalTrack | None] = {}
        self.tracks: dict[str, SignalTrack | None] = {}  # prediction, score, error, quality:*, multivariate:*
        self.detectors = 0  # tracks made: read by the metrics thread without walking the dicts above
        self.events = 0  # events of this model: the clock of model-level windows
        self.window = ModelWindow()
        labels = plan.policies.labels
        self.join = None if labels is None else LabelJoin(labels)
        reference = plan.policies.reference
        self.reference = None if reference is None else reference.window_for(model_id)
        self.pca = plan.policies.multivariate.get(model_id)  # its reconstruction error: a signal
        performance = plan.policies.performance.get(model_id)
        self.performance = None if performance is None else PerformanceWatch(performance)

    def track(self, name: str, policy: SignalPolicy) -> SignalTrack | None:
        if not policy.enabled:
            return None
        self.detectors += 1
        return SignalTrack(name, policy, self.model_id)

    def each_track(self) -> Iterator[SignalTrack]:
        for watch in self.features.values():
            yield from (t for t in (watch.missing, watch.numeric, watch.other) if t is not None)
            yield from (t for t in watch.categories.values() if t is not None)
        yield from (t for t in self.classes.values() if t is not None)
        yield from (t for t in self.tracks.values() if t is not None)

    def named(self, name: str, kind: SignalKind) -> SignalTrack | None:
        """The model's one track of this name (prediction, score, error, quality:*, multivariate:*), made at
        first use."""
        tracks = self.tracks
        if name not in tracks:
            tracks[name] = self.track(name, self.plan.signal(kind))
        return tracks[name]


def _saved(track: SignalTrack | None) -> tuple[Any, ...] | None:
    return None if track is None else track.export()


def export_model(model: ModelMonitor) -> dict[str, Any]:
    """A model's state as plain containers around River's objects: the body of a snapshot."""
    features = []
    for name, watch in model.features.items():
        profile, bounds = watch.profile, watch.bounds
        features.append((
            name, _saved(watch.numeric), _saved(watch.missing), watch.kind,
            None if bounds is None else bounds.export(), None if profile is None else profile.export(),
            [(value, _saved(track)) for value, track in watch.categories.items()], _saved(watch.other),
        ))  # fmt: skip
    return {
        "features": features,
        "classes": [(label, _saved(track)) for label, track in model.classes.items()],
        "tracks": [(name, _saved(track)) for name, track in model.tracks.items()],
        "events": model.events,
        # Not "window": KSWIN has an attribute of that name, and pickle would then share the one string
        # between the two only in a process that never restored, so equal states would differ in bytes.
        "model_window": model.window.export(),
        "join": None if model.join is None else model.join.export(),
        "reference": None if model.reference is None else model.reference.export(),
        "performance": None if model.performance is None else model.performance.export(),
    }


# A track's name -> the signal kind whose policy it follows (features and classes are handled apart).
_TRACK_KINDS: Final[dict[str, SignalKind]] = {
    "prediction": "prediction", "score": "score", "error": "error",
    TYPE_MISMATCH_SIGNAL: "type_mismatch", OUT_OF_RANGE_SIGNAL: "out_of_range",
    RECONSTRUCTION_SIGNAL: "multivariate",
}  # fmt: skip


def restore_model(model: ModelMonitor, state: dict[str, Any]) -> int:
    """Fill a new `ModelMonitor` from `export_model`'s output under its (current) plan.

    Signals whose detector settings differ from the saved ones start fresh; returns how many did.
    """
    plan = model.plan
    policies = plan.policies
    fresh = 0

    def rebuilt(name: str, policy: SignalPolicy, saved: tuple[Any, ...] | None) -> SignalTrack | None:
        nonlocal fresh
        track = model.track(name, policy)
        if track is not None and saved is not None and not track.restore(saved):
            fresh += 1
        return track

    for entry in state["features"]:
        name, numeric, missing = entry[:3]
        watch = FeatureWatch(rebuilt(f"missing:{name}", plan.signal("missing"), missing))
        # Snapshots from before categorical features knew only numeric ones.
        old: tuple[Any, ...] = (NUMERIC, None, None, [], None)
        kind, bounds, profile, categories, other = entry[3:] if len(entry) > 3 else old
        watch.kind = kind
        if kind == NUMERIC:
            watch.numeric = rebuilt(f"feature:{name}", plan.feature(name), numeric)
            if plan.signal("out_of_range").enabled:
                given = policies.ranges.given(model.model_id, name)
                watch.bounds = (
                    FeatureRange(policies.ranges, given) if bounds is None
                    else FeatureRange.restored(policies.ranges, given, bounds)
                )  # fmt: skip
            watch.plain = watch.bounds is None
        elif kind == CATEGORICAL and profile is not None:
            watch.profile = CategoryProfile.restored(policies.categorical, profile)
            policy = plan.signal("categorical")
            for value, saved in categories:
                watch.categories[value] = rebuilt(f"category:{name}={value}", policy, saved)
            if not watch.profile.warming_up:
                watch.other = rebuilt(f"category:{name}=_other", policy, other)
        model.features[name] = watch
    for label, saved in state["classes"]:
        model.classes[label] = rebuilt(f"prediction:{label}", plan.signal("prediction"), saved)
    for name, saved in state["tracks"]:
        model.tracks[name] = rebuilt(name, plan.signal(_TRACK_KINDS[name]), saved)
    model.events = state.get("events", 0)
    if state.get("model_window") is not None:
        model.window = ModelWindow.restored(state["model_window"])
    join = state.get("join")
    if policies.labels is not None and join is not None:
        model.join = LabelJoin.restored(policies.labels, join)
    saved_window = state.get("reference")
    if model.reference is not None and saved_window is not None:
        model.reference.restore(saved_window)  # another profile's window is not taken over: it starts anew
    saved_performance = state.get("performance")
    if model.performance is not None and saved_performance is not None:
        model.performance.restore(saved_performance)
    return fresh
