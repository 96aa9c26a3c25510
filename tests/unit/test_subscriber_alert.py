"""The subscriber's typed alert (streamdrift/subscriber.py) against the published JSON Schema and the core's
own serialisation: the same fields, every alert the core writes read back unchanged, anything else refused."""

from __future__ import annotations

import json

import orjson
import pytest
from pydantic import ValidationError

from streamdrift.core.alert import DriftAlert, RecordSource, alert_id
from streamdrift.subscriber import Alert, alert_schema


def core_alert(
    level: str, *, signals: tuple[str, ...] | None = None, topic: str | None = "events"
) -> DriftAlert:
    source = RecordSource(41, topic, None if topic is None else 3, 1_767_225_600_041)
    signal = "model" if signals else "feature:age"
    return DriftAlert(
        alert_id=alert_id("fraud-v2", signal, level, source),
        level=level,  # type: ignore[arg-type]  # one of the levels
        model_id="fraud-v2",
        model_version=None,
        signal=signal,
        detector_type="page_hinkley",
        detector_params={"threshold": 20.0, "delta": 0.005},
        source=source,
        observations=42,
        stats={"mean": 0.4, "sum": [1, 2]},
        event_time_ms=1_767_225_600_000,
        config_version="0123456789ab",
        episode_id=None if level == "warning" else "f" * 32,
        signals=signals,
    )


def test_the_typed_alert_has_the_schemas_fields_and_requires_what_it_requires() -> None:
    schema = json.loads(alert_schema())
    fields = {field.alias or name: field for name, field in Alert.model_fields.items()}
    assert set(fields) == set(schema["properties"])
    assert {name for name, field in fields.items() if field.is_required()} == set(schema["required"])


@pytest.mark.parametrize(
    "alert",
    [
        core_alert("drift"),
        core_alert("warning"),
        core_alert("resolved"),
        core_alert("drift", signals=("feature:age", "score")),
        core_alert("drift", topic=None),  # a file replay's alert
    ],
    ids=["drift", "warning", "resolved", "model", "file"],
)
def test_every_alert_the_core_writes_reads_back_unchanged(alert: DriftAlert) -> None:
    typed = Alert.from_json(alert.to_json())
    assert typed.to_dict() == alert.to_dict()
    assert (typed.level, typed.model_id, typed.source.offset) == (alert.level, "fraud-v2", 41)
    assert typed.signals == alert.signals


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"not json",
        b"[1, 2]",
        orjson.dumps({**core_alert("drift").to_dict(), "schema": "streamdrift.alert/v1"}),
        orjson.dumps({**core_alert("drift").to_dict(), "level": "panic"}),
        orjson.dumps({k: v for k, v in core_alert("drift").to_dict().items() if k != "alert_id"}),
        orjson.dumps({**core_alert("drift").to_dict(), "source": {"offset": "forty-one"}}),
        orjson.dumps({**core_alert("drift").to_dict(), "alert_id": "not-a-hash"}),
    ],
    ids=["empty", "text", "array", "old schema", "level", "no alert_id", "source", "alert_id"],
)
def test_a_record_that_is_not_an_alert_is_refused(value: bytes) -> None:
    with pytest.raises(ValidationError):
        Alert.from_json(value)
