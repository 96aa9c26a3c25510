"""A model's numeric features taken together in its reference profile: the moments its PCA is fitted from.

Per model the profile keeps the count, means and co-moments of its numeric features: those its first event
with at least two finite numbers holds, in name order, at most `MAX_FEATURES`. An event lacking one of them
as a finite number (absent, null, text, a bool, NaN) adds no row and is counted as `incomplete`: rows are
never imputed. The moments merge like the rest of the profile (profiles of two periods over the same
features). At config load each model `reference.multivariate` selects gets a PCA of its moments
(multivariate.py), whose reconstruction error is its `multivariate:reconstruction` signal.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from streamdrift.core.event import Scalar
from streamdrift.core.multivariate import CoMoments, Pca

# d features keep d*(d+1)/2 co-moments per model in the profile: 50 keeps a fleet's profile readable.
MAX_FEATURES: Final = 50
# Fewer rows than this and a model gets no PCA: a correlation matrix of a few events is noise.
MIN_ROWS: Final = 100


def _finite(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


@dataclass(slots=True)
class JointValues:
    """One model's numeric features together in the reference period."""

    names: tuple[str, ...] = ()
    moments: CoMoments | None = None
    incomplete: int = 0  # events without every one of `names` as a finite number

    def add(self, features: Mapping[str, Scalar]) -> None:
        moments = self.moments
        if moments is None:
            names = sorted(name for name, value in features.items() if _finite(value))[:MAX_FEATURES]
            if len(names) < 2:
                return  # nothing joint yet: the first event with two numbers fixes the features
            moments = CoMoments(len(names))
            self.names, self.moments = tuple(names), moments
        row = [features.get(name) for name in self.names]
        if not all(map(_finite, row)):
            self.incomplete += 1
            return
        moments.add(row)  # type: ignore[arg-type]  # every value checked to be an int or float

    def merge(self, other: JointValues) -> None:
        """Another period's: its moments when over the same features, else its rows count as incomplete."""
        if other.moments is None:
            self.incomplete += other.incomplete
        elif self.moments is None:
            self.names, self.moments = other.names, other.moments
            self.incomplete += other.incomplete
        elif other.names == self.names:
            self.moments.merge(other.moments)
            self.incomplete += other.incomplete
        else:
            self.incomplete += other.incomplete + other.moments.count

    def document(self) -> dict[str, Any] | None:
        if self.moments is None:
            return None
        return {
            "features": list(self.names),
            "incomplete": self.incomplete,
            "moments": self.moments.to_dict(),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any] | None) -> JointValues:
        if document is None:
            return cls()
        names = tuple(str(name) for name in document["features"])
        moments = CoMoments.from_dict(document["moments"])
        if len(moments.mean) != len(names):
            raise ValueError(f"joint moments of {len(moments.mean)} features for {len(names)} names")
        return cls(names=names, moments=moments, incomplete=int(document.get("incomplete") or 0))


def fit_profiled(
    models: Mapping[str, Mapping[str, Any]], selected: str, explained_variance: float
) -> dict[str, Pca]:
    """A PCA per profiled model matching `selected` with at least `MIN_ROWS` joint rows and two features
    that vary in them. A malformed document raises ValueError naming the model."""
    fitted: dict[str, Pca] = {}
    for model_id, document in models.items():
        if not fnmatch.fnmatchcase(model_id, selected):
            continue
        try:
            joint = JointValues.from_document(document.get("joint"))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"model {model_id!r}: joint moments unreadable ({error})") from None
        if joint.moments is None or joint.moments.count < MIN_ROWS:
            continue
        try:
            fitted[model_id] = Pca.fit(joint.moments, joint.names, explained_variance=explained_variance)
        except ValueError:
            continue  # fewer than two features that vary in its reference: nothing joint to watch
    return fitted
