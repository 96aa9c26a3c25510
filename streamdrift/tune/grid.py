"""The detector settings to measure: a default grid per detector type, or one given as `--grid` entries."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Final

from streamdrift.core.detectors import DETECTOR_KINDS, DetectorSpec, check_params
from streamdrift.errors import ConfigError
from streamdrift.tune.reference import ReferenceSample

# A parameter's value as YAML reads it in the config.
GridValue = bool | int | float | str | None

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
    axes: dict[str, tuple[GridValue, ...]] = {}
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


def _grid_value(text: str) -> GridValue:
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


def _product(detector_type: str, axes: Mapping[str, tuple[GridValue, ...]]) -> tuple[DetectorSpec, ...]:
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
