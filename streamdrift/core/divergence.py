"""How far a window of live values is from a reference profile (reference.py): the statistics of reference
windows, on the profile's bins (numeric signals) or categories (categorical ones).

Every function takes counts over the same cells, the reference's first; empty cells are floored at
`FLOOR` of the mass (then renormalised) where a logarithm or a division would otherwise be undefined, as
the usual PSI tables do. The tests hold each figure to scipy's on the same counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.special import chdtrc

FLOOR = 1e-4  # the least share a cell is given when it is empty on one side

Floats = NDArray[np.float64]


class Statistic(NamedTuple):
    value: float
    p_value: float | None  # only tests with a sampling distribution have one (chi-square)


def binned(edges: Sequence[float], values: Sequence[float]) -> NDArray[np.int64]:
    """Counts of `values` in the bins the interior `edges` make: (-inf, e1], (e1, e2], …, (ek, inf)."""
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), "left")
    return np.bincount(bins, minlength=len(edges) + 1).astype(np.int64)


def shares(counts: Sequence[float] | Floats) -> Floats:
    """Counts as proportions, each at least FLOOR, summing to 1."""
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    if total <= 0:
        raise ValueError("no values to compare")
    floored = np.maximum(array / total, FLOOR)
    result: Floats = floored / floored.sum()
    return result


def psi(reference: Sequence[float], live: Sequence[float]) -> Statistic:
    """Population stability index: sum over cells of (live - reference) * ln(live / reference)."""
    expected, actual = shares(reference), shares(live)
    return Statistic(float(np.sum((actual - expected) * np.log(actual / expected))), None)


def jensen_shannon(reference: Sequence[float], live: Sequence[float]) -> Statistic:
    """Jensen-Shannon distance in bits (the square root of the divergence): 0 for the same shares, 1 at
    most."""
    p, q = shares(reference), shares(live)
    m = (p + q) / 2
    divergence = (np.sum(p * np.log2(p / m)) + np.sum(q * np.log2(q / m))) / 2
    return Statistic(float(np.sqrt(max(divergence, 0.0))), None)


def bin_points(edges: Sequence[float], low: float, high: float) -> Floats:
    """Where each bin's mass sits for the Wasserstein distance: the middle of its edges, the outer bins
    closed by the reference's least and greatest value."""
    inner = [float(edge) for edge in edges]
    first, last = (min(low, inner[0]), max(high, inner[-1])) if inner else (low, high)
    bounds = np.asarray([first, *inner, last], dtype=np.float64)
    points: Floats = (bounds[:-1] + bounds[1:]) / 2
    return points


def wasserstein(points: Floats, reference: Sequence[float], live: Sequence[float]) -> Statistic:
    """First Wasserstein distance between the two histograms, each bin's mass at its point: the area between
    the two cumulative distributions."""
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(live, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("no values to compare")
    gap = np.abs(np.cumsum(p / p.sum()) - np.cumsum(q / q.sum()))[:-1]
    return Statistic(float(np.sum(gap * np.diff(points))), None)


def chi_square(reference: Sequence[float], live: Sequence[float]) -> Statistic:
    """Pearson's chi-square of the live counts against the reference's shares, with its p-value (cells - 1
    degrees of freedom)."""
    observed = np.asarray(live, dtype=np.float64)
    expected = shares(reference) * observed.sum()
    value = float(np.sum((observed - expected) ** 2 / expected))
    return Statistic(value, float(chdtrc(len(observed) - 1, value)))
