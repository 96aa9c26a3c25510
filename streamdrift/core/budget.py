"""A false-alarm budget for the whole fleet: one figure from the operator, a Page-Hinkley threshold each.

The operator states how many false drift alerts a model may raise per period (`budget:` in the config, e.g.
one per 30 days). For each profiled model, with its event rate from the reference profile:

1. **Correction across the model's signals** (Bonferroni): each of its `n` calibrated signals may raise
   `false_alarms / n` per period, so the model's false alarms add up to the budget.
2. **The mean run length that allows**: `n · values_per_day · days / false_alarms` values between false
   alarms of one signal, its values arriving at the model's event rate times the share of the reference's
   events that had a value of it (a feature missing half the time sees half the values).
3. **The threshold of that run length**, from the signal's run-length curve (calibration.py): measured by
   simulation on the profile, stored in the profile by `profile build` when the config has a budget, measured
   here otherwise (once per distinct signal shape and process).
4. **The detector**: Page-Hinkley on the standardised signal (the profile's mean and std), `delta` half the
   smallest shift worth finding (`shift_std`: a CUSUM is best at finding a shift of 2·delta), `alpha` 1.

Only numeric signals of profiled models are calibrated (features, prediction, score); the others keep their
configured detectors and stay outside the budget, and `config validate` names them. The expected false
alarms per day are the calibrated signals' `values_per_day / run_length(threshold)`, summed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from streamdrift.core.calibration import OneSidedCurve, RunLengthCurve, measure_curves
from streamdrift.core.detectors import DetectorSpec
from streamdrift.core.null_streams import QUANTILE_POINTS, NullShape
from streamdrift.core.plan import BudgetRule, PolicyOverride, SignalKind
from streamdrift.core.reference import NUMERIC, NumericValues
from streamdrift.core.scaling import Standardize

MIN_INSTANCES: Final = 30
CLIP_STD: Final = 3.0  # the detectors' input is clipped at ±3 std: a robust CUSUM (scaling.py)
BATCH: Final = 256  # shapes simulated together
RUN_LENGTH_KEY: Final = "run_length"  # a numeric signal's run-length curve in a profile document

# A signal to calibrate: its name, its profile document, its shape, and the curve stored in the document.
Candidate = tuple[str, Mapping[str, Any], NullShape, RunLengthCurve | None]
# Curves measured in this process, by shape and delta: models alike share one measurement.
_MEASURED: dict[tuple[NullShape, float], RunLengthCurve] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class FalseAlarmBudget:
    false_alarms: float  # per model ...
    days: float  # ... per this many days
    shift_std: float = 0.5  # the smallest mean shift worth finding, in reference standard deviations

    @property
    def delta(self) -> float:
        return self.shift_std / 2.0

    def run_length(self, values_per_day: float, signals: int) -> float:
        """The mean run length one of a model's `signals` signals needs, at its rate of values."""
        return signals * values_per_day * self.days / self.false_alarms


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibratedSignal:
    signal: str  # the profile's name: feature:<name>, prediction, score
    values_per_day: float
    threshold: float
    run_length: float  # the curve's mean run length at the threshold
    false_alarms_per_day: float
    detector: DetectorSpec
    standardize: Standardize


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelBudget:
    model_id: str
    events_per_day: float
    signals: tuple[CalibratedSignal, ...]

    @property
    def false_alarms_per_day(self) -> float:
        return sum(signal.false_alarms_per_day for signal in self.signals)


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetBudget:
    budget: FalseAlarmBudget
    models: Mapping[str, ModelBudget]
    outside: Mapping[str, str]  # model id (or "model signal") -> why it is outside the budget
    unstored: int = 0  # signals whose curve the profile did not hold: measured at load

    @property
    def false_alarms_per_day(self) -> float:
        return sum(model.false_alarms_per_day for model in self.models.values())

    def rules(self) -> dict[str, BudgetRule]:
        """The plan's per-model overrides: each calibrated signal's detector and standardisation."""
        rules = {}
        for model_id, model in self.models.items():
            features: dict[str, PolicyOverride] = {}
            signals: dict[SignalKind, PolicyOverride] = {}
            for signal in model.signals:
                override = PolicyOverride(detector=signal.detector, standardize=signal.standardize)
                if signal.signal.startswith("feature:"):
                    features[signal.signal.removeprefix("feature:")] = override
                elif signal.signal == "prediction":
                    signals["prediction"] = override
                elif signal.signal == "score":
                    signals["score"] = override
            rules[model_id] = BudgetRule(features=features, signals=signals)
        return rules

    def summary(self) -> str:
        """What `config validate` prints."""
        signals = sum(len(model.signals) for model in self.models.values())
        wanted = self.budget.false_alarms / self.budget.days * len(self.models)
        lines = [
            f"budget: {self.budget.false_alarms:g} false alarm(s) per model per {self.budget.days:g} days; "
            f"{len(self.models)} models, {signals} signals calibrated (page_hinkley on standardised values, "
            f"delta {self.budget.delta:g})",
            f"budget: expected false alarms {self.false_alarms_per_day:.4g}/day for the fleet "
            f"({wanted:.4g}/day budgeted)",
        ]
        if self.unstored:
            lines.append(
                f"budget: {self.unstored} signals calibrated at load, not stored in the profile (about 0.4 s "
                "of CPU each at every start): `profile build` with this budget in its config stores them"
            )
        lines.extend(f"budget: outside: {what}: {why}" for what, why in sorted(self.outside.items()))
        return "\n".join(lines)


def shape_of(signal: Mapping[str, Any]) -> NullShape | None:
    """A numeric signal document's null shape (None for a constant signal: nothing to standardise by)."""
    values = NumericValues.from_document(signal)
    if values.count < 2 or values.std <= 0.0:
        return None
    points = [i / (QUANTILE_POINTS - 1) for i in range(QUANTILE_POINTS)]
    quantiles = [float(q) for q in values.sketch.get_quantiles(points)]
    return NullShape.of(quantiles, values.mean, values.std, values.autocorrelation(), clip=CLIP_STD)


def curves_for(shapes: Sequence[NullShape], delta: float) -> list[RunLengthCurve]:
    """Each shape's curve, measured once per process."""
    missing = list(dict.fromkeys(shape for shape in shapes if (shape, delta) not in _MEASURED))
    for start in range(0, len(missing), BATCH):  # lanes of a few hundred shapes at a time: bounded memory
        batch = missing[start : start + BATCH]
        for shape, curve in zip(batch, measure_curves(batch, delta), strict=True):
            _MEASURED[shape, delta] = curve
    return [_MEASURED[shape, delta] for shape in shapes]


def attach_run_lengths(document: dict[str, Any], delta: float) -> int:
    """Measure each numeric signal's curve of a profile document and store it there (`profile build` with a
    budget in its config); returns how many signals got one."""
    found = [
        (signal, shape)
        for model in document["models"].values()
        for signal in model["signals"].values()
        if signal["type"] == NUMERIC and (shape := shape_of(signal)) is not None
    ]
    for (signal, _shape), curve in zip(found, curves_for([shape for _, shape in found], delta), strict=True):
        signal[RUN_LENGTH_KEY] = curve.document() | {"clip": CLIP_STD}
    return len(found)


def _stored_curve(signal: Mapping[str, Any], delta: float) -> RunLengthCurve | None:
    stored = signal.get(RUN_LENGTH_KEY)
    if not isinstance(stored, Mapping) or stored.get("clip") != CLIP_STD:
        return None  # measured for another detector input (this version's clip is part of the curve)
    if not math.isclose(float(stored.get("delta", -1)), delta):
        return None
    try:
        rise, fall = OneSidedCurve.from_document(stored["rise"]), OneSidedCurve.from_document(stored["fall"])
    except (KeyError, TypeError, ValueError):
        return None  # another version's curve: measured again
    return RunLengthCurve(delta=delta, rise=rise, fall=fall)


def plan_budget(
    budget: FalseAlarmBudget, models: Mapping[str, Any], enabled: Callable[[str, str], bool]
) -> FleetBudget:
    """Each profiled model's calibrated signals; `enabled(model_id, signal)` says whether the config watches
    a signal at all (a disabled one takes no share of the budget)."""
    outside: dict[str, str] = {}
    chosen: list[tuple[str, float, list[Candidate]]] = []  # per model: its event rate, its signals
    for model_id, model in sorted(models.items()):
        events, span = int(model["events"]), int(model.get("span_ms") or 0)
        if span <= 0 or events < 2:
            outside[model_id] = "no event rate in the profile (its events have no timestamps, or one event)"
            continue
        signals: list[Candidate] = []
        for name, signal in sorted(model["signals"].items()):
            if signal["type"] != NUMERIC or not enabled(model_id, name):
                continue
            shape = shape_of(signal)
            if shape is None:
                outside[f"{model_id} {name}"] = "constant in the reference"
            else:
                signals.append((name, signal, shape, _stored_curve(signal, budget.delta)))
        if signals:
            chosen.append((model_id, events * 86_400_000 / span, signals))
    unmeasured = [shape for _, _, signals in chosen for _, _, shape, stored in signals if stored is None]
    curves_for(unmeasured, budget.delta)  # all at once: one simulation for the fleet's new shapes
    result: dict[str, ModelBudget] = {}
    for model_id, events_per_day, signals in chosen:
        events = int(models[model_id]["events"])
        calibrated = []
        for name, signal, shape, stored in signals:
            curve = stored or _MEASURED[shape, budget.delta]
            values_per_day = events_per_day * int(signal["count"]) / events
            calibrated.append(_calibrated(name, signal, curve, values_per_day, len(signals), budget))
        result[model_id] = ModelBudget(
            model_id=model_id, events_per_day=events_per_day, signals=tuple(calibrated)
        )
    return FleetBudget(budget=budget, models=result, outside=outside, unstored=len(unmeasured))


def _calibrated(
    name: str, signal: Mapping[str, Any], curve: RunLengthCurve, values_per_day: float, signals: int,
    budget: FalseAlarmBudget,
) -> CalibratedSignal:  # fmt: skip
    run_length = budget.run_length(values_per_day, signals)
    threshold = max(curve.threshold_for(run_length), 0.001)  # a budget so loose it needs none: still > 0
    achieved = curve.run_length(threshold)
    return CalibratedSignal(
        signal=name, values_per_day=values_per_day, threshold=threshold, run_length=achieved,
        false_alarms_per_day=values_per_day / achieved,
        detector=DetectorSpec.of(
            "page_hinkley", threshold=threshold, delta=budget.delta, alpha=1.0, min_instances=MIN_INSTANCES,
            mode="both",
        ),
        standardize=Standardize(mean=float(signal["mean"]), std=float(signal["std"]), clip=CLIP_STD),
    )  # fmt: skip
