"""Detectors per signal: the `defaults:` section and the `models:` rules that override it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streamdrift.config.sections import Strict
from streamdrift.core.detectors import DETECTOR_KINDS, DetectorSpec, check_params
from streamdrift.core.plan import SIGNAL_KINDS, ModelRule, PolicyOverride, SignalKind, SignalPolicy
from streamdrift.core.scaling import Standardize

DetectorType = Literal["adwin", "page_hinkley", "kswin", "ddm", "eddm", "hddm_a", "hddm_w", "fhddm"]
assert set(DetectorType.__args__) == set(DETECTOR_KINDS)  # type: ignore[attr-defined]


class DetectorSettings(BaseModel):
    """`{type: <name>, <River constructor parameter>: value, ...}`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: DetectorType

    @model_validator(mode="after")
    def _river_accepts(self) -> DetectorSettings:
        problems = check_params(self.type, self.model_extra or {})
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def spec(self) -> DetectorSpec:
        return DetectorSpec.of(self.type, **(self.model_extra or {}))


class StandardizeSettings(Strict):
    """`{mean: m, std: s}` measured on a reference sample, or `{warmup: n}` to learn them from the first
    n values (which then reach no detector)."""

    mean: float | None = None
    std: float | None = Field(None, gt=0)
    warmup: int | None = Field(None, ge=2)
    clip: float | None = Field(
        None, gt=0, description="standardised values beyond ±clip count as ±clip (one outlier cannot alert)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> StandardizeSettings:
        given = self.mean is not None, self.std is not None
        if given == (True, True) and self.warmup is None:
            return self
        if given == (False, False) and self.warmup is not None:
            return self
        raise ValueError("give either mean and std (from a reference sample) or warmup, not both")

    def spec(self) -> Standardize:
        return Standardize(mean=self.mean, std=self.std, warmup=self.warmup or 0, clip=self.clip)


def _numeric_detector_only(
    detector: DetectorSettings | None, standardize: StandardizeSettings | None
) -> None:
    if detector is not None and standardize is not None and DETECTOR_KINDS[detector.type].binary:
        raise ValueError(f"standardize needs a numeric detector ({detector.type} reads 0/1 values)")


class SignalSettings(Strict):
    enabled: bool = True
    detector: DetectorSettings = DetectorSettings(type="adwin")
    cooldown: int = Field(
        0, ge=0, description="values after a drift alert during which the signal stays quiet"
    )
    cooldown_s: float = Field(
        0, ge=0, description="seconds of record time after a drift alert during which the signal stays quiet"
    )
    standardize: StandardizeSettings | None = Field(
        None, description="feed (x - mean) / std, so thresholds mean the same at every scale"
    )
    resolve_after: int = Field(
        1000, ge=0, description="values without a drift after which an episode is resolved (0: no episodes)"
    )

    @model_validator(mode="after")
    def _standardize_numeric(self) -> SignalSettings:
        _numeric_detector_only(self.detector, self.standardize)
        return self

    def policy(self) -> SignalPolicy:
        return SignalPolicy(
            enabled=self.enabled, detector=self.detector.spec(), cooldown=self.cooldown,
            cooldown_s=self.cooldown_s, standardize=self.standardize.spec() if self.standardize else None,
            resolve_after=self.resolve_after,
        )  # fmt: skip


class SignalOverride(Strict):
    enabled: bool | None = None
    detector: DetectorSettings | None = None
    cooldown: int | None = Field(None, ge=0)
    cooldown_s: float | None = Field(None, ge=0)
    standardize: StandardizeSettings | None = None
    resolve_after: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _standardize_numeric(self) -> SignalOverride:
        _numeric_detector_only(self.detector, self.standardize)
        return self

    def override(self) -> PolicyOverride:
        return PolicyOverride(
            enabled=self.enabled,
            detector=self.detector.spec() if self.detector else None,
            cooldown=self.cooldown,
            cooldown_s=self.cooldown_s,
            standardize=self.standardize.spec() if self.standardize else None,
            resolve_after=self.resolve_after,
        )


class DefaultSettings(Strict):
    features: SignalSettings = SignalSettings()
    prediction: SignalSettings = SignalSettings()
    score: SignalSettings = SignalSettings()
    error: SignalSettings = SignalSettings()
    missing: SignalSettings = SignalSettings()
    categorical: SignalSettings = Field(
        SignalSettings(), description="the 0/1 stream of each frequent category of a categorical feature"
    )
    type_mismatch: SignalSettings = Field(
        SignalSettings(), description="quality:type_mismatch, 1 for an event with a value of the wrong type"
    )
    out_of_range: SignalSettings = Field(
        SignalSettings(enabled=False),
        description="quality:out_of_range, 1 for an event with a value out of its bounds (quality.ranges, "
        "or learned); off by default: a shifted feature already alerts on feature:<name>",
    )
    multivariate: SignalSettings = Field(
        SignalSettings(),
        description="multivariate:reconstruction, each event's PCA reconstruction error, for the models "
        "reference.multivariate selects",
    )


class ModelSettings(Strict):
    match: str = Field(description="glob on model_id, e.g. 'fraud-*'")
    features: dict[str, SignalOverride] = Field(default_factory=dict, description="per feature name or glob")
    prediction: SignalOverride | None = None
    score: SignalOverride | None = None
    error: SignalOverride | None = None
    missing: SignalOverride | None = None
    categorical: SignalOverride | None = None
    type_mismatch: SignalOverride | None = None
    out_of_range: SignalOverride | None = None
    multivariate: SignalOverride | None = None

    def rule(self) -> ModelRule:
        signals: dict[SignalKind, PolicyOverride] = {}
        for kind in SIGNAL_KINDS:
            if kind != "features" and (override := getattr(self, kind)) is not None:
                signals[kind] = override.override()
        return ModelRule(
            match=self.match,
            features=tuple((pattern, o.override()) for pattern, o in self.features.items()),
            signals=signals,
        )
