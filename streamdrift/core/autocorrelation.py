"""A numeric signal's lag-1 autocorrelation, kept event by event and mergeable across periods.

Serial dependence is what breaks a detector calibrated on independent values: a Page-Hinkley threshold set
for i.i.d. data fires several times as often on AR(1) noise with φ = 0.5, whose long-run variance is three
times its marginal one (docs/REFERENCE.md, "A false-alarm budget"). The reference profile therefore keeps
the co-moment of consecutive values, (x[t-1], x[t]), with Welford's update and Chan et al.'s merge — as
`NumericValues` keeps the moments of the values themselves. Two merged periods lose only the pair that
would join them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class LagOne:
    """Pairs of consecutive values of one signal: their count, the two means and the co-moment."""

    previous: float | None = None  # the last value seen: the first of the next pair
    pairs: int = 0
    mean_previous: float = 0.0
    mean_next: float = 0.0
    comoment: float = 0.0  # sum of (previous - mean_previous) * (next - mean_next)

    def add(self, value: float) -> None:
        previous, self.previous = self.previous, value
        if previous is None:
            return
        self.pairs += 1
        delta_previous = previous - self.mean_previous
        self.mean_previous += delta_previous / self.pairs
        self.mean_next += (value - self.mean_next) / self.pairs
        self.comoment += delta_previous * (value - self.mean_next)

    def merge(self, other: LagOne) -> None:
        """Another period's pairs (the pair joining the two periods is not known, so not counted)."""
        if other.pairs == 0:
            self.previous = other.previous if other.previous is not None else self.previous
            return
        total = self.pairs + other.pairs
        weight = self.pairs * other.pairs / total
        self.comoment += (
            other.comoment
            + (other.mean_previous - self.mean_previous) * (other.mean_next - self.mean_next) * weight
        )
        self.mean_previous += (other.mean_previous - self.mean_previous) * other.pairs / total
        self.mean_next += (other.mean_next - self.mean_next) * other.pairs / total
        self.pairs = total
        self.previous = other.previous

    def autocorrelation(self, variance: float) -> float | None:
        """The lag-1 autocorrelation given the values' variance (None with fewer than 3 pairs, or constant
        values), clipped to [-1, 1] against rounding."""
        if self.pairs < 3 or variance <= 0.0:
            return None
        return max(-1.0, min(1.0, self.comoment / (self.pairs - 1) / variance))

    def document(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs, "mean_previous": self.mean_previous, "mean_next": self.mean_next,
            "comoment": self.comoment, "last": self.previous,
        }  # fmt: skip

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> LagOne:
        """A profile written before lag-1 statistics were kept has none: no pairs."""
        if not document:
            return cls()
        last = document.get("last")
        return cls(
            previous=None if last is None else float(last), pairs=int(document["pairs"]),
            mean_previous=float(document["mean_previous"]), mean_next=float(document["mean_next"]),
            comoment=float(document["comoment"]),
        )  # fmt: skip
