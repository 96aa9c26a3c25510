"""The alert record: what every subscriber of the alerts topic reads. Schema `streamdrift.alert/v2`.

The JSON Schema ships as `streamdrift/schemas/alert.schema.json`. v2 added `episode_id`, the `resolved` level,
the `model` signal with its `signals` list, and the `new_category` detector (README: "Alert lifecycle").

Everything in an alert derives from the input stream and the config, never from a clock, so the same detection
always yields the same bytes and the same `alert_id` — subscribers de-duplicate on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

ALERT_SCHEMA: Final = "streamdrift.alert/v2"
SCHEMA_HEADER: Final = "streamdrift.schema"

AlertLevel = Literal["drift", "warning", "resolved"]


# Not frozen, unlike the other value types: one is made per event, and a frozen dataclass's __init__ costs an
# object.__setattr__ call per field. Nothing mutates it. Not keyword-only either: the service passes its
# fields by position, which costs less; everything else names them.
@dataclass(slots=True)
class RecordSource:
    """Where an event came from: a Kafka record, or a line of a file (topic None, partition None)."""

    offset: int
    topic: str | None = None
    partition: int | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftAlert:
    """One detection on one signal of one model."""

    alert_id: str
    level: AlertLevel
    model_id: str
    model_version: str | None
    signal: str
    detector_type: str
    detector_params: dict[str, Any]
    source: RecordSource
    observations: int
    stats: dict[str, Any]
    event_time_ms: int | None
    config_version: str
    # The drift episode this alert belongs to: the alert_id of the drift that opened it (None for a warning
    # outside any episode).
    episode_id: str | None = None
    signals: tuple[str, ...] | None = None  # a model-level alert: the drifting signals it groups

    def to_dict(self) -> dict[str, Any]:
        source = self.source
        return {
            "schema": ALERT_SCHEMA,
            "alert_id": self.alert_id,
            "level": self.level,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "signal": self.signal,
            "detector": {"type": self.detector_type, "params": self.detector_params},
            "source": {
                "topic": source.topic,
                "partition": source.partition,
                "offset": source.offset,
                "timestamp_ms": source.timestamp_ms,
            },
            "observations": self.observations,
            "stats": self.stats,
            "event_time": format_time(self.event_time_ms),
            # The record time of the triggering event: deterministic, unlike a wall clock.
            "detected_at": format_time(source.timestamp_ms),
            "config_version": self.config_version,
            "episode_id": self.episode_id,
            **({} if self.signals is None else {"signals": list(self.signals)}),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)


def alert_id(model_id: str, signal: str, level: str, source: RecordSource) -> str:
    """The same detection (model, signal, level, triggering record) always has the same id.

    >>> source = RecordSource(topic="t", partition=0, offset=7)
    >>> alert_id("m", "score", "drift", source) == alert_id("m", "score", "drift", source)
    True
    """
    key = f"{model_id}\x1f{signal}\x1f{level}\x1f{source.topic}\x1f{source.partition}\x1f{source.offset}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def format_time(epoch_ms: int | None) -> str | None:
    """RFC 3339 in UTC with milliseconds.

    >>> format_time(1700000000123)
    '2023-11-14T22:13:20.123Z'
    """
    if epoch_ms is None:
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
