"""The sections around the signals' detectors: mutes, categorical features, quality bounds, model-level
alerts and late labels."""

from __future__ import annotations

from pydantic import AwareDatetime, Field, model_validator

from streamdrift.config.sections import Strict
from streamdrift.core.categorical import CategoricalPolicy
from streamdrift.core.labels import LabelPolicy
from streamdrift.core.lifecycle import ModelAlertPolicy
from streamdrift.core.plan import Mute
from streamdrift.core.quality import Range, RangePolicy


class MuteSettings(Strict):
    """A maintenance window: detections of matching models and signals are counted, not published."""

    model: str = Field("*", description="glob on model_id")
    signal: str = Field("*", description="glob on the signal name, e.g. 'feature:*' or 'score'")
    until: AwareDatetime | None = Field(
        None, description="RFC 3339 time with a zone; compared with the record time. Absent: no end"
    )

    def mute(self) -> Mute:
        until_ms = None if self.until is None else round(self.until.timestamp() * 1000)
        return Mute(model=self.model, signal=self.signal, until_ms=until_ms)


class CategoricalSettings(Strict):
    """Features whose values are strings: which categories get a stream, and which values are new."""

    top_k: int = Field(5, ge=1, description="the most frequent categories of the warm-up get a stream each")
    warmup: int = Field(1000, ge=1, description="values counted before the streams start")
    max_categories: int = Field(
        1000, ge=1, description="distinct values remembered per feature; more turns new-category alerts off"
    )
    new_category: bool = Field(True, description="one alert per category first seen after the warm-up")

    def policy(self) -> CategoricalPolicy:
        return CategoricalPolicy(**self.model_dump())


class RangeSettings(Strict):
    model: str = Field("*", description="glob on model_id")
    feature: str = Field(description="glob on the feature name")
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> RangeSettings:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class QualitySettings(Strict):
    """Bounds for quality:out_of_range: given per feature, or learned from each feature's first values."""

    warmup: int = Field(1000, ge=1, description="values a feature's bounds are learned from")
    margin: float = Field(
        0.1, ge=0, description="learned bounds are widened by this fraction of the warm-up's range"
    )
    ranges: list[RangeSettings] = Field(default_factory=list, description="given bounds; the last match wins")

    def policy(self) -> RangePolicy:
        ranges = tuple(Range(model=r.model, feature=r.feature, low=r.min, high=r.max) for r in self.ranges)
        return RangePolicy(warmup=self.warmup, margin=self.margin, ranges=ranges)


class ModelAlertSettings(Strict):
    """One `model` alert when at least min_signals distinct signals drift within a window of events."""

    enabled: bool = True
    min_signals: int = Field(3, ge=1)
    window: int = Field(500, ge=1, description="events of the model, from the window's first drift")
    signals: list[str] = Field(
        ["feature:*", "category:*"], min_length=1, description="globs of the signals that count"
    )

    def policy(self) -> ModelAlertPolicy:
        return ModelAlertPolicy(
            enabled=self.enabled,
            min_signals=self.min_signals,
            window=self.window,
            signals=tuple(self.signals),
        )


class LabelSettings(Strict):
    """The join of topics.labels with earlier predictions (per model, by event_id)."""

    ttl_s: float = Field(
        86_400, gt=0, description="record time a prediction waits for its label before it expires"
    )
    max_pending_per_model: int = Field(
        10_000, ge=1, description="predictions waiting per model (and labels waiting for a prediction)"
    )

    def policy(self) -> LabelPolicy:
        return LabelPolicy(ttl_ms=round(self.ttl_s * 1000), max_pending=self.max_pending_per_model)
