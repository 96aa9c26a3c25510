"""Multivariate drift by PCA reconstruction error, one event at a time.

A change in how features move together (a correlation flips, an embedding rotates) can leave every marginal
unchanged, so per-feature detectors see nothing. NannyML's batch answer, made per event:
1. `CoMoments`: the reference's count, mean and co-moment matrix (Welford per row, Chan et al.'s merge).
2. `Pca.fit`: standardise with the reference's mean and sample std (ddof 1), so PCA is the eigendecomposition
   of the correlation matrix; keep the leading components until their cumulative share of variance reaches
   `explained_variance` (0.65 by default, as NannyML), at least 1 and at most d - 1 (else the error is 0).
3. `Pca.error`: an event's squared reconstruction error ||z - z Wᵀ W||², z standardised, W (k x d) the kept
   components; computed as ||V z||², V the orthonormal complement of W (equal; one product, no cancellation).
   A change in the joint distribution moves mass into the dropped directions and raises it.

Assumptions: numeric features only, an int or a float (numpy's too), never a bool, finite; an event with a
feature missing, not such a number or not finite yields no value (`None`): counted by the caller, not imputed.
A feature constant in the reference (std at most 1e-12 of |mean|) is dropped from the fit, named in
`Pca.constant`: standardising it would divide by zero, and it is in no correlation. The reference error's mean
and std are analytic, from the dropped components' eigenvalues λ: E||z - z Wᵀ W||² = Σ λ for standardised z
(any distribution); for Gaussian z the error is Σ λ χ²₁, of std sqrt(2 Σ λ²) (heavier tails: a larger std).
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Final, TypeGuard, cast

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Features = Mapping[str, object]  # one event's features by name
Pick = Callable[[Features], tuple[object, ...]]

PCA_FORMAT: Final = "streamdrift.pca/1"
COMOMENTS_FORMAT: Final = "streamdrift.comoments/1"
EXPLAINED_VARIANCE: Final = 0.65  # NannyML's default
_CONSTANT: Final = 1e-12  # a std at most this share of |mean| is rounding noise: the feature is constant
_PLAIN_NUMBERS: Final = frozenset({int, float, np.float64, np.int64})  # checked at C speed, before isinstance


def _is_number(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _vector(features: Features, pick: Pick, bound: float) -> Floats | None:
    """The features as floats; None if one is missing, not a real number, NaN, or the norm exceeds bound."""
    try:
        values = pick(features)  # one C-level lookup of every name
    except KeyError:
        return None
    if not _PLAIN_NUMBERS.issuperset(map(type, values)) and not all(map(_is_number, values)):
        return None
    try:  # the norm, one C call, bounds every |feature|; NaN and inf fail, an int beyond float range raises
        norm = math.hypot(*cast(tuple[float, ...], values))
    except OverflowError:
        return None
    return np.array(values, dtype=np.float64) if norm <= bound else None


class CoMoments:
    """Count, mean and co-moment matrix Σ (x - mean)(x - mean)ᵀ of a d-vector: streaming and mergeable."""

    __slots__ = ("comoment", "count", "mean")  # read them; only add, add_many and merge write them

    def __init__(self, dim: int) -> None:
        _require(dim >= 1, f"CoMoments needs a dimension of at least 1, got {dim}")
        self.count = 0
        self.mean: Floats = np.zeros(dim)
        self.comoment: Floats = np.zeros((dim, dim))

    def covariance(self) -> Floats:
        """The sample covariance (ddof 1)."""
        _require(self.count >= 2, f"a covariance needs at least 2 rows, got {self.count}")
        return self.comoment / (self.count - 1)

    def add(self, row: Sequence[float]) -> None:
        x = np.asarray(row, dtype=np.float64)
        self._check(x[np.newaxis], "row")  # a flat row of d numbers, and no other shape, is 2-D here
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        # outer(δ, δ)(n-1)/n equals outer(δ, x - new mean) and stays exactly symmetric.
        self.comoment += np.outer(delta, delta) * ((self.count - 1) / self.count)

    def add_many(self, matrix: npt.ArrayLike) -> None:
        """Add the rows of an (n, d) matrix: the batch's moments in numpy, then one pairwise merge."""
        rows = np.asarray(matrix, dtype=np.float64)
        self._check(rows, "matrix")
        if len(rows) > 0:
            centred = rows - rows.mean(axis=0)
            comoment = centred.T @ centred
            self._merge(len(rows), rows.mean(axis=0), (comoment + comoment.T) / 2)

    def merge(self, other: CoMoments) -> None:
        """Fold another accumulator of the same dimension into this one (Chan et al.)."""
        _require(len(other.mean) == len(self.mean), f"dimension {len(other.mean)} != {len(self.mean)}")
        self._merge(other.count, other.mean, other.comoment)

    def _merge(self, count: int, mean: Floats, comoment: Floats) -> None:
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.comoment = self.comoment + comoment + np.outer(delta, delta) * (self.count * count / total)
        self.mean = self.mean + delta * (count / total)
        self.count = total

    def _check(self, rows: Floats, what: str) -> None:
        if rows.ndim != 2 or rows.shape[1] != len(self.mean):
            raise ValueError(f"{what} of shape {rows.shape[1:]} is not a {len(self.mean)}-vector")
        if not np.isfinite(rows).all():
            raise ValueError(f"{what} has a value that is not finite")

    def to_dict(self) -> dict[str, object]:
        moments = {"count": self.count, "mean": self.mean.tolist(), "comoment": self.comoment.tolist()}
        return {"format": COMOMENTS_FORMAT, **moments}

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> CoMoments:
        _require(document.get("format") == COMOMENTS_FORMAT, f"unknown format {document.get('format')!r}")
        count, mean = document.get("count"), _numbers(document.get("mean"), "mean")
        if type(count) is not int or count < 0:  # a bool is no count
            raise ValueError(f"count must be a whole number >= 0, got {count!r}")
        comoment = _rows(document.get("comoment"), "comoment")
        _require({len(row) for row in comoment} | {len(comoment)} == {len(mean)}, "comoment must be d x d")
        moments = cls(len(mean))
        moments.count, moments.mean, moments.comoment = count, np.array(mean), np.array(comoment)
        return moments


@dataclass(frozen=True, slots=True)
class Pca:
    """A PCA of standardised reference features; `error` is one event's squared reconstruction error."""

    names: tuple[str, ...]  # the columns, in order
    mean: tuple[float, ...]
    std: tuple[float, ...]  # sample std (ddof 1), all > 0
    components: tuple[tuple[float, ...], ...]  # k x d, orthonormal rows, by decreasing eigenvalue
    explained_variance: float  # the share of the standardised variance the kept components explain
    reference_error_mean: float  # Σ dropped eigenvalues
    reference_error_std: float  # sqrt(2 Σ dropped eigenvalues²): Gaussian assumption
    constant: tuple[str, ...] = ()  # features dropped from the fit: constant in the reference
    _center: Floats = field(init=False, repr=False, compare=False)
    _residual: Floats = field(init=False, repr=False, compare=False)  # V / std: (d - k) x d
    _pick: Pick = field(init=False, repr=False, compare=False)
    _bound: float = field(init=False, repr=False, compare=False)  # a larger feature norm is refused

    def __post_init__(self) -> None:
        _validate(self)
        kept = np.array(self.components, dtype=np.float64)
        # The last d - k right singular vectors of W span its orthonormal complement V.
        residual = np.linalg.svd(kept, full_matrices=True)[2][len(kept) :] / np.array(self.std)
        object.__setattr__(self, "_center", np.array(self.mean, dtype=np.float64))
        object.__setattr__(self, "_residual", residual)
        # |V z|_i <= max row sum of |V / std| * max |x - mean|: below 1e150, the error cannot overflow.
        bound = 1e150 / float(np.abs(residual).sum(axis=1).max()) - max(map(abs, self.mean))
        object.__setattr__(self, "_bound", bound)
        object.__setattr__(self, "_pick", operator.itemgetter(*self.names))

    @classmethod
    def fit(
        cls, moments: CoMoments, names: Sequence[str], *, explained_variance: float = EXPLAINED_VARIANCE
    ) -> Pca:
        _require(len(names) == len(moments.mean), f"{len(names)} names for a {len(moments.mean)}-vector")
        _require(0 < explained_variance <= 1, f"explained_variance not in (0, 1]: {explained_variance}")
        covariance, mean = moments.covariance(), moments.mean
        std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        varying = std > _CONSTANT * np.abs(mean)
        keep, drop = np.flatnonzero(varying).tolist(), np.flatnonzero(~varying).tolist()
        _require(len(keep) >= 2, f"PCA needs at least 2 features that vary in the reference, got {len(keep)}")
        correlation = covariance[np.ix_(keep, keep)] / np.outer(std[keep], std[keep])
        eigenvalues, eigenvectors = np.linalg.eigh(correlation)  # symmetric: reads one triangle
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues = np.clip(eigenvalues[order], 0.0, None)
        # The smallest k whose cumulative share reaches the target (a hair of slack for rounding), in [1, d).
        shares = np.cumsum(eigenvalues) / eigenvalues.sum()
        count = min(max(int(np.searchsorted(shares, explained_variance - 1e-12)) + 1, 1), len(keep) - 1)
        components = eigenvectors[:, order[:count]].T
        dropped = eigenvalues[count:]
        return cls(
            names=tuple(names[i] for i in keep),
            mean=tuple(mean[keep].tolist()),
            std=tuple(std[keep].tolist()),
            components=tuple(tuple(row) for row in components.tolist()),
            explained_variance=float(eigenvalues[:count].sum() / eigenvalues.sum()),
            reference_error_mean=float(dropped.sum()),
            reference_error_std=math.sqrt(2.0 * float((dropped**2).sum())),
            constant=tuple(names[i] for i in drop),
        )

    def error(self, features: Mapping[str, object]) -> float | None:
        """The squared reconstruction error; None for a feature missing, not a number, NaN, inf or absurd."""
        vector = _vector(features, self._pick, self._bound)
        if vector is None:
            return None
        residual = self._residual @ (vector - self._center)
        return float(residual @ residual)  # finite: the bound keeps every |V z|_i below 1e150

    def errors(self, matrix: npt.ArrayLike) -> Floats:
        """Each row's squared reconstruction error ((n, d), columns in `names` order); NaN if not finite."""
        rows, dim = np.asarray(matrix, dtype=np.float64), len(self.names)
        _require(rows.ndim == 2 and rows.shape[1] == dim, f"shape {rows.shape}, not (n, {dim})")
        # An absurd row overflows: NaN below, as error() gives None, and no warning.
        with np.errstate(over="ignore", invalid="ignore"):
            residuals = (rows - self._center) @ self._residual.T
            errors: Floats = np.einsum("ij,ij->i", residuals, residuals)
        errors[~np.isfinite(errors)] = np.nan
        return errors

    def to_dict(self) -> dict[str, object]:
        values = {field.name: getattr(self, field.name) for field in fields(self) if field.init}
        plain = {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}
        return {"format": PCA_FORMAT, **plain, "components": [list(row) for row in self.components]}

    @classmethod
    def from_dict(cls, document: Mapping[str, object]) -> Pca:
        _require(document.get("format") == PCA_FORMAT, f"unknown format {document.get('format')!r}")
        return cls(
            names=_strings(document.get("names"), "names"),
            mean=_numbers(document.get("mean"), "mean"),
            std=_numbers(document.get("std"), "std"),
            components=_rows(document.get("components"), "components"),
            explained_variance=_number(document.get("explained_variance"), "explained_variance"),
            reference_error_mean=_number(document.get("reference_error_mean"), "reference_error_mean"),
            reference_error_std=_number(document.get("reference_error_std"), "reference_error_std"),
            constant=_strings(document.get("constant", []), "constant"),
        )


@dataclass(frozen=True, slots=True)
class ReferenceFit:  # a PCA fitted on reference rows, and how many rows it could use
    pca: Pca
    rows_used: int
    rows_skipped: int  # a feature missing, not a real number or not finite: counted, not imputed


def fit_from_rows(
    rows: Iterable[Features], names: Sequence[str], *, explained_variance: float = EXPLAINED_VARIANCE
) -> ReferenceFit:
    """Fit a PCA on reference events (feature mappings): rows gathered, then one vectorised add_many."""
    _require(len(names) >= 2, f"PCA needs at least 2 features, got {list(names)}")
    pick: Pick = operator.itemgetter(*names)  # a tuple per row, since there are at least 2 names
    vectors = [_vector(row, pick, sys.float_info.max) for row in rows]
    usable = [vector for vector in vectors if vector is not None]
    moments = CoMoments(len(names))
    moments.add_many(np.array(usable).reshape(len(usable), len(names)))
    pca = Pca.fit(moments, names, explained_variance=explained_variance)
    return ReferenceFit(pca=pca, rows_used=len(usable), rows_skipped=len(vectors) - len(usable))


def _validate(pca: Pca) -> None:
    size, names = len(pca.names), set(pca.names)
    _require(size >= 2 and len(names) == size, f"need at least 2 distinct names, got {list(pca.names)}")
    _require(not names & set(pca.constant), f"fitted and constant: {sorted(names & set(pca.constant))}")
    _require(len(pca.mean) == size == len(pca.std), f"{size} names, {len(pca.mean)} means, {len(pca.std)} sd")
    for name, std in zip(pca.names, pca.std, strict=True):
        _require(math.isfinite(std) and std > 0, f"std of feature {name!r} must be finite and > 0, got {std}")
    _require(all(map(math.isfinite, pca.mean)), "every mean must be finite")
    count = len(pca.components)
    _require(1 <= count < size, f"need 1 <= k < {size} components, got {count}")
    _require(all(len(row) == size for row in pca.components), f"every component must have {size} numbers")
    kept = np.array(pca.components, dtype=np.float64)
    _require(np.allclose(kept @ kept.T, np.eye(count), atol=1e-6), "components must be orthonormal")
    _require(0 < pca.explained_variance <= 1, f"explained_variance not in (0, 1]: {pca.explained_variance}")
    for what, value in (("mean", pca.reference_error_mean), ("std", pca.reference_error_std)):
        _require(math.isfinite(value) and value >= 0, f"reference error {what} must be >= 0, got {value}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _number(value: object, what: str) -> float:
    # NaN, inf and ints beyond float range fail the bounds (math.isfinite would raise on a huge int).
    if not _is_number(value) or not -sys.float_info.max <= value <= sys.float_info.max:
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _numbers(value: object, what: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what} must be a list of numbers, got {value!r:.40}")
    return tuple(_number(item, f"{what}[{i}]") for i, item in enumerate(value))


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{what} must be a list of strings, got {value!r:.40}")
    return tuple(value)


def _rows(value: object, what: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{what} must be a list of rows, got {value!r:.40}")
    return tuple(_numbers(row, f"{what}[{i}]") for i, row in enumerate(value))
