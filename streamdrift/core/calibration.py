"""Page-Hinkley's mean run length under no drift, measured by simulation on a reference profile's signal.

The false-alarm budget (budget.py) needs, per signal, the threshold at which Page-Hinkley raises a false
alarm once per `target` values on average. That is far beyond what can be simulated directly (a model at
one event a minute with 20 signals and one false alarm per 30 days needs 864,000 values between false
alarms), so the run length is measured where it is cheap and extrapolated where it is not:

1. **Null streams from the profile** (null_streams.py): the reference's marginal distribution and lag-1
   autocorrelation, standardised and clipped as the service feeds the detector.
2. **Page-Hinkley as the service runs it** (`alpha` 1: no fading, so the statistic is Page's CUSUM and its
   alarm rate does not drift with the detector's age), on many streams at once in numpy lanes whose
   arithmetic is River's own (page_hinkley_lanes.py). A detection resets a lane, as River resets itself.
3. **Alarms per value at a few thresholds, for each of the two tests** (the mean rose, the mean fell): a
   renewal count, total values over alarms.
4. **Extrapolation.** Each test's mean run length follows Siegmund's form for a CUSUM,
   exp(a) · (e^x - 1 - x), x = θ · threshold, whose log grows as θ · threshold far out. θ is not fitted —
   over the thresholds that can be simulated the curve has not straightened yet, and a fitted slope
   understates it — but computed from the shape (null_streams.py: the Cramér-Lundberg exponent of the
   clipped values over the long-run variance ratio); `a` is fitted on the highest thresholds measured. The
   two tests' false-alarm rates add up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.optimize import brentq

from streamdrift.core.null_streams import NullShape, null_values
from streamdrift.core.page_hinkley_lanes import Floats, PageHinkleyLanes

# The thresholds measured, as multiples of 1 / θ (θ of the test that fires more): log ARL about 1.7 + g.
GRID: Final = (4.0, 5.0, 6.0, 7.0, 8.0)
FITTED: Final = 3  # the intercept comes from the highest this many points with enough alarms
STEPS: Final = 40_000  # values per simulated stream
STREAMS: Final = 64  # streams per signal
MIN_ALARMS: Final = 30  # a point needs this many alarms to be fitted


@dataclass(frozen=True, slots=True, kw_only=True)
class OneSidedCurve:
    """One test's mean run length: exp(intercept) · (e^x - 1 - x), x = slope · threshold (slope inf: the
    test never fires)."""

    intercept: float
    slope: float

    def rate(self, threshold: float) -> float:
        """False alarms per value."""
        if math.isinf(self.slope):
            return 0.0
        return math.exp(-self.intercept - _log_excess(self.slope * threshold))

    def document(self) -> dict[str, float | None]:
        return {"intercept": self.intercept, "slope": None if math.isinf(self.slope) else self.slope}

    @classmethod
    def from_document(cls, document: Mapping[str, float | None]) -> OneSidedCurve:
        slope = document["slope"]
        return cls(intercept=float(document["intercept"] or 0.0), slope=math.inf if slope is None else slope)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLengthCurve:
    """Page-Hinkley's mean run length by threshold, for one signal and one delta: its two tests together."""

    delta: float
    rise: OneSidedCurve
    fall: OneSidedCurve

    def run_length(self, threshold: float) -> float:
        rate = self.rise.rate(threshold) + self.fall.rate(threshold)
        return math.inf if rate == 0.0 else 1.0 / rate

    def threshold_for(self, run_length: float) -> float:
        """The threshold whose mean run length is `run_length` values."""
        goal = math.log(run_length)

        def short(threshold: float) -> float:
            return math.log(self.run_length(threshold)) - goal

        low, high = 1e-6, 1.0
        if short(low) >= 0.0:
            return low
        while short(high) < 0.0:
            low, high = high, high * 2.0
        return round(float(brentq(short, low, high, xtol=1e-9)), 4)

    def document(self) -> dict[str, object]:
        return {"delta": self.delta, "rise": self.rise.document(), "fall": self.fall.document()}


def _log_excess(x: float) -> float:
    """log(e^x - 1 - x), accurate for small x and without overflow for large x."""
    if x > 30.0:
        return x + math.log1p(-(1.0 + x) * math.exp(-x))
    return math.log(math.expm1(x) - x)


def measure_curves(
    shapes: Sequence[NullShape], delta: float, *, streams: int = STREAMS, steps: int = STEPS
) -> list[RunLengthCurve]:
    """Each shape's run-length curve for Page-Hinkley with this `delta`, all shapes simulated together."""
    if not shapes:
        return []
    slopes = [shape.slopes(delta) for shape in shapes]
    thresholds = np.array([np.asarray(GRID) / min(rise, fall) for rise, fall in slopes])
    lanes = PageHinkleyLanes((len(shapes), len(GRID), streams), delta=delta, threshold=thresholds[:, :, None])
    rose = np.zeros((len(shapes), len(GRID)))
    fell = np.zeros((len(shapes), len(GRID)))
    rngs = [np.random.default_rng(shape.seed(delta)) for shape in shapes]
    for chunk in null_values(shapes, rngs, streams, steps):
        for values in chunk:
            lanes.update(values[:, None, :])
            rose += lanes.rose.sum(axis=2)
            fell += lanes.fell.sum(axis=2)
    values = streams * steps
    return [
        RunLengthCurve(
            delta=delta,
            rise=_fit(slopes[i][0], thresholds[i], rose[i], values),
            fall=_fit(slopes[i][1], thresholds[i], fell[i], values),
        )
        for i in range(len(shapes))
    ]


def _fit(slope: float, thresholds: Floats, alarms: Floats, values: int) -> OneSidedCurve:
    """The intercept: the alarm-weighted mean of log(values / alarms) - log(e^x - 1 - x) over the highest
    points with enough alarms (a point's log run length has variance about 1 / alarms). A test that fired
    too rarely to measure is given one alarm at the lowest threshold: an upper bound on its rate."""
    if math.isinf(slope):
        return OneSidedCurve(intercept=0.0, slope=math.inf)
    usable = np.flatnonzero(alarms >= MIN_ALARMS)[-FITTED:]
    if usable.size == 0:
        return OneSidedCurve(
            intercept=math.log(values / max(float(alarms[0]), 1.0))
            - _log_excess(slope * float(thresholds[0])),
            slope=slope,
        )
    residuals = [
        math.log(values / float(alarms[i])) - _log_excess(slope * float(thresholds[i])) for i in usable
    ]
    return OneSidedCurve(intercept=float(np.average(residuals, weights=alarms[usable])), slope=slope)
