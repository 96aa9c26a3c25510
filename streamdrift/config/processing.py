"""How the input is read and processed: the `processing:` section (with its limits) and `fields:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from streamdrift.config.sections import Strict, read_secret_files


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
    max_snapshots_per_s: int = Field(
        250,
        ge=0,
        description="at most this many model snapshots a second (0: no limit), those snapshotted longest "
        "ago first: bounds the cost of keeping state whatever the model count; with more changed models than "
        "this times snapshot_interval_ms, each model's snapshot is older and a restart replays more input",
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
