"""The recommended setting per signal, and the `models:` entry (as config YAML) that sets it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import yaml

from streamdrift.errors import ConfigError
from streamdrift.tune.evaluation import Evaluation, SettingResult
from streamdrift.tune.grid import describe_setting
from streamdrift.tune.signals import Signal, check_distinct_keys


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
