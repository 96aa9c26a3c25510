"""Multivariate drift by PCA reconstruction error (streamdrift/core/multivariate.py).

Expected values come from independent oracles: `np.mean`/`np.cov` for the moments, `np.linalg.svd` of the
standardised reference matrix for the components and the errors, a large fresh sample for the analytic
reference error, and River's ADWIN for the claim the module exists for (a correlation flip that no
per-feature detector sees).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from river.drift import ADWIN

from streamdrift.core.multivariate import COMOMENTS_FORMAT, PCA_FORMAT, CoMoments, Pca, fit_from_rows

Floats = np.ndarray


# ----------------------------------------------------------------------------------------------- oracles


def svd_oracle(reference: Floats, explained_variance: float) -> tuple[Floats, Floats, Floats, Floats]:
    """(mean, std, eigenvalues descending, kept right singular vectors k x d) of the standardised reference,
    by SVD: the eigenvalues of the correlation matrix are s² / (n - 1)."""
    mean, std = reference.mean(axis=0), reference.std(axis=0, ddof=1)
    standardised = (reference - mean) / std
    _, singular, right = np.linalg.svd(standardised, full_matrices=False)
    eigenvalues = singular**2 / (len(reference) - 1)
    shares = np.cumsum(eigenvalues) / eigenvalues.sum()
    kept = int(np.argmax(shares >= explained_variance - 1e-12)) + 1 if explained_variance < 1 else len(mean)
    kept = min(max(kept, 1), len(mean) - 1)
    return mean, std, eigenvalues, right[:kept]


def direct_error(row: Floats, mean: Floats, std: Floats, kept: Floats) -> float:
    """||z - z Wᵀ W||², computed as written."""
    z = (row - mean) / std
    residual = z - z @ kept.T @ kept
    return float(residual @ residual)


def projection(components: Floats) -> Floats:
    return components.T @ components


def correlated_reference(rng: np.random.Generator, rows: int, dim: int = 6) -> Floats:
    """Gaussian rows with a spread spectrum, offsets and very different column scales (so that standardising
    matters)."""
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    spectrum = np.linspace(3.0, 0.3, dim)
    scales = np.geomspace(1e-3, 1e3, dim)
    offsets = rng.uniform(-100, 100, dim)
    return (rng.standard_normal((rows, dim)) * spectrum) @ rotation * scales + offsets


def moments_of(rows: Floats) -> CoMoments:
    moments = CoMoments(rows.shape[1])
    moments.add_many(rows)
    return moments


def names_for(dim: int) -> tuple[str, ...]:
    return tuple(f"f{i}" for i in range(dim))


def event(names: tuple[str, ...], row: Floats) -> dict[str, object]:
    return dict(zip(names, row.tolist(), strict=True))


# ------------------------------------------------------------------------------------------- CoMoments

matrices = st.integers(2, 40).flatmap(
    lambda rows: st.integers(1, 5).flatmap(
        lambda columns: arrays(
            np.float64, (rows, columns), elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
        )
    )
)


def assert_moments(moments: CoMoments, rows: Floats) -> None:
    scale = max(1.0, float(np.abs(rows).max()))
    assert moments.count == len(rows)
    np.testing.assert_allclose(moments.mean, np.mean(rows, axis=0), rtol=1e-9, atol=1e-9 * scale)
    expected = np.atleast_2d(np.cov(rows, rowvar=False, ddof=1))
    np.testing.assert_allclose(moments.covariance(), expected, rtol=1e-7, atol=1e-7 * scale**2)


@settings(max_examples=60, deadline=None)
@given(matrices)
def test_comoments_one_row_at_a_time_match_numpy(rows: Floats) -> None:
    moments = CoMoments(rows.shape[1])
    for row in rows:
        moments.add(row.tolist())
    assert_moments(moments, rows)


@settings(max_examples=60, deadline=None)
@given(matrices)
def test_comoments_add_many_matches_numpy(rows: Floats) -> None:
    assert_moments(moments_of(rows), rows)


@settings(max_examples=60, deadline=None)
@given(matrices, st.data())
def test_comoments_merged_halves_match_numpy(rows: Floats, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(rows)))
    first, second = CoMoments(rows.shape[1]), CoMoments(rows.shape[1])
    for row in rows[:cut]:
        first.add(row.tolist())
    second.add_many(rows[cut:])
    first.merge(second)
    assert_moments(first, rows)


def test_comoments_stay_accurate_far_from_zero() -> None:
    # A naive sum of squares loses everything here: variance 1 around 1e9.
    rows = np.random.default_rng(3).standard_normal((2000, 3)) + 1e9
    moments = CoMoments(3)
    for row in rows:
        moments.add(row.tolist())
    np.testing.assert_allclose(moments.covariance(), np.cov(rows, rowvar=False), rtol=1e-6, atol=1e-6)


def test_comoments_round_trip_through_json() -> None:
    rows = np.random.default_rng(1).standard_normal((50, 3))
    moments = moments_of(rows)
    document = json.loads(json.dumps(moments.to_dict()))
    assert document["format"] == COMOMENTS_FORMAT
    again = CoMoments.from_dict(document)
    assert again.count == 50
    assert np.array_equal(again.mean, moments.mean)
    assert np.array_equal(again.comoment, moments.comoment)
    again.add([1.0, 2.0, 3.0])  # a restored accumulator keeps accumulating
    assert_moments(again, np.vstack([rows, [[1.0, 2.0, 3.0]]]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "streamdrift.comoments/9"}, "unknown format"),
        ({"count": True}, "count must be a whole number"),
        ({"count": -1}, "count must be a whole number"),
        ({"mean": ["1", 2.0]}, r"mean\[0\] must be a finite number"),
        ({"comoment": [[1.0, 0.0]]}, "comoment must be d x d"),
        ({"comoment": [[1.0, 0.0], [0.0]]}, "comoment must be d x d"),
    ],
)
def test_comoments_from_dict_refuses_a_malformed_document(change: dict[str, object], message: str) -> None:
    document = {
        "format": COMOMENTS_FORMAT,
        "count": 3,
        "mean": [0.0, 1.0],
        "comoment": [[1.0, 0.0], [0.0, 1.0]],
    }
    with pytest.raises(ValueError, match=message):
        CoMoments.from_dict({**document, **change})


def test_comoments_refuse_rows_of_the_wrong_shape_or_not_finite() -> None:
    moments = CoMoments(2)
    with pytest.raises(ValueError, match="is not a 2-vector"):
        moments.add([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="is not a 2-vector"):
        moments.add_many(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="not finite"):
        moments.add([1.0, math.nan])
    with pytest.raises(ValueError, match="dimension 3 != 2"):
        moments.merge(CoMoments(3))
    assert moments.count == 0  # nothing refused was counted


# ------------------------------------------------------------------------------------------------- fit


@pytest.mark.parametrize("explained_variance", [0.3, 0.65, 0.9, 1.0])
def test_fit_matches_svd_of_the_standardised_reference(explained_variance: float) -> None:
    reference = correlated_reference(np.random.default_rng(7), 4000)
    mean, std, eigenvalues, kept = svd_oracle(reference, explained_variance)
    count = len(kept)
    assert eigenvalues[count - 1] - eigenvalues[count] > 0.05  # a gap: the kept subspace is well defined

    pca = Pca.fit(moments_of(reference), names_for(6), explained_variance=explained_variance)

    assert len(pca.components) == count
    np.testing.assert_allclose(pca.mean, mean, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(pca.std, std, rtol=1e-9)
    # Eigenvector signs are arbitrary: compare the subspaces through their projection matrices.
    np.testing.assert_allclose(projection(np.array(pca.components)), projection(kept), atol=1e-8)
    assert pca.explained_variance == pytest.approx(eigenvalues[:count].sum() / eigenvalues.sum(), rel=1e-9)
    assert pca.reference_error_mean == pytest.approx(eigenvalues[count:].sum(), rel=1e-9)
    assert pca.reference_error_std == pytest.approx(math.sqrt(2 * (eigenvalues[count:] ** 2).sum()), rel=1e-9)


def test_fit_keeps_at_most_d_minus_1_components() -> None:
    reference = correlated_reference(np.random.default_rng(2), 500, dim=3)
    pca = Pca.fit(moments_of(reference), names_for(3), explained_variance=1.0)
    assert len(pca.components) == 2
    assert pca.reference_error_mean > 0


def test_error_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(11)
    reference = correlated_reference(rng, 3000)
    mean, std, _, kept = svd_oracle(reference, 0.65)
    pca = Pca.fit(moments_of(reference), names_for(6))
    # New rows off the reference's distribution: shifted and rescaled, so errors are of every size.
    rows = reference[:200] * rng.uniform(0.5, 2.0, 6) + rng.normal(0, 1, 6) * std
    expected = np.array([direct_error(row, mean, std, kept) for row in rows])

    one_by_one = np.array([pca.error(event(names_for(6), row)) for row in rows])
    np.testing.assert_allclose(one_by_one, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(pca.errors(rows), expected, rtol=1e-7, atol=1e-9)


def test_analytic_reference_error_matches_a_large_gaussian_sample() -> None:
    rng = np.random.default_rng(5)
    rotation, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    spectrum = np.array([3.0, 2.5, 2.0, 1.5, 1.0, 0.7, 0.5, 0.3])

    def sample(rows: int) -> Floats:
        return (rng.standard_normal((rows, 8)) * spectrum) @ rotation * 10.0 + 5.0

    pca = Pca.fit(moments_of(sample(50_000)), names_for(8))
    errors = pca.errors(sample(200_000))  # fresh data from the same distribution
    assert errors.mean() == pytest.approx(pca.reference_error_mean, rel=0.03)
    assert errors.std() == pytest.approx(pca.reference_error_std, rel=0.05)  # Gaussian: the documented std


def test_a_constant_feature_is_dropped_from_the_fit_without_dividing_by_zero() -> None:
    rng = np.random.default_rng(9)
    varying = correlated_reference(rng, 2000, dim=4)
    reference = np.insert(varying, 1, 3.7, axis=1)  # column "c" is always 3.7
    names = ("a", "c", "b", "d", "e")
    with np.errstate(all="raise"):  # any division by zero or invalid value raises
        one_by_one = CoMoments(5)
        for row in reference:
            one_by_one.add(row.tolist())
        for moments in (one_by_one, moments_of(reference)):
            pca = Pca.fit(moments, names)
            assert pca.names == ("a", "b", "d", "e")
            assert pca.constant == ("c",)
            mean, std, _, kept = svd_oracle(varying, 0.65)
            np.testing.assert_allclose(projection(np.array(pca.components)), projection(kept), atol=1e-8)
            row = varying[0] + 1.0
            expected = direct_error(row, mean, std, kept)
            # The constant feature is not read: its value changing (or its absence) moves nothing here.
            for value in (3.7, 100.0):
                features = {"a": row[0], "c": value, "b": row[1], "d": row[2], "e": row[3]}
                assert pca.error(features) == pytest.approx(expected, rel=1e-9)
            assert pca.error({"a": row[0], "b": row[1], "d": row[2], "e": row[3]}) == pytest.approx(expected)


def test_fit_needs_two_varying_features_and_two_rows() -> None:
    rows = np.column_stack([np.arange(10.0), np.full(10, 2.0), np.zeros(10)])
    with pytest.raises(ValueError, match="at least 2 features that vary"):
        Pca.fit(moments_of(rows), ("x", "y", "z"))
    with pytest.raises(ValueError, match="at least 2 rows"):
        Pca.fit(moments_of(rows[:1]), ("x", "y", "z"))
    with pytest.raises(ValueError, match="2 names for a 3-vector"):
        Pca.fit(moments_of(rows), ("x", "y"))
    with pytest.raises(ValueError, match="explained_variance"):
        Pca.fit(moments_of(rows), ("x", "y", "z"), explained_variance=0.0)


# ---------------------------------------------------------------------------------------- bad features


@pytest.fixture(scope="module")
def pca() -> Pca:
    return Pca.fit(moments_of(correlated_reference(np.random.default_rng(4), 1000, dim=3)), ("x", "y", "z"))


@pytest.mark.parametrize(
    "features",
    [
        {"x": 1.0, "y": 2.0},  # missing
        {"x": 1.0, "y": 2.0, "z": math.nan},
        {"x": 1.0, "y": math.inf, "z": 2.0},
        {"x": 1.0, "y": 2.0, "z": -math.inf},
        {"x": True, "y": 2.0, "z": 3.0},  # a bool is an int in Python, not a number here
        {"x": np.bool_(True), "y": 2.0, "z": 3.0},
        {"x": "1.0", "y": 2.0, "z": 3.0},  # a numeric string is still a string
        {"x": None, "y": 2.0, "z": 3.0},
        {"x": [1.0], "y": 2.0, "z": 3.0},
        {"x": 10**400, "y": 2.0, "z": 3.0},  # an int beyond float range
        {"x": 1e308, "y": -1e308, "z": 1e308},  # finite, but the error overflows
    ],
)
def test_error_is_none_for_an_event_it_cannot_use(pca: Pca, features: Mapping[str, object]) -> None:
    assert pca.error(features) is None


def test_error_takes_ints_and_numpy_numbers_and_ignores_other_keys(pca: Pca) -> None:
    expected = pca.errors(np.array([[1.0, 2.0, 3.0]]))[0]
    far = pca.error({"x": 1e100, "y": 2.0, "z": 3.0})  # absurdly far, still representable: a value
    assert far is not None
    assert far == pytest.approx(pca.errors(np.array([[1e100, 2.0, 3.0]]))[0], rel=1e-9)
    assert pca.error({"x": 1, "y": 2.0, "z": 3.0}) == pytest.approx(expected, rel=1e-12)
    assert pca.error({"x": np.float32(1.0), "y": np.int64(2), "z": 3.0, "model": "m"}) == pytest.approx(
        expected
    )


def test_errors_gives_nan_for_rows_not_finite_and_refuses_a_wrong_shape(pca: Pca) -> None:
    rows = [[1.0, 2.0, 3.0], [math.nan, 2.0, 3.0], [1.0, math.inf, 3.0], [1e308, -1e308, 1e308]]
    errors = pca.errors(np.array(rows))  # and no overflow warning (warnings are errors in the tests)
    assert math.isfinite(errors[0])
    assert np.isnan(errors[1:]).all()
    with pytest.raises(ValueError, match=r"shape \(2, 4\), not \(n, 3\)"):
        pca.errors(np.zeros((2, 4)))


def test_fit_from_rows_counts_the_rows_it_cannot_use() -> None:
    reference = correlated_reference(np.random.default_rng(8), 1500, dim=4)
    names = names_for(4)
    rows: list[dict[str, object]] = [event(names, row) for row in reference]
    rows += [{"f0": 1.0}, {**rows[0], "f2": math.nan}, {**rows[1], "f3": False}, {**rows[2], "f1": "x"}]
    fit = fit_from_rows(rows, names)
    assert (fit.rows_used, fit.rows_skipped) == (1500, 4)
    mean, _, _, kept = svd_oracle(reference, 0.65)
    np.testing.assert_allclose(fit.pca.mean, mean, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(projection(np.array(fit.pca.components)), projection(kept), atol=1e-8)


# ------------------------------------------------------------------------------------------- documents


def test_pca_round_trips_through_json(pca: Pca) -> None:
    document = json.loads(json.dumps(pca.to_dict()))
    assert document["format"] == PCA_FORMAT
    again = Pca.from_dict(document)
    assert again == pca
    rows = np.random.default_rng(0).standard_normal((20, 3)) * 100
    assert np.array_equal(again.errors(rows), pca.errors(rows))


def test_pca_round_trip_keeps_the_constant_features() -> None:
    reference = np.column_stack([correlated_reference(np.random.default_rng(1), 300, dim=2), np.ones(300)])
    pca = Pca.fit(moments_of(reference), ("x", "y", "one"))
    assert Pca.from_dict(json.loads(json.dumps(pca.to_dict()))).constant == ("one",)


def valid_document() -> dict[str, object]:
    root = 1 / math.sqrt(2)
    return {
        "format": PCA_FORMAT,
        "names": ["x", "y"],
        "mean": [0.0, 1.0],
        "std": [1.0, 2.0],
        "components": [[root, root]],
        "explained_variance": 0.95,
        "reference_error_mean": 0.1,
        "reference_error_std": 0.14,
        "constant": [],
    }


def test_valid_document_is_valid() -> None:
    assert Pca.from_dict(valid_document()).names == ("x", "y")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "streamdrift.pca/2"}, "unknown format 'streamdrift.pca/2'"),
        ({"format": None}, "unknown format None"),
        ({"names": None}, "names must be a list of strings"),
        ({"names": ["x", 1]}, "names must be a list of strings"),
        ({"names": ["x", "x"]}, "distinct names"),
        ({"constant": ["x"]}, "fitted and constant"),
        ({"mean": [0.0]}, "2 names, 1 means, 2 sd"),
        ({"mean": [0.0, "1"]}, r"mean\[1\] must be a finite number"),
        ({"mean": [0.0, True]}, r"mean\[1\] must be a finite number"),
        ({"mean": [0.0, math.nan]}, r"mean\[1\] must be a finite number"),
        ({"std": [1.0, 0.0]}, "std of feature 'y' must be finite and > 0, got 0.0"),
        ({"std": [-1.0, 1.0]}, "std of feature 'x' must be finite and > 0"),
        ({"components": [[1.0, 0.0], [0.0, 1.0]]}, "need 1 <= k < 2 components, got 2"),
        ({"components": []}, "need 1 <= k < 2 components, got 0"),
        ({"components": [[1.0, 0.0, 0.0]]}, "every component must have 2 numbers"),
        ({"components": [[1.0, 1.0]]}, "orthonormal"),
        ({"components": "x"}, "components must be a list of rows"),
        ({"explained_variance": 0.0}, "explained_variance not in"),
        ({"explained_variance": 1.5}, "explained_variance not in"),
        ({"reference_error_std": -0.1}, "reference error std must be >= 0"),
        ({"reference_error_mean": 10**400}, "reference_error_mean must be a finite number"),
    ],
)
def test_pca_from_dict_refuses_a_malformed_document(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pca.from_dict({**valid_document(), **change})


def test_pca_from_dict_refuses_a_missing_field() -> None:
    document = valid_document()
    del document["std"]
    with pytest.raises(ValueError, match="std must be a list of numbers, got None"):
        Pca.from_dict(document)


# ----------------------------------------------------------------------------------- the rotation claim

PAIRS = ("a1", "a2", "b1", "b2")
FLIP = 3000  # events before the correlation flips
AFTER = 3000  # events after it
WITHIN = 2000  # the reconstruction detector must fire this soon after the flip


def correlated_pairs(rng: np.random.Generator, rows: int, rho: float) -> Floats:
    """Two pairs of N(0, 1) features, each pair with correlation rho: every marginal is N(0, 1), any rho."""
    z = rng.standard_normal((rows, 4))
    other = math.sqrt(1 - rho**2)
    return np.column_stack(
        [z[:, 0], rho * z[:, 0] + other * z[:, 1], z[:, 2], rho * z[:, 2] + other * z[:, 3]]
    )


def rotation_run(seed: int) -> tuple[list[tuple[int, str]], list[int]]:
    """(per-feature ADWIN detections, reconstruction-error ADWIN detections), as (event index, ...)."""
    rng = np.random.default_rng(seed)
    pca = Pca.fit(moments_of(correlated_pairs(rng, 5000, 0.9)), PAIRS)
    stream = np.vstack([correlated_pairs(rng, FLIP, 0.9), correlated_pairs(rng, AFTER, -0.9)])
    per_feature = {name: ADWIN() for name in PAIRS}
    reconstruction = ADWIN()
    feature_alarms: list[tuple[int, str]] = []
    reconstruction_alarms: list[int] = []
    for index, row in enumerate(stream):
        features = event(PAIRS, row)
        for name, detector in per_feature.items():
            detector.update(features[name])
            if detector.drift_detected:
                feature_alarms.append((index, name))
        error = pca.error(features)
        assert error is not None
        reconstruction.update(error)
        if reconstruction.drift_detected:
            reconstruction_alarms.append(index)
    return feature_alarms, reconstruction_alarms


def test_the_rotation_data_leave_every_marginal_unchanged() -> None:
    rng = np.random.default_rng(0)
    before, after = correlated_pairs(rng, 100_000, 0.9), correlated_pairs(rng, 100_000, -0.9)
    np.testing.assert_allclose(before.mean(axis=0), after.mean(axis=0), atol=0.02)
    np.testing.assert_allclose(before.std(axis=0), after.std(axis=0), atol=0.02)
    assert np.corrcoef(before[:, :2], rowvar=False)[0, 1] == pytest.approx(0.9, abs=0.01)
    assert np.corrcoef(after[:, :2], rowvar=False)[0, 1] == pytest.approx(-0.9, abs=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_correlation_flip_is_seen_by_reconstruction_and_by_no_feature(seed: int) -> None:
    feature_alarms, reconstruction_alarms = rotation_run(seed)
    assert feature_alarms == []
    assert reconstruction_alarms, "the reconstruction detector never fired"
    first = reconstruction_alarms[0]
    assert FLIP <= first < FLIP + WITHIN, f"first reconstruction alarm at event {first}"


def test_the_rotation_result_is_not_luck_of_the_seed() -> None:
    """Over 20 seeds the reconstruction detector fires after the flip, and never before it, every time. A
    per-feature ADWIN (default delta 0.002) on 6,000 stationary values may raise its own false alarm now and
    then (1 seed in 200 when this test was written: seed 8, feature a1, event 2879): at most 1 of 20 here."""
    seeds_with_a_feature_alarm = []
    for seed in range(20):
        feature_alarms, reconstruction_alarms = rotation_run(seed)
        assert reconstruction_alarms, f"seed {seed}: the reconstruction detector never fired"
        assert FLIP <= reconstruction_alarms[0] < FLIP + WITHIN, f"seed {seed}: {reconstruction_alarms[:3]}"
        if feature_alarms:
            seeds_with_a_feature_alarm.append(seed)
    assert len(seeds_with_a_feature_alarm) <= 1, seeds_with_a_feature_alarm
