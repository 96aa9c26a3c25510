"""Reference profiles: what each model's signals looked like in a known-good period (the training set, a good
week), for live windows to be compared with (divergence.py).

Per model and signal (`feature:<name>`, `prediction`, `score`): for a numeric signal its quantile bin edges
with their counts, mean, standard deviation, least and greatest value, and a KLL quantile sketch (Apache
DataSketches) from which the edges come, so that profiles of two periods merge as if built from both; for a
categorical one the counts of its `top_k` most frequent values plus `other`; for both the values that were
missing (null or absent) and of the other type (a string in a numeric feature). A signal's type is settled by
its first non-null value, as in the service. Per model also the moments of its numeric features together
(joint.py), for a PCA. The JSON format is documented in docs/REFERENCE.md.

Bin counts come from the sketch: each within its rank error of the exact count (`SKETCH_K` = 200: about
1.3% of the values, DataSketches' figure at 99% confidence). Merged categorical counts are exact for the
values in both profiles' top-k; a value in one profile's `other` stays there.
"""

from __future__ import annotations

import base64
import fnmatch
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import datasketches

from streamdrift.core.autocorrelation import LagOne
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.joint import JointValues

FORMAT: Final = "streamdrift.profile"
VERSION: Final = 1
SKETCH_K: Final = 200
DEFAULT_BINS: Final = 10
DEFAULT_TOP_K: Final = 20
NUMERIC, CATEGORICAL = "numeric", "categorical"
OTHER: Final = "\x00other"  # a merged profile's values outside its top-k: kept apart from every real value


class ProfileError(ValueError):
    """A profile document that is not one this version reads."""


def category_of(value: Scalar) -> str | None:
    """A value as a category (as profiles key them): a string, or a boolean's name; None otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else None


def _number(value: Scalar) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(slots=True)
class NumericValues:
    """A numeric signal's values: a mergeable quantile sketch, and the moments (Chan et al.'s merge)."""

    sketch: Any = field(default_factory=lambda: datasketches.kll_doubles_sketch(SKETCH_K))
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    lag: LagOne = field(default_factory=LagOne)  # consecutive values, for the false-alarm budget

    def add(self, value: float) -> None:
        self.sketch.update(value)
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)
        self.lag.add(value)

    def merge(self, other: NumericValues) -> None:
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.mean += delta * other.count / total
        self.count = total
        self.sketch.merge(other.sketch)
        self.lag.merge(other.lag)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    def autocorrelation(self) -> float | None:
        return self.lag.autocorrelation(self.std**2)

    def edges(self, bins: int) -> list[float]:
        """The interior edges of `bins` bins of about equal mass; repeated quantiles (a value that fills more
        than one bin) give fewer bins."""
        if self.count == 0:
            return []
        quantiles = self.sketch.get_quantiles([i / bins for i in range(1, bins)])
        return sorted({float(q) for q in quantiles})

    def counts(self, edges: list[float]) -> list[int]:
        """Counts in (-inf, e1], (e1, e2], …, (ek, inf), from the sketch's ranks, summing to `count`."""
        if not edges:
            return [self.count]
        ranks = [0.0, *(self.sketch.get_rank(edge, True) for edge in edges), 1.0]  # inclusive: value <= edge
        cumulative = [round(rank * self.count) for rank in ranks]
        return [high - low for low, high in itertools.pairwise(cumulative)]

    def document(self, bins: int) -> dict[str, Any]:
        edges = self.edges(bins)
        return {
            "count": self.count, "mean": self.mean, "std": self.std,
            "min": float(self.sketch.get_min_value()) if self.count else None,
            "max": float(self.sketch.get_max_value()) if self.count else None,
            "edges": edges, "counts": self.counts(edges),
            "sketch": base64.b64encode(self.sketch.serialize()).decode(),
            "autocorrelation": self.autocorrelation(), "lag1": self.lag.document(),
        }  # fmt: skip

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> NumericValues:
        count = int(document["count"])
        std = float(document["std"])
        sketch = datasketches.kll_doubles_sketch.deserialize(base64.b64decode(document["sketch"]))
        if sketch.n != count:
            raise ProfileError(f"a sketch of {sketch.n} values for a count of {count}")
        return cls(
            sketch=sketch,
            count=count,
            mean=float(document["mean"]),
            m2=std * std * max(count - 1, 0),
            lag=LagOne.from_document(document.get("lag1")),
        )


@dataclass(slots=True)
class SignalValues:
    """One signal of one model in the reference period."""

    kind: str
    numeric: NumericValues = field(default_factory=NumericValues)
    categories: Counter[str] = field(default_factory=Counter)
    type_mismatch: int = 0

    @property
    def count(self) -> int:
        return self.numeric.count if self.kind == NUMERIC else sum(self.categories.values())

    def add(self, value: Scalar) -> None:
        if self.kind == NUMERIC:
            number = _number(value)
            if number is None:
                self.type_mismatch += 1
            else:
                self.numeric.add(number)
        else:
            category = category_of(value)
            if category is None:
                self.type_mismatch += 1
            else:
                self.categories[category] += 1

    def merge(self, other: SignalValues) -> None:
        if other.kind != self.kind:
            raise ProfileError(f"a {self.kind} signal and a {other.kind} one cannot be merged")
        self.numeric.merge(other.numeric)
        self.categories.update(other.categories)
        self.type_mismatch += other.type_mismatch

    def document(self, events: int, bins: int, top_k: int) -> dict[str, Any]:
        head = {
            "type": self.kind,
            "missing": events - self.count - self.type_mismatch,
            "type_mismatch": self.type_mismatch,
        }
        if self.kind == NUMERIC:
            return head | self.numeric.document(bins)
        top = [(value, count) for value, count in self.categories.most_common() if value != OTHER][:top_k]
        kept = sum(count for _value, count in top)
        return head | {"count": self.count, "categories": dict(top), "other": self.count - kept}

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> SignalValues:
        kind = document["type"]
        if kind == NUMERIC:
            return cls(kind, numeric=NumericValues.from_document(document),
                       type_mismatch=int(document["type_mismatch"]))  # fmt: skip
        if kind == CATEGORICAL:
            categories = Counter({str(k): int(v) for k, v in document["categories"].items()})
            if document["other"]:
                categories[OTHER] = int(document["other"])
            return cls(kind, categories=categories, type_mismatch=int(document["type_mismatch"]))
        raise ProfileError(f"unknown signal type {kind!r}")


@dataclass(slots=True)
class ModelValues:
    """One model's signals in the reference period (or those of one segment value of its events)."""

    events: int = 0
    signals: dict[str, SignalValues] = field(default_factory=dict)
    # Record time covered: the open period's first and last event time, and the span of periods merged in
    # (an event rate is events per span: the false-alarm budget's unit of time).
    first_ms: int | None = None
    last_ms: int | None = None
    merged_span_ms: int = 0
    # Per segment feature, per value: the model's events with that value, profiled alike (model_windows.py).
    segments: dict[str, dict[str, ModelValues]] = field(default_factory=dict)
    joint: JointValues = field(default_factory=JointValues)  # the numeric features together (joint.py)

    def add_event(self, event: InferenceEvent, segments: tuple[str, ...], segment: str | None = None) -> None:
        """The event's values; in a segment's values, all but the segment's own feature (one value there)."""
        self.events += 1
        at = event.timestamp_ms
        if at is not None:
            self.first_ms = at if self.first_ms is None else min(self.first_ms, at)
            self.last_ms = at if self.last_ms is None else max(self.last_ms, at)
        for name, value in event.features.items():
            if name != segment:
                self.add(f"feature:{name}", value)
        if segment is None:  # a segment's events are its model's: no moments of their own
            self.joint.add(event.features)
        self.add("prediction", event.prediction)
        self.add("score", event.score)
        for feature in segments:
            value = category_of(event.features.get(feature))
            if value is not None:
                by_value = self.segments.setdefault(feature, {})
                values = by_value.get(value)
                if values is None:
                    values = by_value[value] = ModelValues()
                values.add_event(event, (), feature)

    def add(self, name: str, value: Scalar) -> None:
        signal = self.signals.get(name)
        if signal is None:
            if value is None:
                return
            signal = self.signals[name] = SignalValues(
                CATEGORICAL if category_of(value) is not None else NUMERIC
            )
        if value is not None:
            signal.add(value)

    @property
    def span_ms(self) -> int:
        open_span = 0 if self.first_ms is None or self.last_ms is None else self.last_ms - self.first_ms
        return self.merged_span_ms + open_span

    def events_per_day(self) -> float | None:
        """The model's event rate in the reference period (None without a span of record time)."""
        span = self.span_ms
        return self.events * 86_400_000 / span if span > 0 else None

    def merge(self, other: ModelValues) -> None:
        self.events += other.events
        self.merged_span_ms += other.span_ms
        self.joint.merge(other.joint)
        for name, signal in other.signals.items():
            if name in self.signals:
                self.signals[name].merge(signal)
            else:
                self.signals[name] = signal
        for feature, by_value in other.segments.items():
            ours = self.segments.setdefault(feature, {})
            for value, segment in by_value.items():
                ours.setdefault(value, ModelValues()).merge(segment)

    def document(self, bins: int, top_k: int) -> dict[str, Any]:
        """The model's document; of its segment values, the `top_k` with the most events."""
        document: dict[str, Any] = {
            "events": self.events,
            "span_ms": self.span_ms,
            "events_per_day": self.events_per_day(),
            "signals": {
                name: signal.document(self.events, bins, top_k)
                for name, signal in sorted(self.signals.items())
            },
        }
        joint = self.joint.document()
        if joint is not None:
            document["joint"] = joint
        if self.segments:
            document["segments"] = {
                feature: {
                    value: segment.document(bins, top_k)
                    for value, segment in sorted(
                        by_value.items(), key=lambda item: (-item[1].events, item[0])
                    )[:top_k]
                }
                for feature, by_value in sorted(self.segments.items())
            }
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ModelValues:
        return cls(
            events=int(document["events"]),
            merged_span_ms=int(document.get("span_ms") or 0),
            signals={name: SignalValues.from_document(s) for name, s in document["signals"].items()},
            segments={
                feature: {value: cls.from_document(segment) for value, segment in by_value.items()}
                for feature, by_value in (document.get("segments") or {}).items()
            },
            joint=JointValues.from_document(document.get("joint")),
        )


def check_profile(document: Any) -> dict[str, Any]:
    """The models of a profile document, once its format and version are ones this version reads."""
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise ProfileError(f'not a streamdrift profile (its "format" is not {FORMAT!r})')
    if document.get("version") != VERSION:
        version = document.get("version")
        raise ProfileError(f"profile version {version!r}; this streamdrift reads {VERSION}")
    models = document.get("models")
    if not isinstance(models, dict):
        raise ProfileError("a profile without its models")
    return models


class Profile:
    """Reference profiles of the models a glob selects, built event by event or read from a document."""

    def __init__(
        self,
        *,
        models: str = "*",
        bins: int = DEFAULT_BINS,
        top_k: int = DEFAULT_TOP_K,
        segments: Iterable[str] = (),
    ) -> None:
        if bins < 1 or top_k < 1:
            raise ValueError("bins and top_k must be at least 1")
        self.selected, self.bins, self.top_k = models, bins, top_k
        self.segments = tuple(sorted(set(segments)))  # features whose values are segments
        self.models: dict[str, ModelValues] = {}

    def add(self, event: InferenceEvent) -> None:
        if not fnmatch.fnmatchcase(event.model_id, self.selected):
            return
        model = self.models.get(event.model_id)
        if model is None:
            model = self.models[event.model_id] = ModelValues()
        model.add_event(event, self.segments)

    def add_all(self, events: Iterable[InferenceEvent]) -> None:
        for event in events:
            self.add(event)

    def merge(self, other: Profile) -> None:
        """Add another period's profile (of the same bins, top_k and segments) to this one."""
        if (other.bins, other.top_k) != (self.bins, self.top_k):
            raise ProfileError(
                f"profiles of {self.bins} bins, top {self.top_k} and {other.bins} bins, top {other.top_k} "
                "cannot be merged"
            )
        if other.segments != self.segments:
            raise ProfileError(
                f"profiles segmented by {list(self.segments)} and by {list(other.segments)} cannot be merged"
            )
        for model_id, theirs in other.models.items():
            self.models.setdefault(model_id, ModelValues()).merge(theirs)

    def document(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "models_selected": self.selected,
            "bins": self.bins, "top_k": self.top_k, "segments": list(self.segments),
            "models": {
                model_id: model.document(self.bins, self.top_k)
                for model_id, model in sorted(self.models.items())
            },
        }  # fmt: skip

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Profile:
        check_profile(document)
        try:
            profile = cls(models=str(document["models_selected"]), bins=int(document["bins"]),
                          top_k=int(document["top_k"]), segments=document.get("segments") or ())  # fmt: skip
            for model_id, model in document["models"].items():
                profile.models[model_id] = ModelValues.from_document(model)
        except (KeyError, TypeError, AttributeError) as error:
            raise ProfileError(f"a profile without a field it needs ({error})") from None
        except ProfileError:
            raise
        except ValueError as error:  # the joint moments (joint.py)
            raise ProfileError(f"a profile with a field it cannot read ({error})") from None
        return profile
