"""`python -m benchmarks.budget`: the false-alarm budget on simulated fleets, null and shifted (no broker).

A fleet of 1,000 models x 20 numeric features, each feature with its own distribution (normal, skewed,
heavy-tailed, bounded, bimodal, discrete), resampled from a reference sample through a Gaussian copula
driven by AR(1) noise (φ = 0: i.i.d.; φ = 0.5: autocorrelated). The reference sample is generated the same
way, profiled with `Profile` (so the profile measures the autocorrelation itself), and the budget — one
false alarm per model per 30 days at 1,333 events a day — gives each signal its Page-Hinkley threshold
through `plan_budget`, as `config.policies()` does.

Each model's detectors then run for a warm-up and a counted horizon, in `PageHinkleyLanes` (River's
arithmetic, checked alarm by alarm against River in tests/unit/test_calibration.py):

- **null**: the false alarms counted in the horizon, against the budget's expectation and the 99% Poisson
  interval around it (tests/unit/test_budget_fleet.py asserts the count is inside);
- **shift**: every feature's mean moves by 0.5 reference standard deviations at the end of the warm-up; the
  share of detectors that detect it within the horizon, and the delay in events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy import stats
from scipy.signal import lfilter
from scipy.special import ndtr

from streamdrift.core.budget import FalseAlarmBudget, FleetBudget, plan_budget
from streamdrift.core.event import InferenceEvent
from streamdrift.core.page_hinkley_lanes import Floats, PageHinkleyLanes
from streamdrift.core.reference import Profile

MODELS: Final = 1_000
FEATURES: Final = 20
REFERENCE_EVENTS: Final = 20_000
EVENTS_PER_DAY: Final = 4_000 / 3  # one event every 64.8 s
WARM_UP: Final = 1_000  # events before counting: a detector in production has been running
HORIZON: Final = 2_000  # events counted per model
BUDGET: Final = FalseAlarmBudget(false_alarms=1.0, days=30.0, shift_std=0.5)
SHIFT_STD: Final = 0.5
CHUNK: Final = 500

Sampler = Callable[[Floats], Floats]  # uniforms -> values: a quantile function
SHAPES: Final[tuple[tuple[str, Sampler], ...]] = (
    ("normal", stats.norm.ppf),
    ("exponential", stats.expon.ppf),
    ("lognormal", lambda u: stats.lognorm.ppf(u, 0.5)),
    ("uniform", lambda u: u),
    ("student-t5", lambda u: stats.t.ppf(u, 5)),
    ("bimodal", lambda u: np.where(u < 0.5, stats.norm.ppf(u * 2) - 2, stats.norm.ppf(u * 2 - 1) + 2)),
    ("gamma2", lambda u: stats.gamma.ppf(u, 2)),
    ("poisson3", lambda u: stats.poisson.ppf(u, 3)),
    ("beta25", lambda u: stats.beta.ppf(u, 2, 5)),
    ("laplace", stats.laplace.ppf),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetOutcome:
    phi: float
    false_alarms: int
    expected: float
    interval: tuple[int, int]  # the 99% Poisson interval around `expected`
    detected: float  # share of shifted signals detected within the horizon
    delay_median: float
    delay_p90: float
    seconds: float


def copula_uniforms(rng: np.random.Generator, phi: float, shape: tuple[int, ...], steps: int) -> Floats:
    """`steps` uniforms per lane, each lane Φ of a stationary AR(1) Gaussian series."""
    start = rng.standard_normal(shape)
    noise = rng.standard_normal((steps, *shape)) * np.sqrt(1.0 - phi * phi)
    z = lfilter([1.0], [1.0, -phi], noise, axis=0, zi=(phi * start)[None])[0]
    uniforms: Floats = ndtr(z)
    return uniforms


def reference_fleet(phi: float, seed: int) -> tuple[Profile, list[Floats]]:
    """One model's reference period (timestamped at EVENTS_PER_DAY) profiled, copied for every model id;
    and each feature's sorted reference values, which the simulated streams resample."""
    rng = np.random.default_rng(seed)
    uniforms = copula_uniforms(rng, phi, (FEATURES,), REFERENCE_EVENTS)
    columns = [SHAPES[j % len(SHAPES)][1](uniforms[:, j]) * (j + 1) + 10.0 * j for j in range(FEATURES)]
    step_ms = 86_400_000 / EVENTS_PER_DAY
    template = Profile()
    for i in range(REFERENCE_EVENTS):
        features: dict[str, float | int | str | bool | None] = {
            f"f{j:02d}": float(columns[j][i]) for j in range(FEATURES)
        }
        template.add(InferenceEvent(model_id="m", features=features, timestamp_ms=round(i * step_ms)))
    fleet = Profile()
    for m in range(MODELS):
        fleet.models[f"m{m:04d}"] = template.models["m"]
    return fleet, [np.sort(column) for column in columns]


def plan(profile: Profile, *, naive: bool = False) -> FleetBudget:
    """The budget's calibration; `naive` drops the profile's lag-1 statistics, so the thresholds are those
    of i.i.d. values whatever the data (the calibration that fails on autocorrelated noise)."""
    document = profile.document()
    if naive:
        for model in document["models"].values():
            for signal in model["signals"].values():
                signal.pop("lag1", None)
    return plan_budget(BUDGET, document["models"], lambda _model, _signal: True)


def run_fleet(phi: float, seed: int, *, naive: bool = False) -> FleetOutcome:
    began = time.perf_counter()
    profile, references = reference_fleet(phi, seed)
    fleet = plan(profile, naive=naive)
    ids = sorted(fleet.models)
    signals = [{s.signal: s for s in fleet.models[model_id].signals} for model_id in ids]
    names = [f"feature:f{j:02d}" for j in range(FEATURES)]
    threshold = np.array([[model[name].threshold for name in names] for model in signals])
    mean = np.array([[model[name].standardize.mean or 0.0 for name in names] for model in signals])
    scale = 1.0 / np.array([[model[name].standardize.std or 1.0 for name in names] for model in signals])
    clip = signals[0][names[0]].standardize.clip or np.inf  # as the service's Scaler clips (scaling.py)
    # Lanes [0]: no drift; [1]: every feature shifted by SHIFT_STD reference stds after the warm-up.
    lanes = PageHinkleyLanes((2, MODELS, FEATURES), delta=BUDGET.delta, threshold=threshold[None])
    rng = np.random.default_rng(seed + 1)
    false_alarms = 0
    first = np.full((MODELS, FEATURES), -1)
    stds = np.array([np.std(reference, ddof=1) for reference in references])
    for begin in range(0, WARM_UP + HORIZON, CHUNK):
        uniforms = copula_uniforms(rng, phi, (MODELS, FEATURES), CHUNK)
        values = np.empty_like(uniforms)
        for j, reference in enumerate(references):
            index = np.minimum(
                (uniforms[:, :, j] * reference.shape[0]).astype(np.int64), reference.shape[0] - 1
            )
            values[:, :, j] = reference[index]
        for t in range(CHUNK):
            at = begin + t
            shifted = values[t] + (SHIFT_STD * stds if at >= WARM_UP else 0.0)
            standardised = np.stack([(values[t] - mean) * scale, (shifted - mean) * scale])
            drifted = lanes.update(np.clip(standardised, -clip, clip))
            if at >= WARM_UP:
                false_alarms += int(drifted[0].sum())
                new = drifted[1] & (first < 0)
                first[new] = at - WARM_UP
    expected = MODELS * BUDGET.false_alarms * (HORIZON / EVENTS_PER_DAY) / BUDGET.days
    low, high = stats.poisson.interval(0.99, expected)
    delays = first[first >= 0]
    return FleetOutcome(
        phi=phi, false_alarms=false_alarms, expected=expected, interval=(int(low), int(high)),
        detected=delays.size / first.size,
        delay_median=float(np.median(delays)) if delays.size else float("nan"),
        delay_p90=float(np.percentile(delays, 90)) if delays.size else float("nan"),
        seconds=time.perf_counter() - began,
    )  # fmt: skip


def main() -> None:
    print(f"{MODELS} models x {FEATURES} features, {EVENTS_PER_DAY:.0f} events/day, budget "
          f"{BUDGET.false_alarms:g} per model per {BUDGET.days:g} days; horizon {HORIZON} events/model "
          f"after {WARM_UP}; shift {SHIFT_STD} std")  # fmt: skip
    print("| noise | false alarms | expected (99% interval) | 0.5-std shift detected | delay median | p90 |")
    print("|---|---|---|---|---|---|")
    for phi in (0.0, 0.5):
        for seed in (1, 2, 3):
            noise = "i.i.d." if phi == 0 else f"AR(1) φ={phi}"
            print(row(f"{noise} (seed {seed})", run_fleet(phi, seed)), flush=True)
    print(row("AR(1) φ=0.5, calibrated as if i.i.d. (seed 1)", run_fleet(0.5, 1, naive=True)))


def row(label: str, o: FleetOutcome) -> str:
    low, high = o.interval
    return (
        f"| {label} | {o.false_alarms} | {o.expected:.1f} ({low}-{high}) | {o.detected:.1%} "
        f"| {o.delay_median:.0f} | {o.delay_p90:.0f} |"
    )


if __name__ == "__main__":
    main()
