"""The false-alarm budget on simulated null fleets (benchmarks/budget.py): 1,000 models x 20 features,
resampled from a reference, i.i.d. and AR(1) with φ = 0.5. The count of false alarms must lie in the 99%
Poisson interval of what the budget allows (scipy's interval: the oracle is the budget, not the code), a
0.5-std shift must still be found, and a calibration that ignores the autocorrelation must fail — the
failure the budget's simulation on the profile exists to avoid."""

from __future__ import annotations

import pytest

from benchmarks.budget import run_fleet


@pytest.mark.parametrize("phi", [0.0, 0.5], ids=["iid", "ar1"])
def test_a_null_fleets_false_alarms_are_within_the_budget(phi: float) -> None:
    outcome = run_fleet(phi, seed=1)
    low, high = outcome.interval
    assert low <= outcome.false_alarms <= high, outcome
    # A 0.5-std shift, within 2,000 events: autocorrelated noise needs thresholds three times as high.
    assert outcome.detected > (0.99 if phi == 0 else 0.93), outcome
    assert outcome.delay_median < (150 if phi == 0 else 400), outcome


def test_thresholds_calibrated_as_if_independent_fail_on_autocorrelated_noise() -> None:
    outcome = run_fleet(0.5, seed=1, naive=True)
    assert outcome.false_alarms > 3 * outcome.interval[1], outcome
