"""The config file's schema. Unknown keys are errors; every model is frozen after validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from streamdrift.core.categorical import CategoricalPolicy
from streamdrift.core.detectors import DETECTOR_KINDS, DetectorSpec, check_params
from streamdrift.core.event import EventFields, EventLimits
from streamdrift.core.labels import LabelPolicy
from streamdrift.core.lifecycle import ModelAlertPolicy
from streamdrift.core.monitor import MonitorLimits
from streamdrift.core.plan import (
    SIGNAL_KINDS,
    ModelRule,
    Mute,
    Policies,
    PolicyOverride,
    SignalKind,
    SignalPolicy,
)
from streamdrift.core.quality import Range, RangePolicy
from streamdrift.core.scaling import Standardize

DetectorType = Literal["adwin", "page_hinkley", "kswin", "ddm", "eddm", "hddm_a", "hddm_w", "fhddm"]
assert set(DetectorType.__args__) == set(DETECTOR_KINDS)  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Settings holding secrets: never echoed in errors or logs. Each may instead be read from a file named by
# `<key>_file` (a mounted secret), one of the two at most.
SECRET_KEYS = frozenset({"sasl_plain_password", "ssl_password", "state_key"})


def read_secret_files(data: Any) -> Any:
    """Replace each `<secret>_file: path` by `<secret>: <the file's content, without a final newline>`."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for secret in SECRET_KEYS:
        path = data.get(f"{secret}_file")
        if path is None:
            continue
        if data.get(secret) not in (None, ""):
            raise ValueError(f"give {secret} or {secret}_file, not both")
        try:
            data[secret] = Path(path).read_text(encoding="utf-8").removesuffix("\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ValueError(f"{secret}_file: cannot read {path}: {reason}") from None
    return data


class KafkaSettings(Strict):
    """Connection settings; the security ones are passed to kafka-python unchanged."""

    bootstrap_servers: str | list[str] = Field(description="host:port, or a list of them")
    group_id: str = Field("streamdrift", description="consumer group shared by every instance")
    client_id: str = "streamdrift"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    sasl_plain_password_file: str | None = Field(None, description="read sasl_plain_password from this file")
    ssl_password_file: str | None = Field(None, description="read ssl_password from this file")
    request_timeout_ms: int = Field(30_000, gt=0)

    _secret_files = model_validator(mode="before")(read_secret_files)

    def security(self) -> dict[str, Any]:
        """The settings every kafka-python client gets (secrets included; never log this)."""
        return self.model_dump(
            exclude={"group_id", "client_id", "sasl_plain_password_file", "ssl_password_file"},
            exclude_none=True,
        )


class TopicSettings(Strict):
    input: list[str] = Field(min_length=1, description="topics of inference events")
    alerts: str = "streamdrift-alerts"
    dead_letter: str = "streamdrift-dead-letter"
    state: str = "streamdrift-state"
    repartition: str | None = Field(
        None, description="internal topic of processing.repartition (default: <group_id>-repartition)"
    )
    labels: str | None = Field(
        None,
        description="topic of late labels {event_id, label, model_id}, keyed by model_id and co-partitioned "
        "with the input; joined to earlier predictions by event_id (none: inline labels only)",
    )
    replication_factor: int = Field(1, ge=1, description="for topics streamdrift creates")

    @field_validator("input")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("input topics must be distinct")
        return value


class LimitSettings(Strict):
    max_record_bytes: int = Field(1_048_576, gt=0)
    max_json_depth: int = Field(32, gt=0)
    max_features_per_event: int = Field(1_000, gt=0)
    max_features_per_model: int = Field(2_000, gt=0)
    max_classes_per_model: int = Field(100, gt=0)


class ProcessingSettings(Strict):
    _secret_files = model_validator(mode="before")(read_secret_files)

    guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    commit_interval_ms: int = Field(500, ge=10, le=60_000)
    snapshot_interval_ms: int = Field(
        10_000,
        ge=0,
        le=3_600_000,
        description="a changed model's detectors are snapshotted at most this often (0: at every commit); "
        "after a restart the input since each model's last snapshot is replayed, alerts muted",
    )
    max_poll_records: int = Field(2_000, gt=0)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    state_key: str | None = Field(
        None,
        description="HMAC key for state snapshots; default: $STREAMDRIFT_STATE_KEY. Keep it out of the file.",
    )
    state_key_file: str | None = Field(None, description="read state_key from this file")
    instance_id: str | None = Field(
        None,
        description="stable id of this replica (default: $STREAMDRIFT_INSTANCE_ID, else the host name); "
        "it names the transactional producer, so a restarted replica fences its previous incarnation",
    )
    restore_timeout_s: float = Field(
        60.0,
        gt=0,
        description="a state restore that makes no progress this long is abandoned and retried (not ready)",
    )
    skip_unreadable_batches: bool = Field(
        False,
        description="an input record batch that cannot be read (CRC mismatch, damaged compression) after "
        "three fetches is skipped into the dead-letter topic instead of stopping the service",
    )
    repartition: bool = Field(
        False,
        description="for input not keyed by model_id: forward it, keyed by model_id, through an internal "
        "topic (topics.repartition) so each model has one home partition",
    )
    repartition_wait_ms: int = Field(
        1000,
        ge=0,
        le=600_000,
        description="repartitioning merges this replica's input partitions in timestamp order; it waits "
        "this long at most for a partition that has nothing buffered and is not read to its end",
    )
    transaction_timeout_ms: int = Field(
        120_000,
        ge=1000,
        le=900_000,
        description="the broker aborts a transaction open this long: bounds how long a dead replica's "
        "unfinished interval holds back read_committed readers",
    )
    session_timeout_ms: int = Field(
        30_000, ge=1000, description="a replica silent this long loses its partitions to the others"
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="processing stalled this long: the replica is evicted and rejoins"
    )
    limits: LimitSettings = LimitSettings()


class FieldSettings(Strict):
    """Where each event field lives; dotted paths reach into nested objects."""

    model_id: str = "model_id"
    model_version: str = "model_version"
    event_id: str = "event_id"
    timestamp: str = "timestamp"
    features: str = "features"
    prediction: str = "prediction"
    score: str = "score"
    label: str = "label"


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

    @model_validator(mode="after")
    def _one_source(self) -> StandardizeSettings:
        given = self.mean is not None, self.std is not None
        if given == (True, True) and self.warmup is None:
            return self
        if given == (False, False) and self.warmup is not None:
            return self
        raise ValueError("give either mean and std (from a reference sample) or warmup, not both")

    def spec(self) -> Standardize:
        return Standardize(mean=self.mean, std=self.std, warmup=self.warmup or 0)


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


class HttpSettings(Strict):
    """The HTTP endpoints: /metrics (Prometheus), /healthz (the loop is alive), /readyz (ready to work)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(9308, ge=0, le=65535, description="0: any free port (the log says which)")
    max_model_labels: int = Field(
        100,
        ge=1,
        description="alert metrics carry a model_id label for this many models; later ones share "
        '"_other", so a deployment with thousands of models cannot flood Prometheus',
    )


class LoggingSettings(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    summary_interval_s: float = Field(10.0, gt=0)


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
    # Set by the loader from the file's bytes, so alerts name the config that produced them.
    config_version: SkipJsonSchema[str] = Field("unversioned", exclude=True)

    def repartition_topic(self) -> str:
        return self.topics.repartition or f"{self.kafka.group_id}-repartition"

    def policies(self) -> Policies:
        defaults = {kind: getattr(self.defaults, kind).policy() for kind in SIGNAL_KINDS}
        return Policies(
            defaults=defaults,
            rules=tuple(model.rule() for model in self.models),
            mutes=tuple(entry.mute() for entry in self.mute),
            categorical=self.categorical.policy(),
            ranges=self.quality.policy(),
            model_alerts=self.model_alerts.policy(),
            labels=None if self.topics.labels is None else self.labels.policy(),
        )

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
