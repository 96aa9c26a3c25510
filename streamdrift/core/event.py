"""Inference events: decoding and validating one record's key and value.

A record that cannot become an event raises `BadRecord` with a stable `kind` (the dead-letter header and the
metric label). A bad *value* inside a good event (a NaN feature, an unparsable timestamp) is not an error
here: the signal layer skips it and counts it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from streamdrift.errors import BadRecord

Scalar = float | int | bool | str | None

# Dead-letter kinds: part of the public contract (header `streamdrift.error.kind`, metric label).
EMPTY: Final = "empty"
TOO_LARGE: Final = "too_large"
INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
NOT_AN_OBJECT: Final = "not_an_object"
TOO_DEEP: Final = "too_deep"
MISSING_MODEL_ID: Final = "missing_model_id"
BAD_MODEL_ID: Final = "bad_model_id"
BAD_FEATURES: Final = "bad_features"
TOO_MANY_FEATURES: Final = "too_many_features"
BAD_FIELD: Final = "bad_field"
BAD_LABEL: Final = "bad_label"  # a labels-topic record without a usable event_id or label
MISROUTED_LABEL: Final = "misrouted_label"  # a label read where its model does not live

EVENT_RECORD_KINDS: Final = (
    EMPTY, TOO_LARGE, INVALID_UTF8, INVALID_JSON, NOT_AN_OBJECT, TOO_DEEP,
    MISSING_MODEL_ID, BAD_MODEL_ID, BAD_FEATURES, TOO_MANY_FEATURES, BAD_FIELD,
)  # fmt: skip
BAD_RECORD_KINDS: Final = (*EVENT_RECORD_KINDS, BAD_LABEL, MISROUTED_LABEL)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventLimits:
    """Bounds that keep one hostile record from costing unbounded memory or time."""

    max_record_bytes: int = 1_048_576
    max_json_depth: int = 32
    max_features: int = 1_000
    max_model_id_length: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFields:
    """Where each field lives in the JSON object; dotted paths reach into nested objects."""

    model_id: str = "model_id"
    model_version: str = "model_version"
    event_id: str = "event_id"
    timestamp: str = "timestamp"
    features: str = "features"
    prediction: str = "prediction"
    score: str = "score"
    label: str = "label"


# Not frozen, unlike the other value types: one is made per event, and a frozen dataclass's __init__ costs an
# object.__setattr__ call per field. Nothing mutates it. Not keyword-only either: the decoder passes its
# fields by position, at less than half the cost of keywords; everything else names them.
@dataclass(slots=True)
class InferenceEvent:
    """One prediction of one model, as the core sees it."""

    model_id: str
    features: Mapping[str, Scalar]
    model_version: str | None = None
    event_id: str | None = None
    timestamp_ms: int | None = None  # None when absent or unparsable
    prediction: Scalar = None
    score: Scalar = None
    label: Scalar = None  # ground truth when known; None means no error signal for this event


@dataclass(frozen=True, slots=True, kw_only=True)
class LateLabel:
    """A labels-topic record: the ground truth of an earlier prediction."""

    model_id: str
    event_id: str
    label: Scalar


class EventDecoder:
    """Turns a record's key and value into an `InferenceEvent`, or raises `BadRecord`.

    >>> decoder = EventDecoder()
    >>> decoder.decode(b"m1", b'{"features": {"x": 1.5}, "score": 0.9}').features
    {'x': 1.5}
    >>> decoder.decode(None, b'[1, 2]')
    Traceback (most recent call last):
    ...
    streamdrift.errors.BadRecord: not_an_object: the value is a JSON array, not an object
    """

    def __init__(self, fields: EventFields | None = None, limits: EventLimits | None = None) -> None:
        self.fields = fields or EventFields()
        self.limits = limits or EventLimits()
        self._paths = {
            name: tuple(getattr(self.fields, name).split(".")) for name in EventFields.__dataclass_fields__
        }
        # Flat paths are the common case; then one map() over the keys reads every field at C speed.
        self._flat = {name: path[0] for name, path in self._paths.items() if len(path) == 1}
        self._all_flat = len(self._flat) == len(self._paths)
        self._keys = tuple(self._paths[name][0] for name in _FIELD_ORDER)

    def decode(self, key: bytes | None, value: bytes | None) -> InferenceEvent:
        limits = self.limits
        doc, brackets = self._document(value)
        if self._all_flat:
            model_id, model_version, event_id, timestamp, features, prediction, score, label = map(
                doc.get, self._keys
            )
        else:
            model_id, model_version, event_id, timestamp, features, prediction, score, label = (
                self._get(doc, name) for name in _FIELD_ORDER
            )
        if type(model_id) is not str or not model_id or len(model_id) > limits.max_model_id_length:
            model_id = self._model_id(model_id, key)  # the key instead, or the precise error
        if features is None:
            features = {}
        elif type(features) is not dict:
            raise BadRecord(BAD_FEATURES, f"features must be an object, got {_describe(features)}")
        elif len(features) > limits.max_features:
            raise BadRecord(
                TOO_MANY_FEATURES, f"{len(features)} features, over the limit of {limits.max_features}"
            )
        # Every JSON object or array opens with a bracket (brackets inside strings only overcount): with no
        # bracket beyond the document's and the features', no feature or field can be one.
        if brackets > 1 + bool(features) or not self._all_flat:
            _check_scalars(features, prediction, score, label)
        if type(model_version) is not str and model_version is not None:
            model_version = _optional_str(model_version, "model_version")
        if type(event_id) is not str and event_id is not None:
            event_id = _optional_str(event_id, "event_id")
        if type(timestamp) is float and 0.0 <= timestamp < _MS_THRESHOLD:  # epoch seconds, the common form
            timestamp_ms: int | None = round(timestamp * 1000)
        else:
            timestamp_ms = parse_timestamp_ms(timestamp)
        return InferenceEvent(
            model_id, features, model_version, event_id, timestamp_ms, prediction, score, label
        )

    def decode_label(self, key: bytes | None, value: bytes | None) -> LateLabel:
        """A labels-topic record `{event_id, label, model_id?}` (the event's field names apply)."""
        doc, _brackets = self._document(value)
        model_id = self._model_id(self._get(doc, "model_id"), key)
        event_id, label = self._get(doc, "event_id"), self._get(doc, "label")
        if event_id is None:
            raise BadRecord(BAD_LABEL, f"a label needs an event_id ({self.fields.event_id!r})")
        if label is None:
            raise BadRecord(BAD_LABEL, f"a label needs a non-null label ({self.fields.label!r})")
        if isinstance(label, (dict, list)):
            raise BadRecord(BAD_LABEL, f"label must be a number, bool or string, got {_describe(label)}")
        try:
            event_id = _optional_str(event_id, "event_id")
        except BadRecord as error:
            raise BadRecord(BAD_LABEL, error.message) from None
        assert event_id is not None
        return LateLabel(model_id=model_id, event_id=event_id, label=label)

    def _document(self, value: bytes | None) -> tuple[dict[str, Any], int]:
        """The parsed JSON object within the limits, and how many brackets its text has."""
        limits = self.limits
        if not value:
            raise BadRecord(EMPTY, "the record has no value")
        if len(value) > limits.max_record_bytes:
            raise BadRecord(
                TOO_LARGE, f"the value is {len(value)} bytes, over the limit of {limits.max_record_bytes}"
            )
        brackets = value.count(b"{") + value.count(b"[")
        if brackets > limits.max_json_depth and _depth(value) > limits.max_json_depth:
            raise BadRecord(TOO_DEEP, f"JSON nesting deeper than {limits.max_json_depth}")
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise _not_json(value, exc) from None
        if type(doc) is not dict:
            raise BadRecord(NOT_AN_OBJECT, f"the value is {_describe(doc)}, not an object")
        return doc, brackets

    def _model_id(self, model_id: Any, key: bytes | None) -> str:
        """The value's model_id, else the record key."""
        limits = self.limits
        if model_id is None:
            if not key:
                raise BadRecord(MISSING_MODEL_ID, "no model_id in the value and no record key")
            try:
                model_id = key.decode()
            except UnicodeDecodeError:
                raise BadRecord(BAD_MODEL_ID, "no model_id in the value and the key is not UTF-8") from None
        if type(model_id) is not str or not model_id:
            raise BadRecord(BAD_MODEL_ID, f"model_id must be a non-empty string, got {_describe(model_id)}")
        if len(model_id) > limits.max_model_id_length:
            raise BadRecord(BAD_MODEL_ID, f"model_id is longer than {limits.max_model_id_length} characters")
        return model_id

    def _get(self, doc: dict[str, Any], name: str) -> Any:
        flat = self._flat.get(name)
        if flat is not None:
            return doc.get(flat)
        node: Any = doc
        for part in self._paths[name]:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node


_FIELD_ORDER: Final = (
    "model_id", "model_version", "event_id", "timestamp", "features", "prediction", "score", "label",
)  # fmt: skip


def _check_scalars(features: dict[str, Any], prediction: Any, score: Any, label: Any) -> None:
    """Features, prediction, score and label must be scalars (a number, bool, string or null)."""
    for name, feature in features.items():
        if isinstance(feature, (dict, list)):
            raise BadRecord(
                BAD_FEATURES,
                f"feature {name!r} must be a number, bool, string or null, got {_describe(feature)}",
            )
    for name, value in (("prediction", prediction), ("score", score), ("label", label)):
        if isinstance(value, (dict, list)):
            raise BadRecord(
                BAD_FIELD, f"{name} must be a number, bool, string or null, got {_describe(value)}"
            )


def _not_json(value: bytes, exc: orjson.JSONDecodeError) -> BadRecord:
    try:
        value.decode()
    except UnicodeDecodeError:
        return BadRecord(INVALID_UTF8, "the value is not valid UTF-8")
    return BadRecord(INVALID_JSON, f"the value is not valid JSON: {exc}")


def _depth(value: bytes) -> int:
    """Maximum bracket nesting of a JSON text, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in value:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return deepest


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a JSON array"
    return "an object"


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # numeric ids are common; keep them as their text
    raise BadRecord(BAD_FIELD, f"{name} must be a string, got {_describe(value)}")


_MS_THRESHOLD: Final = 100_000_000_000  # epoch seconds stay below this until the year 5138


def parse_timestamp_ms(value: Any) -> int | None:
    """Epoch seconds, epoch milliseconds or RFC 3339 text to epoch ms; None when absent or unreadable.

    >>> [parse_timestamp_ms(t) for t in (1700000000, 1700000000123, "2023-11-14T22:13:20Z", "soon")]
    [1700000000000, 1700000000123, 1700000000000, None]
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            return None
        return int(value) if value >= _MS_THRESHOLD else round(value * 1000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None  # a time without a zone is ambiguous; RFC 3339 requires one
        return round(parsed.timestamp() * 1000)
    return None
