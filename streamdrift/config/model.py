"""The config file's schema. Unknown keys are errors; every model is frozen after validation.

Each section's settings live in a module of their own; this one assembles the whole file and re-exports them.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Any

from pydantic import Field, PrivateAttr, model_validator
from pydantic.json_schema import SkipJsonSchema

from streamdrift.config.kafka_settings import KafkaSettings
from streamdrift.config.observability import HttpSettings, LoggingSettings
from streamdrift.config.policies import (
    CategoricalSettings,
    LabelSettings,
    ModelAlertSettings,
    MuteSettings,
    QualitySettings,
    RangeSettings,
)
from streamdrift.config.processing import FieldSettings, LimitSettings, ProcessingSettings
from streamdrift.config.reference import (
    BudgetSettings,
    MultivariateSettings,
    PerformanceSettings,
    ReferenceSettings,
)
from streamdrift.config.sections import SECRET_KEYS, Strict, read_secret_files
from streamdrift.config.signals import (
    DefaultSettings,
    DetectorSettings,
    DetectorType,
    ModelSettings,
    SignalOverride,
    SignalSettings,
    StandardizeSettings,
)
from streamdrift.config.topics import TopicSettings
from streamdrift.core.budget import FleetBudget, plan_budget
from streamdrift.core.cbpe import CbpeReference
from streamdrift.core.event import EventFields, EventLimits
from streamdrift.core.joint import MIN_ROWS, fit_profiled
from streamdrift.core.model_windows import ReferencePlan
from streamdrift.core.monitor import MonitorLimits
from streamdrift.core.multivariate import Pca
from streamdrift.core.performance import references
from streamdrift.core.plan import SIGNAL_KINDS, Policies

__all__ = [
    "SECRET_KEYS",
    "BudgetSettings",
    "CategoricalSettings",
    "DefaultSettings",
    "DetectorSettings",
    "DetectorType",
    "FieldSettings",
    "HttpSettings",
    "KafkaSettings",
    "LabelSettings",
    "LimitSettings",
    "LoggingSettings",
    "ModelAlertSettings",
    "ModelSettings",
    "MultivariateSettings",
    "MuteSettings",
    "PerformanceSettings",
    "ProcessingSettings",
    "QualitySettings",
    "RangeSettings",
    "ReferenceSettings",
    "SignalOverride",
    "SignalSettings",
    "StandardizeSettings",
    "StreamdriftConfig",
    "Strict",
    "TopicSettings",
    "read_secret_files",
]


class StreamdriftConfig(Strict):
    """The whole file."""

    kafka: KafkaSettings
    topics: TopicSettings
    processing: ProcessingSettings = ProcessingSettings()
    fields: FieldSettings = FieldSettings()
    defaults: DefaultSettings = DefaultSettings()
    models: list[ModelSettings] = Field(default_factory=list)
    mute: list[MuteSettings] = Field(default_factory=list)
    categorical: CategoricalSettings = CategoricalSettings()
    quality: QualitySettings = QualitySettings()
    model_alerts: ModelAlertSettings = ModelAlertSettings()
    labels: LabelSettings = LabelSettings()
    http: HttpSettings = HttpSettings()
    logging: LoggingSettings = LoggingSettings()
    reference: ReferenceSettings | None = None
    budget: BudgetSettings | None = None
    # Set by the loader from the file's bytes (and the reference profile's), so alerts name the config that
    # produced them; and the reference profile's models and version, read from `reference.profile`.
    config_version: SkipJsonSchema[str] = Field("unversioned", exclude=True)
    reference_models: SkipJsonSchema[dict[str, Any] | None] = Field(None, exclude=True)
    reference_version: SkipJsonSchema[str] = Field("", exclude=True)
    _fleet_budget: FleetBudget | None = PrivateAttr(None)  # worked out once: it reads every profiled signal
    _multivariate: dict[str, Pca] | None = PrivateAttr(None)  # fitted once per config

    @model_validator(mode="after")
    def _labels_need_range_assignment(self) -> StreamdriftConfig:
        # Label partition p must go to the member holding partition p of the input: the range assignor does
        # that for co-partitioned topics, the cooperative-sticky one does not.
        if self.kafka.rebalance == "cooperative" and self.topics.labels is not None:
            raise ValueError(
                "kafka.rebalance: cooperative cannot be used with topics.labels (label partition p must go "
                "to the member holding input partition p, which only eager range assignment guarantees)"
            )
        return self

    @model_validator(mode="after")
    def _budget_needs_a_profile(self) -> StreamdriftConfig:
        if self.budget is not None and self.reference is None:
            raise ValueError(
                "budget: needs reference.profile (the profile gives each model its event rate and each "
                "signal the distribution its threshold is calibrated on)"
            )
        return self

    @model_validator(mode="after")
    def _multivariate_fits(self) -> StreamdriftConfig:
        settings = None if self.reference is None else self.reference.multivariate
        if settings is None or self.reference_models is None:
            return self
        try:  # fitted here to report a bad profile at load; `multivariate()` fits again, once
            fitted = fit_profiled(self.reference_models, settings.models, settings.explained_variance)
        except ValueError as error:
            raise ValueError(f"reference.multivariate: {error}") from None
        if not fitted:
            raise ValueError(
                f"reference.multivariate: no model of the profile matching {settings.models!r} has joint "
                f"moments of {MIN_ROWS} events or more over two features that vary (a profile built before "
                "this version has none: `streamdrift profile build` again)"
            )
        return self

    @model_validator(mode="after")
    def _performance_references(self) -> StreamdriftConfig:
        settings = None if self.reference is None else self.reference.performance
        if settings is None or self.reference_models is None:
            return self
        try:
            found = self.performance()
        except ValueError as error:
            raise ValueError(f"reference.performance: {error}") from None
        if not found:
            raise ValueError(
                f"reference.performance: no model of the profile matching {settings.models!r} has a CBPE "
                "reference (`streamdrift profile build` with this config fits one per model whose events "
                f"have a score and a label, at least {2 * settings.window_events} of them)"
            )
        return self

    def repartition_topic(self) -> str:
        return self.topics.repartition or f"{self.kafka.group_id}-repartition"

    def policies(self) -> Policies:
        defaults = {kind: getattr(self.defaults, kind).policy() for kind in SIGNAL_KINDS}
        policies = Policies(
            defaults=defaults,
            rules=tuple(model.rule() for model in self.models),
            mutes=tuple(entry.mute() for entry in self.mute),
            categorical=self.categorical.policy(),
            ranges=self.quality.policy(),
            model_alerts=self.model_alerts.policy(),
            labels=None if self.topics.labels is None else self.labels.policy(),
            reference=self._reference_plan(),
            multivariate=self.multivariate(),
            performance=self.performance(),
        )
        fleet = self.fleet_budget(policies)
        return policies if fleet is None else replace(policies, budget=fleet.rules())

    def fleet_budget(self, policies: Policies | None = None) -> FleetBudget | None:
        """The budget's calibrated signals (None without a budget, or without the profile read)."""
        if self.budget is None or self.reference_models is None:
            return None
        if self._fleet_budget is None:
            plan_for = functools.cache((policies or self.policies()).plan_for)  # one plan per model

            def enabled(model_id: str, signal: str) -> bool:
                plan = plan_for(model_id)
                if signal.startswith("feature:"):
                    return plan.feature(signal.removeprefix("feature:")).enabled
                return plan.signal("prediction" if signal == "prediction" else "score").enabled

            selected = self.reference.models if self.reference is not None else "*"  # as for windows
            models = {m: doc for m, doc in self.reference_models.items() if fnmatchcase(m, selected)}
            self._fleet_budget = plan_budget(self.budget.budget(), models, enabled)
        return self._fleet_budget

    def _reference_plan(self) -> ReferencePlan | None:
        if self.reference is None or self.reference_models is None:
            return None
        policy = self.reference.policy()
        if policy is None:
            return None
        return ReferencePlan(
            models=self.reference_models, policy=policy, version=self.reference_version,
            selected=self.reference.models, segments=tuple(self.reference.segments),
        )  # fmt: skip

    def performance(self) -> dict[str, CbpeReference]:
        """Per selected model whose profile has a CBPE reference: that reference."""
        settings = None if self.reference is None else self.reference.performance
        if settings is None or self.reference_models is None:
            return {}
        return references(self.reference_models, settings.models, settings.window_events)

    def multivariate(self) -> dict[str, Pca]:
        """Per selected model with joint moments in the profile: its PCA (fitted once, then kept)."""
        if self._multivariate is None:
            settings = None if self.reference is None else self.reference.multivariate
            if settings is None or self.reference_models is None:
                self._multivariate = {}
            else:
                self._multivariate = fit_profiled(
                    self.reference_models, settings.models, settings.explained_variance
                )
        return self._multivariate

    def event_fields(self) -> EventFields:
        return EventFields(**self.fields.model_dump())

    def event_limits(self) -> EventLimits:
        limits = self.processing.limits
        return EventLimits(
            max_record_bytes=limits.max_record_bytes,
            max_json_depth=limits.max_json_depth,
            max_features=limits.max_features_per_event,
        )

    def monitor_limits(self) -> MonitorLimits:
        limits = self.processing.limits
        return MonitorLimits(
            max_features_per_model=limits.max_features_per_model,
            max_classes_per_model=limits.max_classes_per_model,
        )
