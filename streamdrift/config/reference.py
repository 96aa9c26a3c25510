"""The `reference:` section: live windows compared with a reference profile (docs/REFERENCE.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from streamdrift.config.sections import Strict
from streamdrift.core.budget import FalseAlarmBudget
from streamdrift.core.windows import WindowPolicy


class WindowSettings(Strict):
    events: int | None = Field(None, ge=1, description="a window closes after this many events of the model")
    seconds: float | None = Field(
        None, gt=0, description="or: tumbling windows of this many seconds of record time"
    )


class MultivariateSettings(Strict):
    """Each selected model's events projected on a PCA of its reference: `multivariate:reconstruction`."""

    models: str = Field(
        "*", description="glob on the model ids that get the signal (those whose profile has joint moments)"
    )
    explained_variance: float = Field(
        0.65, gt=0, lt=1, description="the principal components kept explain at least this share"
    )


class PerformanceSettings(Strict):
    """Estimated performance (CBPE) of binary classifiers, per window of each selected model's events."""

    models: str = Field(
        "*", description="glob on the model ids that get windows (those whose profile has one)"
    )
    window_events: int = Field(
        1000, ge=10, description="events per window; `profile build` fits the reference for this size"
    )
    threshold: float = Field(
        0.5, ge=0, le=1, description="an event without a 0/1 prediction is predicted positive at this score"
    )


class ReferenceSettings(Strict):
    """Tumbling windows of each profiled model's values, each compared with the profile when it closes."""

    profile: str = Field(
        description="the profile's JSON file (`streamdrift profile build`), relative to this file"
    )
    models: str = Field("*", description="glob on the model ids that get windows (those in the profile)")
    window: WindowSettings | None = Field(
        None,
        description="`events: N` or `seconds: S`; absent: no windows (the profile then serves the budget and "
        "multivariate only)",
    )
    numeric: dict[str, float] = Field(
        default_factory=lambda: {"psi": 0.2},
        description="tests of numeric signals and their thresholds: psi, jensen_shannon, wasserstein",
    )
    categorical: dict[str, float] = Field(
        default_factory=lambda: {"chi_square": 0.001},
        description="tests of categorical signals: psi, jensen_shannon, chi_square (its threshold a p-value)",
    )
    segments: list[str] = Field(
        default_factory=list,
        description="categorical features whose values (the profile's top-k) get windows of their own, each "
        "compared with the segment's own reference (the profile must be built with them)",
    )

    multivariate: MultivariateSettings | None = None
    performance: PerformanceSettings | None = None

    @model_validator(mode="after")
    def _a_policy_that_works(self) -> ReferenceSettings:
        self.policy()
        return self

    def policy(self) -> WindowPolicy | None:
        """The windows' policy; None without `window`."""
        if self.window is None:
            return None
        return WindowPolicy(
            events=self.window.events, seconds=self.window.seconds,
            numeric=dict(self.numeric), categorical=dict(self.categorical),
        )  # fmt: skip


class BudgetSettings(Strict):
    """One false-alarm budget for the fleet: each profiled model's numeric signals get a Page-Hinkley
    threshold calibrated to it (core/budget.py, docs/REFERENCE.md "A false-alarm budget")."""

    false_alarms: float = Field(
        gt=0, description="at most this many false drift alerts per model (over its calibrated signals) ..."
    )
    days: float = Field(
        30.0, gt=0, description="... per this many days, at the model's event rate in the profile"
    )
    shift_std: float = Field(
        0.5, gt=0, le=10,
        description="the smallest sustained mean shift worth finding, in reference standard deviations "
        "(Page-Hinkley's delta is half of it)",
    )  # fmt: skip

    def budget(self) -> FalseAlarmBudget:
        return FalseAlarmBudget(false_alarms=self.false_alarms, days=self.days, shift_std=self.shift_std)
