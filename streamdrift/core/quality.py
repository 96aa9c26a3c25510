"""Data quality: the bounds a numeric feature's values are expected in.

Each numeric feature's bounds are given in the config (`quality.ranges`) or learned from its first `warmup`
values: [min - margin * span, max + margin * span], where span = max - min. The margin keeps a feature whose
warm-up missed its rarer extremes from reading as broken. A model's `quality:out_of_range` signal is 1 for an
event with any value outside its feature's bounds, else 0; `quality:type_mismatch` is 1 for an event with any
value of the wrong type (a string in a numeric feature, a number in a categorical one).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Range:
    """Given bounds for the features matching `feature` of the models matching `model` (globs)."""

    model: str = "*"
    feature: str = "*"
    low: float
    high: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RangePolicy:
    warmup: int = 1000
    margin: float = 0.1
    ranges: tuple[Range, ...] = ()

    def given(self, model_id: str, feature: str) -> Range | None:
        """The last configured range that matches, or None (learn the bounds)."""
        found = None
        for entry in self.ranges:
            if fnmatchcase(model_id, entry.model) and fnmatchcase(feature, entry.feature):
                found = entry
        return found


class FeatureRange:
    """One numeric feature's bounds, given or being learned.

    >>> bounds = FeatureRange(RangePolicy(warmup=2, margin=0.5), None)
    >>> [bounds.outside(v) for v in (0.0, 10.0, 14.0, 16.0, -5.5)]
    [None, None, False, True, True]
    """

    __slots__ = ("high", "low", "margin", "seen", "warmup")

    def __init__(self, policy: RangePolicy, given: Range | None) -> None:
        self.margin = policy.margin
        if given is not None:
            self.low, self.high, self.warmup, self.seen = given.low, given.high, 0, 0
        else:
            self.low, self.high, self.warmup, self.seen = float("inf"), float("-inf"), policy.warmup, 0

    def outside(self, value: float) -> bool | None:
        """Whether a value is out of bounds; None while the bounds are still being learned."""
        if self.seen < self.warmup:
            self.seen += 1
            self.low = min(self.low, value)
            self.high = max(self.high, value)
            if self.seen == self.warmup:
                pad = self.margin * (self.high - self.low)
                self.low -= pad
                self.high += pad
            return None
        return value < self.low or value > self.high

    def export(self) -> tuple[Any, ...]:
        return self.low, self.high, self.warmup, self.seen

    @classmethod
    def restored(cls, policy: RangePolicy, given: Range | None, saved: tuple[Any, ...]) -> FeatureRange:
        bounds = cls(policy, given)
        if given is None:  # given bounds follow the config; learned ones carry over
            bounds.low, bounds.high, bounds.warmup, bounds.seen = saved
        return bounds
