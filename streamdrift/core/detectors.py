"""River's change detectors behind one small interface. The only module that imports River.

Every detector is built by name (`adwin`, `page_hinkley`, `kswin`, `ddm`, `eddm`, `hddm_a`, `hddm_w`,
`fhddm`) with River's own constructor parameters, and fed exactly the values River would be fed offline,
so a detection here is a detection of River's: parity is the product's first promise.

Two adaptations, both documented in the README:

- Binary detectors take 0/1 only; any other value is refused (counted as `not_binary` by the caller).
- River's FHDDM detects a *drop* in the mean of its input (it tracks accuracy: 1 = correct), while every other
  binary detector reads 1 as an error. The wrapper feeds FHDDM `1 - x`, so `error` (1 = wrong) means the
  same to every binary detector.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Final

from river.drift import ADWIN, KSWIN, PageHinkley
from river.drift.binary import DDM, EDDM, FHDDM, HDDMA, HDDMW

# Snapshots of River's detectors are tied to River's version (ADWIN's state is opaque Rust bytes).
RIVER_VERSION: Final[str] = version("river")

NO_CHANGE: Final = 0
WARNING: Final = 1
DRIFT: Final = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamRule:
    """What one River constructor parameter accepts."""

    kind: type
    check: Callable[[Any], bool] = lambda _value: True
    expect: str = ""
    optional: bool = False


def _positive(value: float) -> bool:
    return value > 0


def _unit_open(value: float) -> bool:
    return 0 < value < 1


_INT_POS = ParamRule(kind=int, check=_positive, expect="an integer > 0")
_FLOAT_POS = ParamRule(kind=float, check=_positive, expect="a number > 0")
_FLOAT_UNIT = ParamRule(kind=float, check=_unit_open, expect="a number between 0 and 1 (exclusive)")
_BOOL = ParamRule(kind=bool, expect="true or false")


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorKind:
    """A detector type: its River class, its parameters and whether it reads 0/1 input."""

    name: str
    river_class: type
    params: Mapping[str, ParamRule]
    binary: bool
    inverted: bool = False  # feed 1 - x (FHDDM: River's input is 1 = correct)
    seeded: bool = False  # has a `seed` parameter that must be fixed for determinism


DETECTOR_KINDS: Final[Mapping[str, DetectorKind]] = {
    kind.name: kind
    for kind in (
        DetectorKind(
            name="adwin",
            river_class=ADWIN,
            binary=False,
            params={
                "delta": _FLOAT_UNIT,
                "clock": _INT_POS,
                "max_buckets": _INT_POS,
                "min_window_length": _INT_POS,
                "grace_period": _INT_POS,
            },
        ),
        DetectorKind(
            name="page_hinkley",
            river_class=PageHinkley,
            binary=False,
            params={
                "min_instances": _INT_POS,
                "delta": ParamRule(kind=float, check=lambda v: v >= 0, expect="a number >= 0"),
                "threshold": _FLOAT_POS,
                "alpha": ParamRule(kind=float, check=lambda v: 0 < v <= 1, expect="a number in (0, 1]"),
                "mode": ParamRule(
                    kind=str, check=lambda v: v in {"up", "down", "both"}, expect="'up', 'down' or 'both'"
                ),
            },
        ),
        DetectorKind(
            name="kswin",
            river_class=KSWIN,
            binary=False,
            seeded=True,
            params={
                "alpha": _FLOAT_UNIT,
                "window_size": _INT_POS,
                "stat_size": _INT_POS,
                "seed": ParamRule(kind=int, expect="an integer", optional=True),
            },
        ),
        DetectorKind(
            name="ddm",
            river_class=DDM,
            binary=True,
            params={"warm_start": _INT_POS, "warning_threshold": _FLOAT_POS, "drift_threshold": _FLOAT_POS},
        ),
        DetectorKind(
            name="eddm",
            river_class=EDDM,
            binary=True,
            params={"warm_start": _INT_POS, "alpha": _FLOAT_UNIT, "beta": _FLOAT_UNIT},
        ),
        DetectorKind(
            name="hddm_a",
            river_class=HDDMA,
            binary=True,
            params={
                "drift_confidence": _FLOAT_UNIT,
                "warning_confidence": _FLOAT_UNIT,
                "two_sided_test": _BOOL,
            },
        ),
        DetectorKind(
            name="hddm_w",
            river_class=HDDMW,
            binary=True,
            params={
                "drift_confidence": _FLOAT_UNIT,
                "warning_confidence": _FLOAT_UNIT,
                "lambda_val": _FLOAT_UNIT,
                "two_sided_test": _BOOL,
            },
        ),
        DetectorKind(
            name="fhddm",
            river_class=FHDDM,
            binary=True,
            inverted=True,
            params={
                "sliding_window_size": _INT_POS,
                "confidence_level": _FLOAT_UNIT,
                "short_window_size": ParamRule(
                    kind=int, check=_positive, expect="an integer > 0", optional=True
                ),
            },
        ),
    )
}


def check_params(detector_type: str, params: Mapping[str, Any]) -> list[str]:
    """Return one readable problem per bad parameter (empty when River would accept them all).

    >>> check_params("adwin", {"delta": 0.01})
    []
    >>> check_params("adwin", {"dleta": 0.01})
    ["adwin has no parameter 'dleta' (it takes: delta, clock, max_buckets, min_window_length, grace_period)"]
    """
    kind = DETECTOR_KINDS.get(detector_type)
    if kind is None:
        return [f"unknown detector type {detector_type!r} (one of: {', '.join(DETECTOR_KINDS)})"]
    problems: list[str] = []
    for name, value in params.items():
        rule = kind.params.get(name)
        if rule is None:
            problems.append(f"{detector_type} has no parameter {name!r} (it takes: {', '.join(kind.params)})")
        elif not _accepts(rule, value):
            problems.append(
                f"{detector_type}.{name} must be {rule.expect or rule.kind.__name__}, got {value!r}"
            )
    if not problems:
        problems.extend(_cross_checks(detector_type, {**_river_defaults(kind), **params}))
    return problems


def _river_defaults(kind: DetectorKind) -> dict[str, Any]:
    import inspect  # noqa: PLC0415 -- only config validation needs it

    signature = inspect.signature(kind.river_class)
    return {name: p.default for name, p in signature.parameters.items() if name in kind.params}


def _cross_checks(detector_type: str, params: dict[str, Any]) -> list[str]:
    """Constraints between parameters, which River checks late (at the first update) or not at all."""
    if detector_type == "kswin" and params["window_size"] < 2 * params["stat_size"]:
        # KSWIN samples stat_size values from the window_size - stat_size older ones.
        window, stat = params["window_size"], params["stat_size"]
        return [f"kswin.window_size ({window}) must be at least twice stat_size ({stat})"]
    if detector_type == "eddm" and params["alpha"] < params["beta"]:
        return [f"eddm.alpha ({params['alpha']}) must be greater than or equal to beta ({params['beta']})"]
    if detector_type == "fhddm":
        short, window = params["short_window_size"], params["sliding_window_size"]
        if short is not None and short > window:
            return [f"fhddm.short_window_size ({short}) must not exceed sliding_window_size ({window})"]
    return []


def _accepts(rule: ParamRule, value: Any) -> bool:
    if value is None:
        return rule.optional
    if rule.kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int in Python; never a valid number here
        return False
    if rule.kind is float:
        ok_type = isinstance(value, int | float) and math.isfinite(value)
    else:
        ok_type = isinstance(value, rule.kind)
    return ok_type and rule.check(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorSpec:
    """A detector type and the River parameters given for it (as given: defaults are River's)."""

    type: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, detector_type: str, **params: Any) -> DetectorSpec:
        return cls(type=detector_type, params=tuple(sorted(params.items())))

    @property
    def kind(self) -> DetectorKind:
        return DETECTOR_KINDS[self.type]

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


def stable_seed(key: str) -> int:
    """A seed that is the same for the same key in every process (unlike `hash`)."""
    return zlib.crc32(key.encode())


@functools.cache
def _recipe(spec: DetectorSpec) -> tuple[DetectorKind, Mapping[str, Any]]:
    """The kind and River arguments of a spec, worked out once per spec, not once per detector (a restart of
    100,000 models makes a million detectors). The arguments are shared: read, never changed."""
    return spec.kind, spec.kwargs()


def _window_update(river_detector: Any) -> Callable[[float], bool] | None:
    """ADWIN's update when no drift is pending, minus its two Python frames (a third of the cost of an
    update): River's `ADWIN.update` resets after a drift, then sets `_drift_detected` to exactly this call's
    result. Parity tests hold this to River's own update."""
    if type(river_detector) is ADWIN:
        update: Callable[[float], bool] = river_detector._helper.update
        return update
    return None


class Detector:
    """One River detector on one signal, with the bookkeeping an alert needs.

    `update` returns NO_CHANGE, WARNING (on entering River's warning zone) or DRIFT (whenever River sets
    `drift_detected`). Values must be finite; binary kinds accept only 0 and 1 (the caller checks `binary`).
    """

    __slots__ = (
        "_drifted", "_in_warning", "_river", "_window_update", "binary", "inverted", "observations", "spec",
    )  # fmt: skip

    def __init__(self, spec: DetectorSpec, *, seed_key: str = "") -> None:
        kind, kwargs = _recipe(spec)
        if kind.seeded and kwargs.get("seed") is None:
            # An unseeded KSWIN samples differently on every run; a replay must see the same alerts.
            kwargs = {**kwargs, "seed": stable_seed(seed_key)}
        self.spec = spec
        self.binary = kind.binary
        self.inverted = kind.inverted
        self._river: Any = kind.river_class(**kwargs)
        self._window_update = _window_update(self._river)
        self._in_warning = False
        self._drifted = False  # River resets itself on the update after a drift
        self.observations = 0

    def export(self) -> tuple[int, bool, Any]:
        """What a snapshot needs to rebuild this detector: (observations, in warning, River's object)."""
        return self.observations, self._in_warning, self._river

    @classmethod
    def restored(
        cls, spec: DetectorSpec, observations: int, in_warning: bool, river_detector: Any
    ) -> Detector:
        detector = cls.__new__(cls)
        kind = spec.kind
        if not isinstance(river_detector, kind.river_class):
            raise TypeError(f"a {spec.type} snapshot holds a {type(river_detector).__name__}")
        detector.spec = spec
        detector.binary = kind.binary
        detector.inverted = kind.inverted
        detector._river = river_detector
        detector._window_update = _window_update(river_detector)
        detector._in_warning = in_warning
        detector._drifted = bool(getattr(river_detector, "_drift_detected", False))
        detector.observations = observations
        return detector

    def full_params(self) -> dict[str, Any]:
        """Every constructor parameter River used, defaults included: enough to rerun it offline."""
        used = self._river._get_params()
        return {name: used[name] for name in self.spec.kind.params if name in used}

    def lane(self) -> Callable[[float], bool] | None:
        """River's own update, for a caller that counts values itself (SignalTrack.arm): valid while it
        returns False; on True, call `drifted_in_lane` before anything else."""
        return None if self._drifted else self._window_update

    def drifted_in_lane(self) -> int:
        """The lane's update returned True: what `update` would have recorded for that value."""
        self._river._drift_detected = True
        self._drifted = True
        self._in_warning = False
        self.observations += 1
        return DRIFT

    def update(self, value: float) -> int:
        # The hot path of the whole service: River's private flags are read directly (the public
        # properties only return them), and nothing is looked up twice.
        river = self._river
        if self._drifted:
            self.observations = 0
            river.update(1 - value if self.inverted else value)  # River resets itself first
            if self._window_update is not None:
                self._window_update = _window_update(river)  # ADWIN's reset made a new window
        elif self._window_update is not None:
            river._drift_detected = self._window_update(value)
        else:
            river.update(1 - value if self.inverted else value)
        self.observations += 1
        if river._drift_detected:
            self._drifted = True
            self._in_warning = False
            return DRIFT
        self._drifted = False
        if self.binary:
            warning = river._warning_detected
            entered = warning and not self._in_warning
            self._in_warning = warning
            if entered:
                return WARNING
        return NO_CHANGE

    def stats(self) -> dict[str, float | int | None]:
        """What the detector estimates now, for the alert record."""
        river = self._river
        name = self.spec.type
        if name == "adwin":
            return {"width": river.width, "estimation": river.estimation, "variance": river.variance}
        if name == "page_hinkley":
            return {"mean": river._x_mean.get(), "n": int(river._x_mean.n)}
        if name == "kswin":
            return {"p_value": float(getattr(river, "p_value", math.nan)), "window": len(river.window)}
        if name == "ddm":
            return {"error_rate": river._p.get(), "p_min": river._p_min, "s_min": river._s_min}
        if name == "eddm":
            return {"errors": river._n_errors, "mean_error_distance": river._error_distances.mean.get()}
        if name == "fhddm":
            window = river._sliding_window
            rate = 1 - sum(window) / len(window) if window else None
            return {"error_rate_window": rate}
        return {}
