"""Rates over the steady middle of a run, and percentiles: pure functions of progress samples."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

# (wall-clock seconds, cumulative events), in time order.
Sample = tuple[float, float]

STEADY_FROM = 0.2
STEADY_TO = 0.8


@dataclass(frozen=True, slots=True, kw_only=True)
class SteadyRate:
    """Events per second between the samples where the run passed `from_events` and `to_events`."""

    events_per_s: float
    start: float
    end: float
    from_events: float
    to_events: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def steady_rate(
    samples: Sequence[Sample], total: float, *, lo: float = STEADY_FROM, hi: float = STEADY_TO
) -> SteadyRate:
    """The rate between the first sample at or past `lo * total` events and the first at or past `hi * total`.

    Startup (imports, joining the group, the first fetches) and the tail (the last partition draining alone)
    fall outside the window. Raises ValueError when the samples do not span it.

    >>> steady_rate([(0.0, 0), (1.0, 10), (2.0, 30), (3.0, 50), (4.0, 90), (5.0, 100)], 100).events_per_s
    30.0
    """
    first = next((s for s in samples if s[1] >= lo * total), None)
    last = next((s for s in samples if s[1] >= hi * total), None)
    if first is None or last is None or last[0] <= first[0]:
        raise ValueError(
            f"progress samples do not span {lo:.0%}..{hi:.0%} of {total:.0f} events "
            f"({len(samples)} samples, last {samples[-1] if samples else None})"
        )
    return SteadyRate(
        events_per_s=(last[1] - first[1]) / (last[0] - first[0]),
        start=first[0],
        end=last[0],
        from_events=first[1],
        to_events=last[1],
    )


def interpolate(samples: Sequence[Sample], at: float) -> float:
    """Cumulative events at time `at`: linear between samples, 0 before the first, flat after the last."""
    if not samples or at < samples[0][0]:
        return 0.0
    times = [s[0] for s in samples]
    i = bisect.bisect_right(times, at)
    if i >= len(samples):
        return float(samples[-1][1])
    (t0, e0), (t1, e1) = samples[i - 1], samples[i]
    return float(e0 + (e1 - e0) * (at - t0) / (t1 - t0) if t1 > t0 else e1)


def combined(sample_sets: Sequence[Sequence[Sample]], *, not_before: float = -math.inf) -> list[Sample]:
    """The summed progress of several processes, at every time any of them reported (from `not_before`).

    >>> combined([[(1.0, 10), (3.0, 30)], [(2.0, 5), (4.0, 25)]])
    [(1.0, 10.0), (2.0, 25.0), (3.0, 45.0), (4.0, 55.0)]
    """
    times = sorted({t for samples in sample_sets for t, _ in samples if t >= not_before})
    return [(t, sum(interpolate(samples, t) for samples in sample_sets)) for t in times]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks.

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 100)
    (2.5, 4.0)
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
