"""Which detector watches which signal of which model: defaults, then model rules matched by glob.

Resolution, documented in the README: start from `defaults.<kind>`; apply every `models` entry whose `match`
glob matches the model id, in file order (a later entry overrides an earlier one); within an entry,
per-feature settings apply to the feature names their glob matches, again in order. Plans are resolved
once per model and once per feature name, then cached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Final, Literal

from streamdrift.core.categorical import CategoricalPolicy
from streamdrift.core.cbpe import CbpeReference
from streamdrift.core.detectors import DetectorSpec
from streamdrift.core.labels import LabelPolicy
from streamdrift.core.lifecycle import ModelAlertPolicy
from streamdrift.core.model_windows import ReferencePlan
from streamdrift.core.multivariate import Pca
from streamdrift.core.quality import RangePolicy
from streamdrift.core.scaling import Standardize

SignalKind = Literal[
    "features", "prediction", "score", "error", "missing", "categorical", "type_mismatch", "out_of_range",
    "multivariate",
]  # fmt: skip
SIGNAL_KINDS: Final[tuple[SignalKind, ...]] = (
    "features", "prediction", "score", "error", "missing", "categorical", "type_mismatch", "out_of_range",
    "multivariate",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalPolicy:
    """How one signal is watched."""

    enabled: bool = True
    detector: DetectorSpec = field(default_factory=lambda: DetectorSpec.of("adwin"))
    cooldown: int = 0  # after a drift alert, this many further values of the signal cannot alert
    cooldown_s: float = 0.0  # ... nor values whose record time is less than this many seconds later
    standardize: Standardize | None = None  # scale-free thresholds (see scaling.py)
    # An episode opened by a drift is resolved after this many further values without one (0: never).
    resolve_after: int = 1000


# A kind missing from `Policies.defaults` gets these. Out-of-range is opt-in: a shifted feature already
# alerts on its own signal.
DEFAULT_POLICIES: Final[Mapping[SignalKind, SignalPolicy]] = {
    kind: SignalPolicy(enabled=kind != "out_of_range") for kind in SIGNAL_KINDS
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyOverride:
    """A partial `SignalPolicy`: fields left as None keep the value they override."""

    enabled: bool | None = None
    detector: DetectorSpec | None = None
    cooldown: int | None = None
    cooldown_s: float | None = None
    standardize: Standardize | None = None
    resolve_after: int | None = None

    def apply(self, policy: SignalPolicy) -> SignalPolicy:
        return replace(
            policy,
            enabled=policy.enabled if self.enabled is None else self.enabled,
            detector=policy.detector if self.detector is None else self.detector,
            cooldown=policy.cooldown if self.cooldown is None else self.cooldown,
            cooldown_s=policy.cooldown_s if self.cooldown_s is None else self.cooldown_s,
            standardize=policy.standardize if self.standardize is None else self.standardize,
            resolve_after=policy.resolve_after if self.resolve_after is None else self.resolve_after,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRule:
    """One `models:` entry."""

    match: str
    features: tuple[tuple[str, PolicyOverride], ...] = ()
    signals: Mapping[SignalKind, PolicyOverride] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetRule:
    """The false-alarm budget's detectors for one model (budget.py): applied after every `models:` entry,
    by exact feature name."""

    features: Mapping[str, PolicyOverride] = field(default_factory=dict)
    signals: Mapping[SignalKind, PolicyOverride] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mute:
    """Detections of matching models and signals are not published (but counted) until `until_ms`.

    Time is the triggering record's time, so a replay or a restart mutes exactly what the live run did.
    """

    model: str = "*"  # glob on model_id
    signal: str = "*"  # glob on the signal name, e.g. "feature:*"
    until_ms: int | None = None  # None: until the entry is removed from the config

    def covers(self, model_id: str, signal: str, at_ms: int | None) -> bool:
        """
        >>> Mute(model="fraud-*", until_ms=1000).covers("fraud-eu", "score", 999)
        True
        >>> Mute(model="fraud-*", until_ms=1000).covers("fraud-eu", "score", 1000)
        False
        """
        if self.until_ms is not None and at_ms is not None and at_ms >= self.until_ms:
            return False
        return fnmatchcase(model_id, self.model) and fnmatchcase(signal, self.signal)


@dataclass(frozen=True, slots=True, kw_only=True)
class Policies:
    """Defaults per signal kind and the model rules; everything the core needs from the config."""

    defaults: Mapping[SignalKind, SignalPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    rules: tuple[ModelRule, ...] = ()
    mutes: tuple[Mute, ...] = ()
    categorical: CategoricalPolicy = field(default_factory=CategoricalPolicy)
    ranges: RangePolicy = field(default_factory=RangePolicy)
    model_alerts: ModelAlertPolicy = field(default_factory=ModelAlertPolicy)
    labels: LabelPolicy | None = None  # late labels joined from a labels topic (None: inline labels only)
    reference: ReferencePlan | None = None  # windows compared with a reference profile (windows.py)
    budget: Mapping[str, BudgetRule] = field(default_factory=dict)  # by model id (budget.py)
    # By model id: the PCA fitted on its reference, whose reconstruction error is the model's
    # `multivariate:reconstruction` signal (multivariate.py); a model without one has no such signal.
    multivariate: Mapping[str, Pca] = field(default_factory=dict)
    # By model id: the CBPE reference of its estimated performance windows (performance.py).
    performance: Mapping[str, CbpeReference] = field(default_factory=dict)

    def muted(self, model_id: str, signal: str, at_ms: int | None) -> bool:
        return any(mute.covers(model_id, signal, at_ms) for mute in self.mutes)

    def plan_for(self, model_id: str) -> ModelPlan:
        rules = tuple(rule for rule in self.rules if fnmatchcase(model_id, rule.match))
        return ModelPlan(self, rules, self.budget.get(model_id))


class ModelPlan:
    """The resolved policies of one model.

    >>> rule = ModelRule(match="fraud-*", features=(("amount", PolicyOverride(enabled=False)),))
    >>> plan = Policies(rules=(rule,)).plan_for("fraud-eu")
    >>> plan.feature("amount").enabled, plan.feature("age").enabled
    (False, True)
    """

    __slots__ = ("_budget", "_features", "_rules", "_signals", "policies")

    def __init__(
        self, policies: Policies, rules: tuple[ModelRule, ...], budget: BudgetRule | None = None
    ) -> None:
        self.policies = policies
        self._rules = rules
        self._budget = budget
        self._signals: dict[SignalKind, SignalPolicy] = {}
        for kind in SIGNAL_KINDS:
            policy = policies.defaults.get(kind) or DEFAULT_POLICIES[kind]
            for rule in rules:
                override = rule.signals.get(kind)
                if override is not None:
                    policy = override.apply(policy)
            if budget is not None and kind in budget.signals:
                policy = budget.signals[kind].apply(policy)
            self._signals[kind] = policy
        self._features: dict[str, SignalPolicy] = {}

    def signal(self, kind: SignalKind) -> SignalPolicy:
        return self._signals[kind]

    def feature(self, name: str) -> SignalPolicy:
        policy = self._features.get(name)
        if policy is None:
            policy = self._signals["features"]
            for rule in self._rules:
                for pattern, override in rule.features:
                    if fnmatchcase(name, pattern):
                        policy = override.apply(policy)
            if self._budget is not None and name in self._budget.features:
                policy = self._budget.features[name].apply(policy)
            self._features[name] = policy
        return policy
