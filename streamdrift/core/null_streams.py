"""What a signal looks like with no drift, as the false-alarm budget simulates it (calibration.py).

Values are drawn from the signal's reference distribution (the quantile function of the profile's KLL sketch)
through a Gaussian copula driven by AR(1) noise: marginals as in the reference, serial dependence as in the
reference. The copula's φ is chosen so that the *values* have the profile's lag-1 autocorrelation (a skewed or
discrete signal correlates less than its Gaussian driver). Standardised with the profile's mean and std and
clipped as the service feeds the detector (scaling.py).

The shape also gives the asymptotic slope of log(mean run length) in the threshold, for each side of the
two-sided test: the Cramér-Lundberg exponent θ of the clipped values, E[exp(θ(X - m))] = exp(θ·delta)
(2·delta for Gaussian values of variance 1), divided by the ratio of the long-run variance to the variance,
which the copula's autocorrelation at every lag gives (φ = 0.5 triples it for Gaussian values: why a threshold
calibrated on i.i.d. values fails on autocorrelated ones).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.optimize import brentq
from scipy.signal import lfilter
from scipy.special import ndtr

from streamdrift.core.page_hinkley_lanes import Floats

CHUNK_VALUES: Final = 4_000_000  # values generated at a time, all lanes together (32 MB)
QUANTILE_POINTS: Final = 257  # the quantile function's resolution (probabilities 0, 1/256, ..., 1)
MOMENT_POINTS: Final = 4_096  # the distribution's values for its exponent: midpoints of as many quantiles
# Gauss-Hermite nodes for E[f(Z)], Z standard normal: the lag-j correlation of a copula's values.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_WEIGHTS = _WEIGHTS / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, slots=True, kw_only=True)
class NullShape:
    """A signal with no drift: its standardised quantile function and lag-1 autocorrelation."""

    quantiles: tuple[float, ...]  # standardised values at probabilities 0, 1/(n-1), ..., 1
    phi: float
    clip: float | None = None  # the detector sees standardised values clipped at ±clip (scaling.py)

    @classmethod
    def of(
        cls, quantiles: Sequence[float], mean: float, std: float, autocorrelation: float | None,
        *, clip: float | None = None,
    ) -> NullShape:  # fmt: skip
        """From the profile's figures: `autocorrelation` is the values' lag-1 correlation, which the copula's
        φ must reproduce (for a skewed signal φ is larger). Rounded, so that signals alike share one
        calibration; the simulation is seeded by the shape, so a profile gives the same thresholds run after
        run (a replay uses the service's detectors)."""
        scale = 1.0 / std
        standardised = tuple(round((q - mean) * scale, 4) for q in quantiles)
        phi = copula_phi(np.asarray(standardised), autocorrelation or 0.0)
        return cls(quantiles=standardised, phi=round(min(max(phi, -0.9), 0.95), 2), clip=clip)

    def values(self) -> Floats:
        """The standardised, clipped values of the distribution, as many equally likely points."""
        probabilities = np.linspace(0.0, 1.0, len(self.quantiles))
        points = np.interp((np.arange(MOMENT_POINTS) + 0.5) / MOMENT_POINTS, probabilities, self.quantiles)
        return points if self.clip is None else np.clip(points, -self.clip, self.clip)

    def variance_ratio(self) -> float:
        """Long-run variance over variance of the clipped values: 1 + 2·Σ_j corr(lag j)."""
        if self.phi == 0.0:
            return 1.0
        grid = np.asarray(self.quantiles)
        if self.clip is not None:
            grid = np.clip(grid, -self.clip, self.clip)
        total, lag_phi = 1.0, self.phi
        while abs(lag_phi) > 1e-4:
            total += 2.0 * lag_correlation(grid, lag_phi)
            lag_phi *= self.phi
        return max(total, 1e-3)

    def slopes(self, delta: float) -> tuple[float, float]:
        """The asymptotic slopes of log(mean run length) in the threshold: (rise, fall) tests."""
        values = self.values()
        centred = values - values.mean()
        ratio = self.variance_ratio()
        return _exponent(centred, delta) / ratio, _exponent(-centred, delta) / ratio

    def seed(self, delta: float) -> int:
        digest = hashlib.sha256(repr((self.quantiles, self.phi, self.clip, delta)).encode()).digest()
        return int.from_bytes(digest[:8], "big")


def _exponent(centred: Floats, delta: float) -> float:
    """θ > 0 with mean(exp(θ·x)) = exp(θ·delta): the rate at which a CUSUM of x - delta fails to stay low
    (inf when x never exceeds delta: that test cannot fire)."""
    top = float(centred.max())
    if top <= delta:
        return math.inf
    peak = top  # work with logs: log mean exp(θx) - θ·delta, stable for large θ

    def excess(theta: float) -> float:
        return float(np.log(np.mean(np.exp(theta * (centred - peak))))) + theta * (peak - delta)

    upper = 1.0
    while excess(upper) <= 0.0:
        upper *= 2.0
    lower = upper / 2.0 if upper > 1.0 else 1e-9
    while excess(lower) > 0.0 and lower > 1e-9:
        lower /= 2.0
    return float(brentq(excess, lower, upper, xtol=1e-10))


def lag_correlation(quantiles: Floats, phi: float) -> float:
    """The correlation of Q(Φ(z1)) and Q(Φ(z2)) for standard normal z1, z2 of correlation `phi` (the lag-j
    correlation of the values for φ^j), Q the quantile function given at equally spaced probabilities: by
    quadrature over the Gaussian pair."""
    probabilities = np.linspace(0.0, 1.0, quantiles.shape[0])
    first = np.interp(ndtr(_NODES), probabilities, quantiles)
    second = np.interp(
        ndtr(phi * _NODES[:, None] + math.sqrt(1.0 - phi * phi) * _NODES[None, :]), probabilities, quantiles
    )
    mean = float(_WEIGHTS @ first)
    variance = float(_WEIGHTS @ (first - mean) ** 2)
    if variance <= 0.0:
        return 0.0
    return float(_WEIGHTS @ ((first - mean)[:, None] * (second - mean)) @ _WEIGHTS) / variance


def copula_phi(quantiles: Floats, autocorrelation: float) -> float:
    """The copula's φ whose values have this lag-1 correlation (φ itself for a normal signal; a skewed
    or discrete one correlates less than its Gaussian driver, so its φ is larger)."""
    if autocorrelation <= 0.0:
        return autocorrelation  # negative dependence: rare, and taken as measured
    top = 0.99
    if lag_correlation(quantiles, top) <= autocorrelation:
        return top
    return float(brentq(lambda phi: lag_correlation(quantiles, phi) - autocorrelation, 0.0, top, xtol=1e-6))


def null_values(
    shapes: Sequence[NullShape], rngs: Sequence[np.random.Generator], streams: int, steps: int
) -> Iterator[Floats]:
    """Chunks of (values, shapes, streams) standardised null values, one stream per lane."""
    probabilities = np.linspace(0.0, 1.0, len(shapes[0].quantiles)) if shapes else np.zeros(0)
    noise = [rng.standard_normal(streams) for rng in rngs]  # AR(1) state, stationary start
    done = 0
    per_chunk = max(10, min(2_000, CHUNK_VALUES // max(1, len(shapes) * streams)))
    while done < steps:
        size = min(per_chunk, steps - done)
        chunk = np.empty((size, len(shapes), streams))
        for i, (shape, rng) in enumerate(zip(shapes, rngs, strict=True)):
            innovations = rng.standard_normal((size, streams)) * math.sqrt(1.0 - shape.phi**2)
            start = (shape.phi * noise[i])[None, :]
            z = lfilter([1.0], [1.0, -shape.phi], innovations, axis=0, zi=start)[0]
            noise[i] = z[-1]
            values = np.interp(ndtr(z), probabilities, np.asarray(shape.quantiles))
            chunk[:, i, :] = values if shape.clip is None else np.clip(values, -shape.clip, shape.clip)
        done += size
        yield chunk
