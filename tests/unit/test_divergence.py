"""The statistics of reference windows (core/divergence.py), each held to scipy's on the same counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import chisquare, wasserstein_distance

from streamdrift.core.divergence import (
    FLOOR,
    bin_points,
    binned,
    chi_square,
    jensen_shannon,
    psi,
    wasserstein,
)


def counts_pair(seed: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 500, cells).astype(float)
    live = rng.integers(0, 200, cells).astype(float)
    live[rng.integers(cells)] = 0  # an empty cell: the floor applies
    return reference, live


def floored(counts: np.ndarray) -> np.ndarray:
    """The same flooring, written again for the oracle's input."""
    shares = np.maximum(counts / counts.sum(), FLOOR)
    return shares / shares.sum()


@pytest.mark.parametrize("seed", range(10))
def test_psi_is_the_symmetric_kullback_leibler_divergence(seed: int) -> None:
    reference, live = counts_pair(seed, 10)
    p, q = floored(reference), floored(live)
    expected = np.sum(rel_entr(q, p)) + np.sum(rel_entr(p, q))
    assert psi(reference, live).value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_jensen_shannon_equals_scipy(seed: int) -> None:
    reference, live = counts_pair(seed, 12)
    expected = jensenshannon(floored(reference), floored(live), base=2)
    assert jensen_shannon(reference, live).value == pytest.approx(expected, abs=1e-12)
    assert jensen_shannon(reference, reference).value == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("seed", range(10))
def test_binned_wasserstein_equals_scipy_on_the_bins_points(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=5_000)
    edges = sorted(np.quantile(values, np.linspace(0.1, 0.9, 9)))
    reference = binned(edges, values)
    live = binned(edges, rng.normal(0.3, 1.2, size=800))
    points = bin_points(edges, float(values.min()), float(values.max()))
    expected = wasserstein_distance(points, points, reference, live)
    assert wasserstein(points, reference, live).value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_chi_square_and_its_p_value_equal_scipy(seed: int) -> None:
    reference, live = counts_pair(seed, 6)
    found = chi_square(reference, live)
    expected = chisquare(live, floored(reference) * live.sum())
    assert found.value == pytest.approx(expected.statistic, rel=1e-12)
    assert found.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_binned_counts_each_value_in_the_bin_its_edges_close() -> None:
    edges = [1.0, 2.0, 3.0]
    values = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 9.0]
    expected = np.histogram(values, bins=[-np.inf, *edges, np.inf])[0]
    # numpy's bins are [a, b) but the last; ours (a, b]: the values on an edge move one bin down.
    assert binned(edges, values).tolist() == [2, 2, 2, 2]
    assert expected.tolist() == [1, 2, 2, 3]


def test_nothing_to_compare_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        psi([0, 0], [1, 2])
    with pytest.raises(ValueError, match="no values"):
        wasserstein(np.array([0.0, 1.0]), [1, 1], [0, 0])
