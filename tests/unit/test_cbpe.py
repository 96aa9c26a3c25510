"""CBPE (streamdrift/core/cbpe.py) against oracles that are not the code under test.

The data are synthetic with a KNOWN concept: x ~ N(mu, 1), P(y = 1 | x) = sigmoid(a·x + b), and the model's
score a monotone, mildly miscalibrated function of x (sigmoid(squash · (A·x + B)), with the reference's
A, B), predicted class score >= 0.5. Covariate shift moves mu; concept shift moves b of the labels only.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu

from streamdrift.core.cbpe import (
    METRICS,
    Calibration,
    CbpeReference,
    Estimate,
    estimate,
    estimate_with_bands,
    realized,
)

A, B = 1.5, 0.0  # the reference concept: P(y = 1 | x) = sigmoid(A·x + B)
WINDOW = 1000


@dataclass(frozen=True)
class Sample:
    scores: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def synthetic(rng: np.random.Generator, n: int, mu: float, *, b: float = B, squash: float = 0.7) -> Sample:
    """n events at input mean mu; labels from sigmoid(A·x + b), scores from the reference concept."""
    x = rng.normal(mu, 1.0, n)
    labels = (rng.random(n) < sigmoid(A * x + b)).astype(int)
    scores = sigmoid(squash * (A * x + B))  # the model learned the reference concept, under-confident
    return Sample(scores, labels, (scores >= 0.5).astype(int))


@dataclass(frozen=True)
class Closed:
    estimates: dict[str, Estimate]
    left_band: dict[str, bool]


def close_window(reference: CbpeReference, sample: Sample, seed: int) -> Closed:
    """A window's estimates and band checks, as the service's window makes them (core/performance.py)."""
    scores = sample.scores
    estimates = estimate_with_bands(reference.calibration(scores), sample.predictions, scores, seed)
    return Closed(estimates, {name: reference.bands[name].excludes(e.value) for name, e in estimates.items()})


def accuracy_band_hits(seeds: int, windows: tuple[tuple[float, float], ...]) -> tuple[int, int]:
    """(windows whose realized accuracy is inside the estimated 95% band, windows), for (mu, b) windows."""
    inside = total = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ref = synthetic(rng, 10 * WINDOW, 0.0)  # a separate labelled sample
        reference = CbpeReference.fit(ref.scores, ref.labels, window_events=WINDOW)
        for mu, b in windows:
            window = synthetic(rng, WINDOW, mu, b=b)
            accuracy = close_window(reference, window, seed).estimates["accuracy"]
            truth = float(np.mean(window.labels == window.predictions))  # counted here, not by cbpe
            inside += accuracy.low <= truth <= accuracy.high
            total += 1
    return inside, total


def test_realized_accuracy_is_inside_the_band_under_covariate_shift() -> None:
    """The inputs move, P(y | x) does not. The band is that of the realized accuracy GIVEN the calibrated
    probabilities: it leaves out the calibration's own error (a finite reference), so it covers a little
    less than 95% (about 93% here, with a 10,000-event reference)."""
    windows = tuple((mu, B) for mu in (-0.75, -0.25, 0.0, 0.5, 1.0, 1.5))
    inside, total = accuracy_band_hits(50, windows)
    print(f"covariate shift: realized accuracy inside the band in {inside}/{total} = {inside / total:.3f}")
    assert inside / total >= 0.90


def test_concept_shift_fools_the_estimate_as_documented() -> None:
    """The labels' b moves; x, and so the scores, do not: the estimate stays where it was, and is wrong."""
    inside, total = accuracy_band_hits(20, ((0.0, B + 1.5), (0.0, B - 1.5), (0.0, B + 1.5)))
    print(f"concept shift: realized accuracy inside the band in {inside}/{total} = {inside / total:.3f}")
    assert inside / total <= 0.10


# ---- the bands, where the probabilities are right by construction ----


def test_bands_cover_labels_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(7)
    hits = dict.fromkeys(METRICS, 0)
    windows = 200
    for seed in range(windows):
        scores = rng.random(500)
        p = scores**2  # any monotone map: the labels are drawn from p itself
        predictions = scores >= 0.6
        estimates = estimate_with_bands(p, predictions, scores, seed)
        truth = realized(rng.random(500) < p, predictions, scores)
        for name in METRICS:
            hits[name] += estimates[name].low <= truth[name] <= estimates[name].high
    coverage = {name: hits[name] / windows for name in METRICS}
    print(f"coverage with correct probabilities: {coverage}")
    assert all(0.90 <= c <= 0.995 for c in coverage.values()), coverage


def test_bands_are_reproducible_from_the_seed() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(300)
    first = estimate_with_bands(scores, scores >= 0.5, scores, seed=11)
    assert first == estimate_with_bands(scores, scores >= 0.5, scores, seed=11)
    assert first != estimate_with_bands(scores, scores >= 0.5, scores, seed=12)
    assert first["accuracy"] == estimate_with_bands(scores, scores >= 0.5, scores, seed=12)["accuracy"]


# ---- estimate: expectations by enumerating every labelling of a small window ----


def enumerated_expectations(p: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    expected = dict.fromkeys(("tp", "fp", "fn", "tn"), 0.0)
    for labels in itertools.product((0, 1), repeat=p.size):
        y = np.array(labels, dtype=bool)
        weight = float(np.prod(np.where(y, p, 1 - p)))
        expected["tp"] += weight * np.sum(y & predicted)
        expected["fp"] += weight * np.sum(~y & predicted)
        expected["fn"] += weight * np.sum(y & ~predicted)
        expected["tn"] += weight * np.sum(~y & ~predicted)
    return expected


def pairwise_expected_auc(p: np.ndarray, scores: np.ndarray) -> float:
    """Σ over pairs (i positive, j negative) of P · [s_i > s_j] + ½ [s_i = s_j], over E[#pos] · E[#neg]."""
    total = 0.0
    for i in range(p.size):
        for j in range(p.size):
            order = 1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0
            total += p[i] * (1 - p[j]) * order
    return total / (p.sum() * (1 - p).sum())


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_estimate_is_the_expected_confusion_matrix(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 8))
    p = np.array(data.draw(st.lists(st.floats(0.01, 0.99), min_size=n, max_size=n)))
    scores = np.round(np.array(data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))), 1)  # ties
    predicted = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    e = enumerated_expectations(p, predicted)
    got = estimate(p, predicted, scores)
    assert got["accuracy"] == pytest.approx((e["tp"] + e["tn"]) / n)
    assert got["recall"] == pytest.approx(e["tp"] / (e["tp"] + e["fn"]))
    assert got["f1"] == pytest.approx(2 * e["tp"] / (2 * e["tp"] + e["fp"] + e["fn"]))
    if predicted.any():
        assert got["precision"] == pytest.approx(e["tp"] / (e["tp"] + e["fp"]))
    else:
        assert math.isnan(got["precision"])
    assert got["roc_auc"] == pytest.approx(pairwise_expected_auc(p, scores))


# ---- realized: scipy's Mann-Whitney U and counting ----


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_realized_matches_counting_and_mann_whitney(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40))
    labels = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    predicted = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    scores = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=float)  # ties
    got = realized(labels.astype(int), predicted.astype(int), scores)
    tp, fp = int(np.sum(labels & predicted)), int(np.sum(~labels & predicted))
    fn, tn = int(np.sum(labels & ~predicted)), int(np.sum(~labels & ~predicted))
    assert got["accuracy"] == pytest.approx((tp + tn) / n)
    assert got["precision"] == pytest.approx(tp / (tp + fp)) if tp + fp else math.isnan(got["precision"])
    assert got["recall"] == pytest.approx(tp / (tp + fn)) if tp + fn else math.isnan(got["recall"])
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else math.isnan(got["f1"])
    positives, negatives = scores[labels], scores[~labels]
    if positives.size and negatives.size:
        u = mannwhitneyu(positives, negatives, alternative="two-sided").statistic
        assert got["roc_auc"] == pytest.approx(u / (positives.size * negatives.size))
    else:
        assert math.isnan(got["roc_auc"])


def test_undefined_metrics_are_nan() -> None:
    scores = np.array([0.1, 0.2, 0.3])
    none_predicted = estimate(scores, [0, 0, 0], scores)
    assert math.isnan(none_predicted["precision"]) and not math.isnan(none_predicted["recall"])
    certain_negatives = estimate([0.0, 0.0, 0.0], [1, 0, 1], scores)
    assert math.isnan(certain_negatives["recall"]) and math.isnan(certain_negatives["roc_auc"])
    one_class = realized([1, 1, 1], [1, 0, 1], scores)
    assert math.isnan(one_class["roc_auc"]) and one_class["recall"] == pytest.approx(2 / 3)


def test_multiclass_is_refused() -> None:
    with pytest.raises(ValueError, match="binary"):
        realized([0, 1, 2], [0, 1, 1], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="binary"):
        Calibration.fit([0.1, 0.5, 0.9], [0, 1, 2])


# ---- calibration: a brute-force isotonic fit ----


def brute_force_isotonic(scores: list[float], labels: list[int]) -> tuple[list[float], list[float]]:
    """Ties pooled, then the min-max formula: fit_i = max_{j<=i} min_{k>=i} weighted mean(y_j..y_k)."""
    xs = sorted(set(scores))
    weights = [sum(1 for s in scores if s == x) for x in xs]
    sums = [sum(y for s, y in zip(scores, labels, strict=True) if s == x) for x in xs]

    def mean(j: int, k: int) -> float:
        return sum(sums[j : k + 1]) / sum(weights[j : k + 1])

    n = len(xs)
    fitted = [max(min(mean(j, k) for k in range(i, n)) for j in range(i + 1)) for i in range(n)]
    return xs, fitted


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 1)), min_size=1, max_size=25))
def test_calibration_is_the_isotonic_fit(events: list[tuple[int, int]]) -> None:
    scores, labels = [s / 12 for s, _ in events], [y for _, y in events]
    xs, fitted = brute_force_isotonic(scores, labels)
    calibration = Calibration.fit(scores, labels)
    assert calibration(xs) == pytest.approx(fitted, abs=1e-12)
    # Clipped past the ends, linear between neighbours (scikit-learn's out_of_bounds="clip").
    assert calibration([xs[0] - 1, xs[-1] + 1]) == pytest.approx([fitted[0], fitted[-1]], abs=1e-12)
    for i in range(len(xs) - 1):
        middle = (xs[i] + xs[i + 1]) / 2
        assert calibration([middle])[0] == pytest.approx((fitted[i] + fitted[i + 1]) / 2, abs=1e-12)
    assert Calibration.from_dict(json.loads(json.dumps(calibration.to_dict()))) == calibration


# ---- the reference ----


def test_reference_bands_are_three_deviations_of_a_windows_estimate() -> None:
    """A window of W events drawn from the reference has an accuracy estimate that is the mean of W draws of
    q (each event's probability of being right): its standard deviation is std(q) / sqrt(W)."""
    sample = synthetic(np.random.default_rng(5), 4 * WINDOW + 123, 0.0)
    reference = CbpeReference.fit(sample.scores, sample.labels, window_events=WINDOW)
    assert reference.threshold == 0.5
    p = reference.calibration(sample.scores)
    q = np.where(sample.predictions == 1, p, 1 - p)
    sigma = q.std() / np.sqrt(WINDOW)
    band = reference.bands["accuracy"]
    assert (band.low + band.high) / 2 == pytest.approx(q.mean(), abs=0.5 * sigma)
    assert (band.high - band.low) / 2 == pytest.approx(3 * sigma, rel=0.25)
    assert band.excludes(band.high + 1e-9) and not band.excludes(q.mean())


def test_a_reference_needs_two_windows() -> None:
    sample = synthetic(np.random.default_rng(5), WINDOW + 999, 0.0)
    with pytest.raises(ValueError, match="at least 2 windows"):
        CbpeReference.fit(sample.scores, sample.labels, window_events=WINDOW)


def reference_fixture(predictions: bool = False) -> CbpeReference:
    sample = synthetic(np.random.default_rng(9), 10 * 500, 0.0)  # 10 windows: bands that mean something
    given_predictions = sample.predictions if predictions else None
    return CbpeReference.fit(sample.scores, sample.labels, given_predictions, window_events=500)


def test_reference_round_trips_through_json() -> None:
    for reference in (reference_fixture(), reference_fixture(predictions=True)):
        document = json.loads(json.dumps(reference.to_dict(), allow_nan=False))
        assert CbpeReference.from_dict(document) == reference
    assert reference_fixture(predictions=True).threshold is None


def test_an_undefined_reference_band_is_null_in_json() -> None:
    sample = synthetic(np.random.default_rng(2), 1000, 0.0)
    reference = CbpeReference.fit(sample.scores, sample.labels, np.zeros(1000), window_events=500)
    document = json.loads(json.dumps(reference.to_dict(), allow_nan=False))
    assert document["bands"]["precision"] == {"low": None, "high": None}
    restored = CbpeReference.from_dict(document).bands["precision"]
    assert math.isnan(restored.low) and not restored.excludes(0.5)


def broken(change: Callable[[dict], None]) -> dict:
    document = json.loads(json.dumps(reference_fixture().to_dict()))
    change(document)
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be an object, got list"),
        (broken(lambda d: d.update(format="other")), "format 'other' version 1 is not"),
        (broken(lambda d: d.update(version=2)), "version 2 is not"),
        (broken(lambda d: d.pop("bands")), "keys must be"),
        (broken(lambda d: d.update(extra=1)), "keys must be"),
        (broken(lambda d: d.update(threshold="0.5")), "'threshold' must be a number or null"),
        (broken(lambda d: d.update(window_events=0)), "'window_events' must be an int >= 1"),
        (broken(lambda d: d.update(window_events=True)), "'window_events' must be an int >= 1"),
        (broken(lambda d: d.update(window_events=2.5)), "'window_events' must be an int >= 1"),
        (broken(lambda d: d.update(calibration={"scores": [0.1]})), "exactly 'scores' and 'probabilities'"),
        (broken(lambda d: d["calibration"].update(scores="x")), "calibration: 'scores' must be a list"),
        (broken(lambda d: d["calibration"]["scores"].reverse()), "scores must rise"),
        (broken(lambda d: d["calibration"]["probabilities"].pop()), "scores must rise"),
        (broken(lambda d: d["calibration"]["probabilities"].__setitem__(-1, 1.5)), "within \\[0, 1\\]"),
        (broken(lambda d: d["bands"].pop("f1")), "exactly the metrics"),
        (broken(lambda d: d["bands"].update(f1=[0, 1])), "band 'f1' must be an object"),
        (broken(lambda d: d["bands"]["f1"].update(low="a")), "band 'f1': ends must be numbers or null"),
        (broken(lambda d: d["bands"]["f1"].update(low=0.9, high=0.1)), "band 'f1' needs 0 <= low <= high"),
        (broken(lambda d: d["bands"]["f1"].update(low=None)), "band 'f1' needs 0 <= low <= high"),
    ],
)
def test_malformed_references_are_refused_precisely(document: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CbpeReference.from_dict(document)


# ---- the window ----


def test_window_leaves_the_band_under_strong_covariate_shift() -> None:
    reference = reference_fixture()
    closed = close_window(reference, synthetic(np.random.default_rng(8), 500, 2.5), seed=1)
    assert closed.left_band["accuracy"] and closed.left_band["recall"]
    calm = close_window(reference, synthetic(np.random.default_rng(8), 500, 0.0), seed=1)
    assert not any(calm.left_band.values())
