"""Decoding one record into an inference event: every bad-input kind, with a concrete record each."""

from __future__ import annotations

import pytest

from streamdrift.core import event as event_module
from streamdrift.core.event import (
    BAD_RECORD_KINDS,
    EVENT_RECORD_KINDS,
    EventDecoder,
    EventFields,
    EventLimits,
    InferenceEvent,
    parse_timestamp_ms,
)
from streamdrift.errors import BadRecord

LIMITS = EventLimits(max_record_bytes=200, max_json_depth=4, max_features=3, max_model_id_length=16)

# (id, key, value, kind): one or more concrete records for every kind in EVENT_RECORD_KINDS.
BAD_RECORDS: list[tuple[str, bytes | None, bytes | None, str]] = [
    ("empty value", b"m", b"", "empty"),
    ("null value (tombstone)", b"m", None, "empty"),
    ("over max_record_bytes", b"m", b'{"model_id": "m", "pad": "' + b"x" * 200 + b'"}', "too_large"),
    ("invalid UTF-8", b"m", b'{"model_id": "m\xff\xfe"}', "invalid_utf8"),
    ("invalid UTF-8, not JSON either", b"m", b"\xc3\x28", "invalid_utf8"),
    ("not JSON", b"m", b"hello", "invalid_json"),
    ("truncated JSON", b"m", b'{"model_id": "m", "features": {"x": 1', "invalid_json"),
    ("trailing garbage", b"m", b'{"model_id": "m"} trailing', "invalid_json"),
    ("two documents", b"m", b'{"model_id": "m"}{"model_id": "m"}', "invalid_json"),
    ("NaN token", b"m", b'{"model_id": "m", "features": {"x": NaN}}', "invalid_json"),
    ("Infinity token", b"m", b'{"model_id": "m", "features": {"x": Infinity}}', "invalid_json"),
    ("number overflowing a double", b"m", b'{"model_id": "m", "features": {"x": 1e999}}', "invalid_json"),
    ("JSON array", b"m", b"[1, 2]", "not_an_object"),
    ("JSON string", b"m", b'"m"', "not_an_object"),
    ("JSON number", b"m", b"42", "not_an_object"),
    ("JSON null", b"m", b"null", "not_an_object"),
    ("nested too deep", b"m", b'{"model_id": "m", "a": [[[[1]]]]}', "too_deep"),
    ("no model_id, no key", None, b'{"features": {"x": 1}}', "missing_model_id"),
    ("null model_id, empty key", b"", b'{"model_id": null}', "missing_model_id"),
    ("numeric model_id", b"m", b'{"model_id": 7}', "bad_model_id"),
    ("empty model_id", b"m", b'{"model_id": ""}', "bad_model_id"),
    ("model_id too long", b"m", b'{"model_id": "' + b"m" * 17 + b'"}', "bad_model_id"),
    ("no model_id, key not UTF-8", b"\xff", b'{"features": {}}', "bad_model_id"),
    ("features as a list", b"m", b'{"model_id": "m", "features": [1, 2]}', "bad_features"),
    ("features as a number", b"m", b'{"model_id": "m", "features": 3}', "bad_features"),
    ("a feature is an object", b"m", b'{"model_id": "m", "features": {"x": {"y": 1}}}', "bad_features"),
    ("a feature is a list", b"m", b'{"model_id": "m", "features": {"x": [1]}}', "bad_features"),
    ("too many features", b"m", b'{"features":{"a":1,"b":2,"c":3,"d":4}}', "too_many_features"),
    ("prediction is a list", b"m", b'{"model_id": "m", "prediction": [0.1, 0.9]}', "bad_field"),
    ("score is an object", b"m", b'{"model_id": "m", "score": {"p": 1}}', "bad_field"),
    ("label is a list", b"m", b'{"model_id": "m", "label": []}', "bad_field"),
    ("model_version is a bool", b"m", b'{"model_id": "m", "model_version": true}', "bad_field"),
    ("event_id is an object", b"m", b'{"model_id": "m", "event_id": {}}', "bad_field"),
]  # fmt: skip


def test_every_kind_has_a_record() -> None:
    assert {kind for *_, kind in BAD_RECORDS} == set(EVENT_RECORD_KINDS)
    assert set(BAD_RECORD_KINDS) == {
        "empty", "too_large", "invalid_utf8", "invalid_json", "not_an_object", "too_deep",
        "missing_model_id", "bad_model_id", "bad_features", "too_many_features", "bad_field",
        "bad_label", "misrouted_label",
    }  # fmt: skip
    # The kinds are the module's public constants.
    assert all(getattr(event_module, kind.upper()) == kind for kind in BAD_RECORD_KINDS)


@pytest.mark.parametrize(
    ("key", "value", "kind"), [r[1:] for r in BAD_RECORDS], ids=[r[0] for r in BAD_RECORDS]
)
def test_bad_record_kind(key: bytes | None, value: bytes | None, kind: str) -> None:
    with pytest.raises(BadRecord) as caught:
        EventDecoder(limits=LIMITS).decode(key, value)
    assert caught.value.kind == kind
    assert caught.value.message
    assert str(caught.value) == f"{kind}: {caught.value.message}"


def test_limits_are_inclusive_bounds() -> None:
    decoder = EventDecoder(limits=LIMITS)
    at_size = b'{"model_id": "m", "pad": "' + b"x" * (200 - 28) + b'"}'
    assert len(at_size) == 200
    assert decoder.decode(None, at_size).model_id == "m"
    assert decoder.decode(None, b'{"model_id": "m", "a": [[[1]]]}').model_id == "m"  # depth 4
    three = decoder.decode(None, b'{"model_id": "m", "features": {"a": 1, "b": 2, "c": 3}}')
    assert three.features == {"a": 1, "b": 2, "c": 3}
    assert decoder.decode(None, b'{"model_id": "' + b"m" * 16 + b'"}').model_id == "m" * 16


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    decoder = EventDecoder(limits=LIMITS)
    value = b'{"model_id": "m", "features": {"s": "[[[[[{{{{{\\"[[[["}}'
    assert decoder.decode(None, value).features == {"s": '[[[[[{{{{{"[[[['}


def test_a_full_event() -> None:
    value = (
        b'{"model_id": "fraud", "model_version": "v3", "event_id": "e-1", "timestamp": 1700000000,'
        b' "features": {"amount": 12.5, "country": "fr", "new": true, "age": null, "n": 3},'
        b' "prediction": "fraud", "score": 0.93, "label": "ok"}'
    )
    assert EventDecoder().decode(b"ignored", value) == InferenceEvent(
        model_id="fraud",
        model_version="v3",
        event_id="e-1",
        timestamp_ms=1_700_000_000_000,
        features={"amount": 12.5, "country": "fr", "new": True, "age": None, "n": 3},
        prediction="fraud",
        score=0.93,
        label="ok",
    )


def test_model_id_falls_back_to_the_key() -> None:
    decoder = EventDecoder()
    assert decoder.decode(b"churn-eu", b'{"score": 0.5}').model_id == "churn-eu"
    assert decoder.decode(b"churn-eu", b'{"model_id": null, "score": 0.5}').model_id == "churn-eu"
    assert decoder.decode("modèle".encode(), b"{}").model_id == "modèle"
    # The value's model_id wins over the key.
    assert decoder.decode(b"from-key", b'{"model_id": "from-value"}').model_id == "from-value"


def test_minimal_event_defaults() -> None:
    event = EventDecoder().decode(b"m", b"{}")
    assert event == InferenceEvent(model_id="m", features={})


def test_numeric_ids_are_kept_as_text() -> None:
    event = EventDecoder().decode(None, b'{"model_id": "m", "model_version": 3, "event_id": 12345}')
    assert (event.model_version, event.event_id) == ("3", "12345")


@pytest.mark.parametrize(
    ("timestamp", "expected_ms"),
    [
        (b"1700000000", 1_700_000_000_000),  # epoch seconds
        (b"1700000000.25", 1_700_000_000_250),  # fractional seconds
        (b"1700000000123", 1_700_000_000_123),  # epoch milliseconds
        (b'"2023-11-14T22:13:20Z"', 1_700_000_000_000),  # RFC 3339, UTC
        (b'"2023-11-14T22:13:20.123Z"', 1_700_000_000_123),
        (b'"2023-11-14T23:13:20+01:00"', 1_700_000_000_000),  # RFC 3339 with an offset
        (b'"2023-11-14T22:13:20"', None),  # no zone: ambiguous
        (b'"soon"', None),
        (b"-5", None),
        (b"true", None),
        (b"null", None),
        (b"[1]", None),
    ],
)
def test_timestamps(timestamp: bytes, expected_ms: int | None) -> None:
    value = b'{"model_id": "m", "timestamp": ' + timestamp + b"}"
    assert EventDecoder().decode(None, value).timestamp_ms == expected_ms


def test_parse_timestamp_directly() -> None:
    assert parse_timestamp_ms(0) == 0
    assert parse_timestamp_ms(float("nan")) is None
    assert parse_timestamp_ms(float("inf")) is None
    assert parse_timestamp_ms(99_999_999_999) == 99_999_999_999_000  # still seconds below the threshold
    assert parse_timestamp_ms(100_000_000_000) == 100_000_000_000  # milliseconds from the threshold on


def test_configured_field_locations() -> None:
    fields = EventFields(model_id="meta.model", features="inputs", prediction="out.pred", timestamp="meta.ts")
    decoder = EventDecoder(fields=fields)
    event = decoder.decode(
        None, b'{"meta": {"model": "m", "ts": 1700000000}, "inputs": {"x": 1}, "out": {"pred": 0.4}}'
    )
    assert (event.model_id, event.features, event.prediction, event.timestamp_ms) == (
        "m",
        {"x": 1},
        0.4,
        1_700_000_000_000,
    )
    # A path through a non-object is absent, not an error: the key is the fallback.
    assert decoder.decode(b"k", b'{"meta": 5}').model_id == "k"


def test_decoder_error_carries_a_readable_message() -> None:
    with pytest.raises(BadRecord, match=r"^not_an_object: the value is a JSON array, not an object$"):
        EventDecoder().decode(None, b"[]")
    with pytest.raises(BadRecord, match="features must be an object, got a JSON array"):
        EventDecoder().decode(None, b'{"model_id": "m", "features": []}')


# Labels-topic records (late labels): what a user would get wrong, and the one precise kind each gets.
BAD_LABELS: list[tuple[str, bytes | None, bytes | None, str]] = [
    ("no event_id", b"m", b'{"label": 1}', "bad_label"),
    ("null label", b"m", b'{"event_id": "e1", "label": null}', "bad_label"),
    ("no label", b"m", b'{"event_id": "e1"}', "bad_label"),
    ("label is an object", b"m", b'{"event_id": "e1", "label": {"y": 1}}', "bad_label"),
    ("event_id is a list", b"m", b'{"event_id": ["e1"], "label": 1}', "bad_label"),
    ("no model_id and no key", None, b'{"event_id": "e1", "label": 1}', "missing_model_id"),
    ("not JSON", b"m", b"event_id=e1,label=1", "invalid_json"),
    ("empty", b"m", b"", "empty"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "value", "kind"), [r[1:] for r in BAD_LABELS], ids=[r[0] for r in BAD_LABELS]
)
def test_bad_label_kind(key: bytes | None, value: bytes | None, kind: str) -> None:
    with pytest.raises(BadRecord) as caught:
        EventDecoder(limits=LIMITS).decode_label(key, value)
    assert caught.value.kind == kind
    assert caught.value.message


def test_a_label_takes_its_model_from_the_value_else_the_key() -> None:
    decoder = EventDecoder()
    from_key = decoder.decode_label(b"fraud", b'{"event_id": 17, "label": "legit"}')
    assert (from_key.model_id, from_key.event_id, from_key.label) == ("fraud", "17", "legit")
    from_value = decoder.decode_label(b"other", b'{"model_id": "churn", "event_id": "e", "label": 0}')
    assert (from_value.model_id, from_value.label) == ("churn", 0)
