"""The `topics:` section: where events are read from, and where alerts, dead letters and state go."""

from __future__ import annotations

from pydantic import Field, field_validator

from streamdrift.config.sections import Strict


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
