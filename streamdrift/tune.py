"""What a detector setting would do on a model's own data: false alarms, detection probability and delay.

An operator cannot guess what `threshold: 50` means for a feature whose standard deviation is 1, or 1000.
This module measures it, seeded and reproducible, from a reference sample of known-good events:

1. The signal's values are taken from the reference through the production path: each record is decoded
   by `EventDecoder` and fed to a `Monitor`, whose observer hands over exactly the values the core would
   feed a detector (bools as 0/1, NaN and text skipped, binary detectors fed 0/1 only).
2. Each run resamples `length` values i.i.d. from those values: a stream with the reference's
   distribution and no drift. Per setting, one `Detector` (the production wrapper: same parameter checks,
   same binary semantics) is fed every run's stream back to back, as a detector that runs for days sees
   them; every drift it reports is a false alarm. It is not restarted per run on purpose: a fresh detector
   is quieter than a long-running one (Page-Hinkley's statistic needs tens of thousands of values to build
   up), and short fresh streams understate the production rate by half or more.
3. Each run, with a change injected at `length // 2` (a mean shift or a variance change for numeric
   signals, a rise in the rate of 1s for 0/1 signals), is fed to a fresh detector per setting: the first
   drift at or after the change point and its delay measure detection. Drifts before the change point are
   not detections (false alarms are counted in step 2).
4. Among settings whose false-alarm rate is within the target, the one that best detects the smallest
   change is recommended, as a `models:` entry ready to paste into the config.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import yaml

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import RecordSource
from streamdrift.core.detectors import DETECTOR_KINDS, DRIFT, Detector, DetectorSpec, check_params
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalKind, SignalPolicy
from streamdrift.errors import BadRecord, ConfigError

EVENTS_PER_RATE: Final = 10_000  # false alarms are reported per this many events
# Resampling a handful of values replays those few values over and over: the false-alarm rate it measures
# says little about the real distribution.
MIN_REFERENCE_VALUES: Final = 100

Values = npt.NDArray[np.float64]


# --- signals -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A signal as the monitor names it, and where its detector is set in a `models:` entry."""

    name: str  # feature:<name>, missing:<name>, prediction, prediction:<class>, score or error
    kind: SignalKind
    feature: str | None = None  # the feature's name, for feature:<name>

    @classmethod
    def parse(cls, text: str) -> Signal:
        """
        >>> Signal.parse("feature:amount")
        Signal(name='feature:amount', kind='features', feature='amount')
        >>> Signal.parse("missing:amount").kind
        'missing'
        """
        prefix, colon, rest = text.partition(":")
        if not colon and text in ("score", "error", "prediction"):
            return cls(name=text, kind=text)  # type: ignore[arg-type]
        if colon and rest:
            if prefix == "feature":
                return cls(name=text, kind="features", feature=rest)
            if prefix in ("missing", "prediction"):
                return cls(name=text, kind=prefix)  # type: ignore[arg-type]
        raise ConfigError(
            f"--signal {text}: not a signal (one of feature:<name>, missing:<name>, prediction, "
            "prediction:<class>, score, error)"
        )

    @property
    def config_key(self) -> str:
        """Where a `models:` entry sets this signal's detector: `features.<name>`, or the signal's kind
        (`missing` for every feature's missing signal, `prediction` for every class)."""
        return f"features.{self.feature}" if self.feature is not None else self.kind


def check_distinct_keys(signals: Sequence[Signal]) -> None:
    """One `models:` entry sets one detector per key: two signals under the same key cannot both be tuned.

    >>> check_distinct_keys([Signal.parse("missing:a"), Signal.parse("missing:b")])
    Traceback (most recent call last):
    ...
    streamdrift.errors.ConfigError: --signal missing:a and --signal missing:b are both set by `missing` \
in a models entry (one detector for both): tune one of them at a time
    """
    owners: dict[str, str] = {}
    for signal in signals:
        owner = owners.setdefault(signal.config_key, signal.name)
        if owner != signal.name:
            raise ConfigError(
                f"--signal {owner} and --signal {signal.name} are both set by `{signal.config_key}` "
                "in a models entry (one detector for both): tune one of them at a time"
            )


# --- the reference sample ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ReferenceSample:
    """The values a detector on this signal would have been fed over the reference events."""

    signal: Signal
    values: Values

    @property
    def binary(self) -> bool:
        """Every value is 0 or 1: changes are rises in the rate of 1s, not shifts in standard deviations."""
        return bool(np.isin(self.values, (0.0, 1.0)).all())

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def std(self) -> float:
        return float(self.values.std())


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """What reading the reference found."""

    samples: Mapping[str, ReferenceSample]  # by signal name, in the order asked for
    events: int  # events decoded (of the chosen model, when one was chosen)
    bad_records: Counter[str] = field(default_factory=Counter)  # lines that are no event, by kind
    skipped: Counter[str] = field(default_factory=Counter)  # values the monitor skipped, by reason


def read_reference(
    config: StreamdriftConfig,
    records: Iterable[bytes],
    signals: Sequence[Signal],
    detector_type: str,
    *,
    model: str | None = None,
) -> Reference:
    """Run the production decoder and monitor over the reference records and keep each signal's values.

    Only the signals' kinds are enabled, each with a `detector_type` detector: whether a detector is binary
    decides which values reach it. Raises `ConfigError` when the model or a signal has no values.
    """
    if detector_type not in DETECTOR_KINDS:
        raise ConfigError(check_params(detector_type, {}))
    spec = DetectorSpec.of(detector_type)
    kinds = {signal.kind for signal in signals}
    policies = Policies(
        defaults={kind: SignalPolicy(enabled=kind in kinds, detector=spec) for kind in SIGNAL_KINDS}
    )
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    monitor = Monitor(policies, config_version=config.config_version, limits=config.monitor_limits())
    collected: dict[str, list[float]] = {signal.name: [] for signal in signals}

    def observe(_model_id: str, signal: str, _index: int, value: float, _level: int) -> None:
        values = collected.get(signal)
        if values is not None:
            values.append(value)

    monitor.observer = observe
    bad_records: Counter[str] = Counter()
    models_seen: Counter[str] = Counter()
    events = 0
    for offset, record in enumerate(records):
        try:
            event = decoder.decode(None, record)
        except BadRecord as error:
            bad_records[error.kind] += 1
            continue
        models_seen[event.model_id] += 1
        if model is not None and event.model_id != model:
            continue
        events += 1
        monitor.process(event, RecordSource(offset=offset))
    if events == 0:
        raise ConfigError(_no_events(model, models_seen, bad_records))
    empty = [name for name, values in collected.items() if not values]
    if empty:
        raise ConfigError(
            [_no_values(name, detector_type, model, monitor, events) for name in empty]  # one line each
        )
    few = [(name, len(values)) for name, values in collected.items() if len(values) < MIN_REFERENCE_VALUES]
    if few:
        raise ConfigError(
            [
                f"--signal {name}: only {count} values in the reference; resampling needs at least "
                f"{MIN_REFERENCE_VALUES} to stand for the signal's distribution"
                for name, count in few
            ]
        )
    samples = {
        signal.name: ReferenceSample(signal=signal, values=np.asarray(collected[signal.name], dtype=float))
        for signal in signals
    }
    return Reference(samples=samples, events=events, bad_records=bad_records, skipped=monitor.skipped)


def _no_events(model: str | None, models_seen: Counter[str], bad_records: Counter[str]) -> str:
    if model is not None and models_seen:
        seen = ", ".join(name for name, _ in models_seen.most_common(10))
        more = ", ..." if len(models_seen) > 10 else ""
        return f"--model {model}: no event of this model in the reference (it has: {seen}{more})"
    bad = ", ".join(f"{kind}={n}" for kind, n in sorted(bad_records.items()))
    return "the reference holds no inference event" + (f" (bad lines: {bad})" if bad else "")


def _no_values(name: str, detector_type: str, model: str | None, monitor: Monitor, events: int) -> str:
    of_model = f" of model {model}" if model is not None else ""
    available = _signals_present(monitor)
    if name in available:
        skipped = ", ".join(f"{reason}={n}" for reason, n in sorted(monitor.skipped.items()))
        return (
            f"--signal {name}: none of its values in the {events} reference events{of_model} can reach a "
            f"{detector_type} detector" + (f" (skipped: {skipped})" if skipped else "")
        )
    shown = ", ".join(available[:20]) + (", ..." if len(available) > 20 else "")
    return (
        f"--signal {name}: no values in the {events} reference events{of_model} "
        f"(signals present: {shown or 'none'})"
    )


def _signals_present(monitor: Monitor) -> list[str]:
    """The signals the monitor met in the reference, whether or not they were enabled."""
    found: dict[str, None] = {}
    for model in monitor.models.values():
        for name, watch in model.features.items():
            found[f"feature:{name}"] = found[f"missing:{name}"] = None
            for category in watch.categories:
                found[f"category:{name}={category}"] = None
        for label in model.classes:
            found[f"prediction:{label}"] = None
        for kind in model.tracks:
            found[kind] = None
    return list(found)


# --- detector settings ---------------------------------------------------------------------------------

# The main parameter of each detector type, around River's default. Page-Hinkley's threshold and delta are
# in the signal's own units, so its grid is in reference standard deviations (River's defaults assume
# about 1); every other type's parameters are confidences or rates, the same for any scale.
_DEFAULT_GRIDS: Final[Mapping[str, Mapping[str, tuple[float, ...]]]] = {
    "page_hinkley": {"threshold": (10, 20, 50, 100, 200), "delta": (0.005, 0.05)},
    "adwin": {"delta": (1e-5, 1e-4, 1e-3, 0.002, 0.01)},
    "kswin": {"alpha": (1e-6, 1e-5, 1e-4, 1e-3, 0.005)},
    "ddm": {"drift_threshold": (2.5, 3.0, 3.5, 4.0, 5.0)},
    "eddm": {"beta": (0.7, 0.75, 0.8, 0.85, 0.9)},
    "hddm_a": {"drift_confidence": (1e-5, 1e-4, 1e-3, 5e-3)},
    "hddm_w": {"drift_confidence": (1e-5, 1e-4, 1e-3, 5e-3)},
    "fhddm": {"confidence_level": (1e-8, 1e-7, 1e-6, 1e-5, 1e-4)},
}
_SCALED_PARAMS: Final = {"page_hinkley": ("threshold", "delta")}


def default_grid(detector_type: str, sample: ReferenceSample) -> tuple[DetectorSpec, ...]:
    """A handful of settings of the type's main parameter(s), scaled to the sample where that matters."""
    axes = dict(_DEFAULT_GRIDS[detector_type])
    scale = sample.std
    if scale > 0:
        for name in _SCALED_PARAMS.get(detector_type, ()):
            axes[name] = tuple(_two_significant(value * scale) for value in axes[name])
    return _product(detector_type, axes)


def _two_significant(value: float) -> float:
    return float(f"{value:.2g}")


def parse_grid(detector_type: str, entries: Sequence[str]) -> tuple[DetectorSpec, ...]:
    """Settings from `name=value,value,...` entries: every combination, each checked as the config would.

    >>> [spec.params for spec in parse_grid("page_hinkley", ["threshold=20,50", "mode=up"])]
    [(('mode', 'up'), ('threshold', 20)), (('mode', 'up'), ('threshold', 50))]
    """
    if detector_type not in DETECTOR_KINDS:
        raise ConfigError(check_params(detector_type, {}))
    axes: dict[str, tuple[Any, ...]] = {}
    for entry in entries:
        name, equals, listed = (part.strip() for part in entry.partition("="))
        if not equals or not name:
            raise ConfigError(f"--grid {entry}: expected name=value[,value...], e.g. threshold=20,50,100")
        if name in axes:
            raise ConfigError(f"--grid {name}: given twice (list its values once, comma-separated)")
        texts = [text.strip() for text in listed.split(",")]
        if not all(texts):
            raise ConfigError(f"--grid {entry}: an empty value (expected name=value[,value...])")
        axes[name] = tuple(dict.fromkeys(_grid_value(text) for text in texts))
    return _product(detector_type, axes)


def _grid_value(text: str) -> Any:
    """A grid value as YAML would read it in the config: bool, null, integer, number, else text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _product(detector_type: str, axes: Mapping[str, tuple[Any, ...]]) -> tuple[DetectorSpec, ...]:
    names = list(axes)
    specs: list[DetectorSpec] = []
    problems: dict[str, None] = {}  # ordered and without repeats: one combination's problem is often all's
    for combination in itertools.product(*(axes[name] for name in names)):
        params = dict(zip(names, combination, strict=True))
        found = check_params(detector_type, params)
        for problem in found:
            problems[f"--grid: {problem}"] = None
        if not found:
            specs.append(DetectorSpec.of(detector_type, **params))
    if problems:
        raise ConfigError(list(problems))
    return tuple(specs)


def describe_setting(spec: DetectorSpec) -> str:
    """`delta=0.005 threshold=50` (parameters by name), or `defaults` for River's defaults."""
    return " ".join(f"{name}={value}" for name, value in spec.params) or "defaults"


# --- changes -------------------------------------------------------------------------------------------

ChangeKind = Literal["mean_shift", "variance_ratio", "rate_rise"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A change injected at the middle of a simulated stream."""

    kind: ChangeKind
    size: float  # standard deviations; variance ratio; rise in the rate of 1s

    @property
    def label(self) -> str:
        if self.kind == "mean_shift":
            return f"mean {self.size:+g} sd"
        if self.kind == "variance_ratio":
            return f"variance x{self.size:g}"
        return f"1-rate {self.size:+g}"

    def apply(self, tail: Values, sample: ReferenceSample, rng: np.random.Generator) -> Values:
        """The values after the change point, changed."""
        if self.kind == "mean_shift":
            return tail + self.size * sample.std
        if self.kind == "variance_ratio":
            mean = sample.mean
            return mean + (tail - mean) * math.sqrt(self.size)
        # Turning each 0 into a 1 with probability rise / (1 - rate) raises the rate of 1s by `rise`.
        turn = rng.random(tail.shape[0]) < self.size / (1.0 - sample.mean)
        return np.where(turn, 1.0, tail)


def changes_for(
    sample: ReferenceSample,
    *,
    shifts: Sequence[float] = (0.5, 1.0, 2.0),
    variance_ratios: Sequence[float] = (2.0,),
    rate_rises: Sequence[float] = (0.1,),
) -> tuple[Change, ...]:
    """The changes to measure on this signal, smallest first: the first is the one a recommendation
    optimises. 0/1 signals get rises in their rate of 1s; other signals mean shifts and variance changes."""
    name = sample.signal.name
    if sample.binary:
        rate = sample.mean
        for rise in rate_rises:
            if not 0 < rise < 1:
                raise ConfigError(f"--error-rise {rise:g}: must be between 0 and 1 (exclusive)")
            if rate + rise > 1:
                raise ConfigError(
                    f"--error-rise {rise:g}: {name} is 1 in {rate:.1%} of the reference; "
                    "its rate of 1s cannot rise that much"
                )
        if not rate_rises:
            raise ConfigError(f"--error-rise: no change to measure on {name}")
        return tuple(Change(kind="rate_rise", size=rise) for rise in sorted(set(rate_rises)))
    if sample.std == 0:
        raise ConfigError(
            f"--signal {name}: constant ({sample.values[0]:g}) in the reference, so shifts in standard "
            "deviations mean nothing; give a reference in which it varies"
        )
    for shift in shifts:
        if shift == 0 or not math.isfinite(shift):
            raise ConfigError(f"--shift {shift:g}: must be a non-zero number of standard deviations")
    for ratio in variance_ratios:
        if ratio <= 0 or ratio == 1 or not math.isfinite(ratio):
            raise ConfigError(f"--variance-ratio {ratio:g}: must be a number > 0 other than 1")
    ordered_shifts = sorted(set(shifts), key=lambda shift: (abs(shift), shift))
    changes = tuple(Change(kind="mean_shift", size=shift) for shift in ordered_shifts) + tuple(
        Change(kind="variance_ratio", size=ratio) for ratio in dict.fromkeys(variance_ratios)
    )
    if not changes:
        raise ConfigError("--shift and --variance-ratio: no change to measure")
    return changes


# --- simulation ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Simulation:
    """How many streams, how long, from which seed."""

    runs: int = 50
    length: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ConfigError(f"--runs {self.runs}: must be at least 1")
        if self.length < 2:
            raise ConfigError(f"--length {self.length}: must be at least 2 (the change is at the middle)")
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed}: must be >= 0")

    @property
    def change_at(self) -> int:
        return self.length // 2


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedRun:
    """One run's streams: `baseline` has no change; change `i`'s stream is
    `baseline[:change_at] + changed_tails[i]`."""

    baseline: list[float]
    changed_tails: tuple[list[float], ...]


def simulated_runs(
    sample: ReferenceSample, changes: Sequence[Change], simulation: Simulation
) -> Iterator[SimulatedRun]:
    """The runs' streams, the same for the same seed whatever the grid, and the same baselines whatever
    the changes (they draw from separate generators)."""
    stream_seed, change_seed = np.random.SeedSequence(simulation.seed).spawn(2)
    streams, change_rng = np.random.default_rng(stream_seed), np.random.default_rng(change_seed)
    values, change_at = sample.values, simulation.change_at
    for _ in range(simulation.runs):
        baseline = values[streams.integers(0, values.shape[0], size=simulation.length)]
        tail = baseline[change_at:]
        yield SimulatedRun(
            baseline=baseline.tolist(),  # Python floats: what the monitor feeds River
            changed_tails=tuple(change.apply(tail, sample, change_rng).tolist() for change in changes),
        )


# --- evaluation ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeOutcome:
    """How one setting did on one change over all runs."""

    change: Change
    delays: tuple[int | None, ...]  # per run: first drift at/after the change point minus it; None: missed

    @property
    def detection_probability(self) -> float:
        return sum(delay is not None for delay in self.delays) / len(self.delays)

    @property
    def median_delay(self) -> float | None:
        found = [delay for delay in self.delays if delay is not None]
        return float(np.median(found)) if found else None


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingResult:
    """One detector setting: false alarms on the unchanged streams, and each change's outcome."""

    spec: DetectorSpec
    false_alarms: int  # drifts of one detector fed every run's unchanged stream back to back
    events: int  # values in those streams
    outcomes: tuple[ChangeOutcome, ...]

    @property
    def false_alarms_per_10k(self) -> float:
        return self.false_alarms * EVENTS_PER_RATE / self.events


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Evaluation:
    """Every setting of the grid measured on one signal."""

    sample: ReferenceSample
    simulation: Simulation
    changes: tuple[Change, ...]
    results: tuple[SettingResult, ...]


def evaluate(
    sample: ReferenceSample,
    grid: Sequence[DetectorSpec],
    changes: Sequence[Change],
    simulation: Simulation,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Feed every setting the same simulated runs; `progress` is called with the number of runs done."""
    if not grid:
        raise ConfigError("--grid: no detector setting to evaluate")
    false_alarms = [0] * len(grid)
    delays: list[list[list[int | None]]] = [[[] for _ in changes] for _ in grid]
    long_running = [Detector(spec, seed_key=f"{sample.signal.name}/long-running") for spec in grid]
    for run_index, run in enumerate(simulated_runs(sample, changes, simulation)):
        seed_key = f"{sample.signal.name}/run{run_index}"  # a seeded detector (KSWIN) differs per run
        for setting, spec in enumerate(grid):
            false_alarms[setting] += _drifts(long_running[setting], run.baseline)
            first_drifts = _first_drifts(Detector(spec, seed_key=seed_key), run, simulation.change_at)
            for change, delay in enumerate(first_drifts):
                delays[setting][change].append(delay)
        if progress is not None:
            progress(run_index + 1)
    results = tuple(
        SettingResult(
            spec=spec,
            false_alarms=false_alarms[setting],
            events=simulation.runs * simulation.length,
            outcomes=tuple(
                ChangeOutcome(change=change, delays=tuple(delays[setting][i]))
                for i, change in enumerate(changes)
            ),
        )
        for setting, spec in enumerate(grid)
    )
    return Evaluation(sample=sample, simulation=simulation, changes=tuple(changes), results=results)


def _drifts(detector: Detector, values: list[float]) -> int:
    return sum(detector.update(value) == DRIFT for value in values)


def _first_drifts(detector: Detector, run: SimulatedRun, change_at: int) -> list[int | None]:
    """Per change, how many values after the change point a fresh detector first reports a drift.

    Up to the change point every changed stream of the run is the same, so the detector is fed that part
    once and copied there for each change: a copy continues exactly as a detector fed the whole stream.
    """
    for value in run.baseline[:change_at]:
        detector.update(value)
    tails = run.changed_tails
    at_change = [copy.deepcopy(detector) for _ in tails[1:]] + [detector]
    return [_first_drift(copied, tail) for copied, tail in zip(at_change, tails, strict=True)]


def _first_drift(detector: Detector, values: list[float]) -> int | None:
    for index, value in enumerate(values):
        if detector.update(value) == DRIFT:
            return index
    return None


# --- recommendation ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Recommendation:
    """The setting to use on one signal, and whether it keeps false alarms within the target."""

    signal: Signal
    result: SettingResult
    target_false_alarms: float  # per 10,000 events
    meets_target: bool


def recommend(evaluation: Evaluation, target_false_alarms: float) -> Recommendation:
    """Among settings within the false-alarm target, the most likely to detect the smallest change, then
    the quickest to; when none is within the target, the one with the fewest false alarms."""
    check_target(target_false_alarms)

    def detects_smallest(result: SettingResult) -> tuple[float, float, float]:
        smallest = result.outcomes[0]
        delay = smallest.median_delay
        return (-smallest.detection_probability, math.inf if delay is None else delay, result.false_alarms)

    within = [r for r in evaluation.results if r.false_alarms_per_10k <= target_false_alarms]
    if within:
        best = min(within, key=detects_smallest)  # min keeps the first of equals: grid order decides
    else:
        best = min(evaluation.results, key=lambda r: (r.false_alarms, detects_smallest(r)))
    return Recommendation(
        signal=evaluation.sample.signal,
        result=best,
        target_false_alarms=target_false_alarms,
        meets_target=bool(within),
    )


def check_target(target_false_alarms: float) -> None:
    if not (target_false_alarms >= 0 and math.isfinite(target_false_alarms)):
        raise ConfigError(f"--target-false-alarms {target_false_alarms:g}: must be a number >= 0")


def recommended_models(recommendations: Sequence[Recommendation], model: str | None) -> dict[str, Any]:
    """`{"models": [entry]}`: one entry matching the model (every model when None) with each signal's
    recommended detector. Raises `ConfigError` when two signals would set the same key."""
    check_distinct_keys([recommendation.signal for recommendation in recommendations])
    entry: dict[str, Any] = {"match": "*" if model is None else glob_literal(model)}
    features: dict[str, Any] = {}
    for recommendation in recommendations:
        signal = recommendation.signal
        detector = {"type": recommendation.result.spec.type, **dict(recommendation.result.spec.params)}
        if signal.feature is not None:
            features[glob_literal(signal.feature)] = {"detector": detector}
        else:
            entry[signal.kind] = {"detector": detector}
    if features:
        entry = {"match": entry.pop("match"), "features": features, **entry}
    return {"models": [entry]}


def recommendation_yaml(recommendations: Sequence[Recommendation], model: str | None) -> str:
    """The recommendation as config YAML, with what was measured as comments above it."""
    lines = []
    for recommendation in recommendations:
        result = recommendation.result
        smallest = result.outcomes[0]
        delay = smallest.median_delay
        lines.append(
            f"# {recommendation.signal.name}: {result.spec.type} {describe_setting(result.spec)}: "
            f"{result.false_alarms_per_10k:.2f} false alarms per 10k events "
            f"(target {recommendation.target_false_alarms:g}"
            f"{'' if recommendation.meets_target else ', NOT MET by any setting'}); "
            f"{smallest.change.label} detected in {smallest.detection_probability:.0%} of runs"
            + ("" if delay is None else f", median delay {delay:g} events")
        )
    body = yaml.safe_dump(
        recommended_models(recommendations, model), sort_keys=False, default_flow_style=None, width=10_000
    )
    return "\n".join(lines) + "\n" + body


def glob_literal(name: str) -> str:
    """A `match`/feature glob that matches exactly this name.

    >>> glob_literal("fraud-[eu]*")
    'fraud-[[]eu][*]'
    """
    escaped = "".join(f"[{char}]" if char in "*?[" else char for char in name)
    assert fnmatchcase(name, escaped)
    return escaped
