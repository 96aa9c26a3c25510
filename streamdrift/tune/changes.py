"""The changes injected into simulated streams: mean shifts and variance changes, or rises in a 0/1 rate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from streamdrift.errors import ConfigError
from streamdrift.tune.reference import ReferenceSample, Values

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
