"""Scale-free thresholds: a signal's values standardised, (x - mean) / std, before its detector sees them.

A Page-Hinkley threshold of 50 means something different for a feature in dollars and one in [0, 1];
standardised, it means "50 standard deviations of cumulative deviation" for every feature. Mean and std
come from the config (measured on a reference sample) or are learned from the signal's first `warmup`
values, which then only teach the scaler and reach no detector. The learned figures are part of the
signal's state, so a restart or a replay uses the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Standardize:
    """Either both `mean` and `std` (from a reference sample), or `warmup` values to learn them from."""

    mean: float | None = None
    std: float | None = None
    warmup: int = 0
    # Standardised values beyond ±clip count as ±clip: a robust (Huber-style) CUSUM, which one outlier cannot
    # set off, and whose false-alarm rate the budget can calibrate on heavy-tailed signals too (budget.py).
    clip: float | None = None

    def key(self) -> tuple[float | None, ...]:
        base = (self.mean, self.std, self.warmup)
        return base if self.clip is None else (*base, self.clip)


class Scaler:
    """Standardises one signal's values; learns mean and std first when the spec says so.

    >>> scaler = Scaler(Standardize(warmup=3))
    >>> [scaler.transform(x) for x in (1.0, 2.0, 3.0, 4.0)]
    [None, None, None, 2.0]
    >>> Scaler(Standardize(mean=10.0, std=2.0)).transform(13.0)
    1.5
    >>> Scaler(Standardize(mean=10.0, std=2.0, clip=3.0)).transform(40.0)
    3.0
    """

    __slots__ = ("clip", "m2", "mean", "n", "scale", "spec")

    def __init__(self, spec: Standardize) -> None:
        self.spec = spec
        self.n = 0  # values learned from so far (Welford's running mean and sum of squares)
        self.mean = 0.0
        self.m2 = 0.0
        self.scale: float | None = None  # 1 / std once known
        self.clip = spec.clip  # read once, not at every value
        if spec.mean is not None and spec.std is not None:
            self.mean, self.scale = spec.mean, _inverse(spec.std)

    def transform(self, value: float) -> float | None:
        """The standardised value, or None while the value only serves to learn mean and std."""
        scale = self.scale
        if scale is not None:
            clip = self.clip
            if clip is None:
                return (value - self.mean) * scale
            return max(-clip, min(clip, (value - self.mean) * scale))
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)
        if self.n >= self.spec.warmup:
            self.scale = _inverse(math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0)
        return None

    def export(self) -> tuple[int, float, float, float | None]:
        return (self.n, self.mean, self.m2, self.scale)

    def restore(self, saved: tuple[int, float, float, float | None]) -> None:
        self.n, self.mean, self.m2, self.scale = saved


def _inverse(std: float) -> float:
    # A constant signal has no spread to scale by: its values are only centred.
    return 1.0 / std if std > 0 and math.isfinite(std) else 1.0
