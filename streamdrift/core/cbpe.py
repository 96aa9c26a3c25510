"""Confidence-based performance estimation (CBPE): a binary classifier's metrics before its labels arrive.

An isotonic map fitted on a labelled reference turns the model's score into p = P(y = 1 | score). With the
predicted class ŷ, a window's expected confusion matrix is TP = Σ_{ŷ=1} p, FP = Σ_{ŷ=1} (1 - p),
FN = Σ_{ŷ=0} p, TN = Σ_{ŷ=0} (1 - p), whence the expected accuracy, precision, recall and F1; the expected
ROC AUC is the area under cumsum(p) / Σp against cumsum(1 - p) / Σ(1 - p), scores sorted highest first.

Assumptions, and what breaks without them:
- **Calibrated on the reference**: the map is only as good as its labelled sample of the same model, and
  the bands below leave its error out (so they cover a little less than 95%).
- **No concept shift**: P(y | x) must stay as in the reference. Under covariate shift (the inputs move,
  P(y | x) does not) the estimate follows the real performance. Under concept shift (the same inputs now
  mean other labels) the scores, and so the estimate, do not move: it is wrong, and silent. Only the
  realized metrics, once the labels arrive, can show it.
- **Binary classification only**: labels and predictions are 0/1 or bool; multiclass is not supported.

Each estimate carries a 95% band of the realized metric given p: for accuracy the normal approximation of
a sum of independent Bernoulli(q_i), q_i = p_i if ŷ_i = 1 else 1 - p_i; for the others the 2.5/97.5
percentiles of the metric over labels drawn y ~ Bernoulli(p), seeded by the caller so replays reproduce
them. Apart from that, the reference gives each metric a band of its *estimate*, the mean ± 3 standard
deviations over `BAND_WINDOWS` windows drawn from it with replacement, clipped to [0, 1]: an estimate outside
it is the alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeGuard

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike
from scipy.optimize import isotonic_regression
from scipy.stats import rankdata

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

METRICS: Final = ("accuracy", "precision", "recall", "f1", "roc_auc")
Z_95: Final = 1.96
MONTE_CARLO_DRAWS: Final = 200
REFERENCE_STDS: Final = 3.0  # the reference band of an estimate: mean ± this many standard deviations
BAND_WINDOWS: Final = 100  # windows drawn from the reference for that band (Monte-Carlo error of its std ~7%)
BAND_SEED: Final = 0  # drawn the same way every time: a profile built twice is the same profile
DRAWN_VALUES_PER_BATCH: Final = 2_000_000  # bounds the memory of the Monte-Carlo labels of a large window
REFERENCE_FORMAT: Final = "streamdrift.cbpe-reference"
VERSION: Final = 1


def _divide(numerator: Floats, denominator: Floats) -> Floats:
    """numerator / denominator, NaN where the denominator is not positive (the metric is undefined)."""
    out: Floats = np.full(np.shape(numerator), math.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _scores(values: ArrayLike, what: str) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{what} must be a 1-d array of finite numbers")
    return array


def _binary(values: ArrayLike, what: str) -> Bools:
    array = np.asarray(values)
    if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{what} must be 0/1 or bool: binary classification only, no multiclass")
    return array.astype(np.bool_)


def _is_finite_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Score -> P(y = 1 | score), isotonic: linear between breakpoints and constant past the ends, as
    scikit-learn's IsotonicRegression(out_of_bounds="clip"): tied scores pooled, then PAVA."""

    scores: tuple[float, ...]  # strictly increasing breakpoints
    probabilities: tuple[float, ...]  # non-decreasing, in [0, 1]

    def __post_init__(self) -> None:
        x, y = np.asarray(self.scores, dtype=np.float64), np.asarray(self.probabilities, dtype=np.float64)
        increasing = x.size > 0 and x.shape == y.shape and (np.diff(x) > 0).all() and (np.diff(y) >= 0).all()
        if not (increasing and np.isfinite(x).all() and y[0] >= 0 and y[-1] <= 1):
            raise ValueError("calibration: scores must rise and probabilities not fall, within [0, 1]")

    @classmethod
    def fit(cls, scores: ArrayLike, labels: ArrayLike) -> Calibration:
        x, y = _scores(scores, "reference scores"), _binary(labels, "reference labels")
        if x.size == 0 or x.shape != y.shape:
            raise ValueError("calibration: scores and labels must be equally long and not empty")
        unique, inverse = np.unique(x, return_inverse=True)
        counts = np.bincount(inverse).astype(np.float64)
        positives = np.bincount(inverse, weights=y.astype(np.float64))
        fitted = np.clip(isotonic_regression(positives / counts, weights=counts).x, 0.0, 1.0)
        # Inside a constant run only its two ends matter to the interpolation.
        keep = np.ones(fitted.size, dtype=np.bool_)
        keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        return cls(tuple(unique[keep].tolist()), tuple(fitted[keep].tolist()))

    def __call__(self, scores: ArrayLike) -> Floats:
        x, y = np.asarray(self.scores, dtype=np.float64), np.asarray(self.probabilities, dtype=np.float64)
        return np.interp(np.asarray(scores, dtype=np.float64), x, y)

    def to_dict(self) -> dict[str, object]:
        return {"scores": list(self.scores), "probabilities": list(self.probabilities)}

    @classmethod
    def from_dict(cls, document: object) -> Calibration:
        if not isinstance(document, Mapping) or set(document) != {"scores", "probabilities"}:
            raise ValueError("calibration: must be an object with exactly 'scores' and 'probabilities'")
        scores = _numbers(document["scores"], "calibration: 'scores'")
        return cls(scores, _numbers(document["probabilities"], "calibration: 'probabilities'"))


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimated metric and the 95% band of the realized metric around it (NaN when undefined)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Band:
    """The reference band of a metric's estimate; NaN ends when the metric was undefined on the reference."""

    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """Whether `value` left the band; an undefined value or band leaves nothing."""
        return value < self.low or value > self.high


def _window(x: ArrayLike, predictions: ArrayLike, s: ArrayLike, what: str) -> tuple[Floats, Bools, Floats]:
    """A window's probabilities (or labels: `what`), predicted classes and scores, checked."""
    values, predicted, scores = _scores(x, what), _binary(predictions, "predictions"), _scores(s, "scores")
    if not values.shape == predicted.shape == scores.shape:
        raise ValueError(f"a window's {what}, predictions and scores must be equally long")
    return values, predicted, scores


def _count_metrics(
    tp: Floats, predicted_positives: Floats, positives: Floats, events: int
) -> dict[str, Floats]:
    """accuracy, precision, recall and F1 from (expected or realized) counts, one entry per labelling."""
    fp, fn = predicted_positives - tp, positives - tp
    tn = events - predicted_positives - fn
    return {
        "accuracy": _divide(tp + tn, np.full_like(tp, events)),
        "precision": _divide(tp, predicted_positives),
        "recall": _divide(tp, positives),
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
    }


def _expected_roc_auc(probabilities: Floats, scores: Floats) -> float:
    order = np.argsort(-scores, kind="stable")
    # Tied scores cannot be ordered, so the curve takes each group of ties in one step.
    group_ends = np.append(np.diff(scores[order]) != 0, True)
    tps = np.concatenate(([0.0], np.cumsum(probabilities[order])[group_ends]))
    fps = np.concatenate(([0.0], np.cumsum(1.0 - probabilities[order])[group_ends]))
    if tps[-1] <= 0 or fps[-1] <= 0:
        return math.nan
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))  # the trapezoid rule


def estimate(probabilities: ArrayLike, predictions: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """The expected metrics of one window: calibrated probabilities, predicted classes, raw scores."""
    p, predicted, s = _window(probabilities, predictions, scores, "probabilities")
    tp = np.array([p[predicted].sum()])
    expected = _count_metrics(tp, np.array([float(predicted.sum())]), np.array([p.sum()]), p.size)
    return {name: float(v[0]) for name, v in expected.items()} | {"roc_auc": _expected_roc_auc(p, s)}


def _labelled_metrics(labels: Bools, predicted: Bools, ranks: Floats) -> dict[str, Floats]:
    """The realized metrics of each row of `labels` (one labelling of the window per row)."""
    positives = labels.sum(axis=1).astype(np.float64)
    true_positives = labels[:, predicted].sum(axis=1).astype(np.float64)
    predicted_positives = np.full_like(positives, float(predicted.sum()))
    metrics = _count_metrics(true_positives, predicted_positives, positives, predicted.size)
    # Mann-Whitney's U from the positives' rank sum, ties at their average rank; AUC = U / (n1 · n0).
    u = labels.astype(np.float64) @ ranks - positives * (positives + 1) / 2
    return metrics | {"roc_auc": _divide(u, positives * (predicted.size - positives))}


def realized(labels: ArrayLike, predictions: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """The realized metrics of a window with its true labels (NaN where undefined)."""
    y, predicted, s = _window(labels, predictions, scores, "labels")
    metrics = _labelled_metrics(_binary(y, "labels")[np.newaxis, :], predicted, rankdata(s))
    return {name: float(values[0]) for name, values in metrics.items()}


def _percentile_band(values: Floats) -> tuple[float, float]:
    if np.isnan(values).all():
        return math.nan, math.nan
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def _monte_carlo_bands(p: Floats, predicted: Bools, s: Floats, seed: int) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    ranks = rankdata(s)
    per_batch = max(1, DRAWN_VALUES_PER_BATCH // max(1, p.size))
    batches: list[dict[str, Floats]] = []
    for start in range(0, MONTE_CARLO_DRAWS, per_batch):
        labels = rng.random((min(per_batch, MONTE_CARLO_DRAWS - start), p.size)) < p  # y ~ Bernoulli(p)
        batches.append(_labelled_metrics(labels, predicted, ranks))
    return {name: _percentile_band(np.concatenate([b[name] for b in batches])) for name in METRICS}


def _accuracy_band(p: Floats, predicted: Bools) -> tuple[float, float]:
    correct = np.where(predicted, p, 1.0 - p)  # P(event i is classified right): the events are independent
    half_width = Z_95 * math.sqrt(float(np.sum(correct * (1.0 - correct)))) / correct.size
    center = float(correct.mean())
    return max(0.0, center - half_width), min(1.0, center + half_width)


def estimate_with_bands(
    probabilities: ArrayLike, predictions: ArrayLike, scores: ArrayLike, seed: int
) -> dict[str, Estimate]:
    """`estimate` with the 95% band of each realized metric; the same seed gives the same bands."""
    p, predicted, s = _window(probabilities, predictions, scores, "probabilities")
    if p.size == 0:
        raise ValueError("an empty window has no estimate")
    values = estimate(p, predicted, s)
    bands = _monte_carlo_bands(p, predicted, s, seed) | {"accuracy": _accuracy_band(p, predicted)}
    return {name: Estimate(values[name], *bands[name]) for name in METRICS}


def _reference_band(estimates: Floats) -> Band:
    if np.isnan(estimates).all():
        return Band(math.nan, math.nan)
    mean, std = float(np.nanmean(estimates)), float(np.nanstd(estimates))
    return Band(max(0.0, mean - REFERENCE_STDS * std), min(1.0, mean + REFERENCE_STDS * std))


@dataclass(frozen=True, slots=True, kw_only=True)
class CbpeReference:
    """What CBPE keeps of a labelled reference: the calibration and each metric's band of its estimate."""

    calibration: Calibration
    threshold: float | None  # predictions are score >= threshold; None: each event carries its class
    window_events: int
    bands: Mapping[str, Band]

    @classmethod
    def fit(
        cls,
        scores: ArrayLike,
        labels: ArrayLike,
        predictions: ArrayLike | None = None,
        *,
        threshold: float = 0.5,
        window_events: int,
    ) -> CbpeReference:
        """Fit on a labelled reference; without `predictions` they are `score >= threshold`."""
        s = _scores(scores, "reference scores")
        predicted = s >= threshold if predictions is None else _binary(predictions, "reference predictions")
        windows = s.size // window_events if window_events > 0 else 0
        if windows < 2 or predicted.shape != s.shape:
            raise ValueError(
                f"the reference needs a prediction for each of its {s.size} scores and at least 2 windows "
                f"of {window_events} events (a positive number) for the bands of the estimates"
            )
        calibration = Calibration.fit(s, labels)
        p = calibration(s)
        # Windows drawn from the reference with replacement: the spread of a window's estimate under the
        # reference's distribution, as steady with a short reference as a long one (its few consecutive
        # windows would give a standard deviation too noisy for a 3-sigma band).
        draws = np.random.default_rng(BAND_SEED).integers(0, s.size, size=(BAND_WINDOWS, window_events))
        estimates = [estimate(p[take], predicted[take], s[take]) for take in draws]
        bands = {name: _reference_band(np.array([e[name] for e in estimates])) for name in METRICS}
        kept = float(threshold) if predictions is None else None
        return cls(calibration=calibration, threshold=kept, window_events=window_events, bands=bands)

    def to_dict(self) -> dict[str, object]:
        bands = {n: {"low": _json_float(b.low), "high": _json_float(b.high)} for n, b in self.bands.items()}
        fields = {"calibration": self.calibration.to_dict(), "threshold": self.threshold, "bands": bands}
        return {"format": REFERENCE_FORMAT, "version": VERSION, "window_events": self.window_events, **fields}

    @classmethod
    def from_dict(cls, document: object) -> CbpeReference:
        keys = {"format", "version", "calibration", "threshold", "window_events", "bands"}
        fields = _checked_header(document, REFERENCE_FORMAT, keys, "cbpe reference")
        threshold, window_events = fields["threshold"], fields["window_events"]
        if threshold is not None and not _is_finite_number(threshold):
            raise ValueError(f"cbpe reference: 'threshold' must be a number or null, got {threshold!r}")
        if not isinstance(window_events, int) or isinstance(window_events, bool) or window_events < 1:
            raise ValueError(f"cbpe reference: 'window_events' must be an int >= 1, got {window_events!r}")
        calibration, bands = Calibration.from_dict(fields["calibration"]), _bands_from(fields["bands"])
        kept = None if threshold is None else float(threshold)
        return cls(calibration=calibration, threshold=kept, window_events=window_events, bands=bands)


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value  # JSON has no NaN


def _numbers(values: object, where: str) -> tuple[float, ...]:
    if not isinstance(values, list) or not all(_is_finite_number(v) for v in values):
        raise ValueError(f"{where} must be a list of finite numbers")
    return tuple(float(v) for v in values)


def _checked_header(document: object, kind: str, keys: set[str], where: str) -> Mapping[str, object]:
    if not isinstance(document, Mapping):
        raise ValueError(f"{where}: must be an object, got {type(document).__name__}")
    if document.get("format") != kind or document.get("version") != VERSION:
        found = f"format {document.get('format')!r} version {document.get('version')!r}"
        raise ValueError(f"{where}: {found} is not {kind!r} version {VERSION}")
    if set(document) != keys:
        raise ValueError(f"{where}: keys must be {sorted(keys)}, got {sorted(map(str, document))}")
    return document


def _band_end(value: object, where: str) -> float:
    if value is None:
        return math.nan  # the metric was undefined on every reference window
    if not _is_finite_number(value):
        raise ValueError(f"{where}: ends must be numbers or null, got {value!r}")
    return float(value)


def _bands_from(document: object) -> dict[str, Band]:
    if not isinstance(document, Mapping) or set(document) != set(METRICS):
        raise ValueError(f"cbpe reference: 'bands' must have exactly the metrics {list(METRICS)}")
    bands: dict[str, Band] = {}
    for name in METRICS:
        band = document[name]
        if not isinstance(band, Mapping) or set(band) != {"low", "high"}:
            raise ValueError(f"cbpe reference: band {name!r} must be an object with 'low' and 'high'")
        low, high = (_band_end(band[end], f"cbpe reference: band {name!r}") for end in ("low", "high"))
        if math.isnan(low) != math.isnan(high) or low > high or low < 0 or high > 1:
            raise ValueError(f"cbpe reference: band {name!r} needs 0 <= low <= high <= 1, got {dict(band)!r}")
        bands[name] = Band(low, high)
    return bands
