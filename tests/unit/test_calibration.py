"""The budget's simulation (core/calibration.py): its Page-Hinkley lanes raise River's alarms, its null
streams have the reference's marginal distribution and autocorrelation, its curves invert."""

from __future__ import annotations

import math

import numpy as np
import pytest
from river.drift import PageHinkley
from scipy import optimize, stats
from scipy.signal import lfilter

from streamdrift.core.calibration import OneSidedCurve, RunLengthCurve, measure_curves
from streamdrift.core.null_streams import QUANTILE_POINTS, NullShape, null_values
from streamdrift.core.page_hinkley_lanes import PageHinkleyLanes


def streams(seed: int, steps: int) -> np.ndarray:
    """Four lanes: normal, lognormal, AR(1) with φ 0.8, and a shift halfway."""
    rng = np.random.default_rng(seed)
    ar = lfilter([1.0], [1.0, -0.8], rng.standard_normal(steps))
    shifted = rng.standard_normal(steps) + np.where(np.arange(steps) >= steps // 2, 1.0, 0.0)
    return np.stack([rng.standard_normal(steps), rng.lognormal(0, 1, steps), ar, shifted], axis=1)


@pytest.mark.parametrize("alpha", [1.0, 1 - 0.0001, 0.99])
def test_the_lanes_raise_rivers_alarms_value_for_value(alpha: float) -> None:
    values = streams(5, 8_000)
    thresholds = np.array([2.0, 5.0, 12.0])
    lanes = PageHinkleyLanes((3, 4), delta=0.05, threshold=thresholds[:, None], alpha=alpha)
    ours: list[list[int]] = [[] for _ in range(12)]
    for t, row in enumerate(values):
        for fired in np.flatnonzero(lanes.update(np.broadcast_to(row, (3, 4))).ravel()):
            ours[int(fired)].append(t)
    for lane in range(12):
        river = PageHinkley(delta=0.05, threshold=float(thresholds[lane // 4]), alpha=alpha)
        theirs = []
        for t, x in enumerate(values[:, lane % 4].tolist()):
            river.update(x)  # type: ignore[no-untyped-call]
            if river.drift_detected:
                theirs.append(t)
        assert ours[lane] == theirs, lane
    assert sum(map(len, ours)) > 100  # the thresholds are low enough to be crossed, often


def test_null_streams_have_the_references_distribution_and_autocorrelation() -> None:
    reference = np.random.default_rng(1).gamma(2.0, 3.0, 50_000)
    quantiles = np.quantile(reference, np.linspace(0, 1, QUANTILE_POINTS))
    mean, std = float(reference.mean()), float(reference.std(ddof=1))
    shape = NullShape.of(quantiles.tolist(), mean, std, 0.6)
    chunks = list(null_values([shape], [np.random.default_rng(2)], streams=4, steps=20_000))
    values = np.concatenate(chunks)[:, 0, :]  # (steps, streams)
    standardised = (reference - mean) / std
    assert stats.ks_2samp(values[:, 0], standardised).pvalue > 1e-3
    # The copula's φ is chosen so that the values (skewed: less correlated than their Gaussian driver) have
    # the lag-1 correlation asked for.
    assert shape.phi > 0.6
    lag1 = np.mean([np.corrcoef(values[:-1, i], values[1:, i])[0, 1] for i in range(4)])
    assert lag1 == pytest.approx(0.6, abs=0.02)
    # The streams of one shape are independent of each other.
    assert abs(np.corrcoef(values[:, 0], values[:, 1])[0, 1]) < 0.05


@pytest.mark.parametrize("run_length", [1e3, 1e5, 1e7])
def test_a_curves_threshold_has_the_run_length_asked_for(run_length: float) -> None:
    rise, fall = OneSidedCurve(intercept=2.3, slope=0.42), OneSidedCurve(intercept=1.9, slope=0.55)
    curve = RunLengthCurve(delta=0.25, rise=rise, fall=fall)
    threshold = curve.threshold_for(run_length)

    def rate(h: float, a: float, b: float) -> float:  # 1 / (exp(a) * (e^x - 1 - x)), x = b * h
        return 1.0 / (math.exp(a) * (math.expm1(b * h) - b * h))

    # scipy's root of the same equation: the two tests' rates add up to 1 / run_length.
    root = optimize.brentq(lambda h: rate(h, 2.3, 0.42) + rate(h, 1.9, 0.55) - 1.0 / run_length, 1e-2, 1e3)
    assert threshold == pytest.approx(root, abs=1e-4)
    assert curve.run_length(threshold) == pytest.approx(run_length, rel=1e-3)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.8])
def test_a_gaussian_signals_slope_is_two_delta_over_its_long_run_variance(phi: float) -> None:
    """The Gaussian AR(1) case, where the answer is known in closed form: θ = 2·delta·(1 - φ) / (1 + φ)
    (clipped at 3 std, as the budget feeds the detector: within 3% of it)."""
    quantiles = stats.norm.ppf(np.linspace(0, 1, QUANTILE_POINTS).clip(1e-7, 1 - 1e-7))
    shape = NullShape.of(quantiles.tolist(), 0.0, 1.0, phi, clip=3.0)
    rise, fall = shape.slopes(0.25)
    assert rise == pytest.approx(fall, rel=1e-6)
    assert rise == pytest.approx(0.5 * (1 - phi) / (1 + phi), rel=0.03)


def test_a_skewed_signal_fires_on_its_long_side_first() -> None:
    """Exponential values: the rise test (long right tail) has the smaller slope, i.e. fires more often;
    clipping the tail at 3 std raises that slope."""
    quantiles = stats.expon.ppf(np.linspace(0, 1, QUANTILE_POINTS).clip(0, 1 - 1e-7))
    free = NullShape.of(quantiles.tolist(), 1.0, 1.0, 0.0)
    clipped = NullShape.of(quantiles.tolist(), 1.0, 1.0, 0.0, clip=3.0)
    rise, fall = free.slopes(0.25)
    assert rise < fall
    assert clipped.slopes(0.25)[0] > rise


def test_the_extrapolated_run_length_is_the_simulated_one_far_out() -> None:
    """A curve measured at run lengths up to about 10^4, checked at a threshold whose run length is about
    10^5 by simulating there directly (independent streams, another seed): within 25%."""
    quantiles = stats.gamma.ppf(np.linspace(0, 1, QUANTILE_POINTS).clip(1e-7, 1 - 1e-7), 3.0)
    shape = NullShape.of(quantiles.tolist(), 3.0, math.sqrt(3.0), 0.3, clip=3.0)
    curve = measure_curves([shape], 0.25)[0]
    threshold = curve.threshold_for(1e5)
    lanes = PageHinkleyLanes((1, 200), delta=0.25, threshold=threshold)
    alarms, steps = 0, 0
    for chunk in null_values([shape], [np.random.default_rng(123)], streams=200, steps=150_000):
        for values in chunk:
            alarms += int(lanes.update(values[None, 0, :]).sum())
        steps += chunk.shape[0]
    measured = 200 * steps / alarms
    assert alarms > 200
    assert measured == pytest.approx(1e5, rel=0.25)
