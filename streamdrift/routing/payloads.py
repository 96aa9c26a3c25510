"""What a receiver is sent for one alert: Alertmanager's v2 alert, or a webhook's signed JSON body; and the
route's title and text filled in from the alert.

Alertmanager identifies an alert by its labels, so an episode is one Alertmanager alert: its labels are those
of the drift that opened it (`level: drift`, `episode_id`), and the episode's `resolved` alert is sent with
the same labels and `endsAt` now, which ends it. A drift is sent with `endsAt` `active_for_s` from now, so
that Alertmanager does not resolve it by itself after its `resolve_timeout` (5 minutes by default) while
the episode is still open. A warning is an Alertmanager alert of its own (`level: warning`) that expires
after `warning_for_s`: no resolved alert ends it. Re-sending an alert is harmless: Alertmanager merges
alerts with equal labels, which is its de-duplication.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import orjson

from streamdrift.config.routes import AlertmanagerReceiver, Route
from streamdrift.subscriber import Alert

SIGNATURE_HEADER = "X-Streamdrift-Signature"
ALERT_ID_HEADER = "X-Streamdrift-Alert-Id"
ALERTNAME = "StreamdriftDrift"
MODEL_SIGNAL = "model"  # the signal of a model-level alert


class _Fields(dict[str, object]):
    """A template's fields: a field the alert does not have reads as empty, never an error in the loop."""

    def __missing__(self, key: str) -> str:
        return ""


def template_fields(alert: Alert, route: str) -> Mapping[str, object]:
    source = alert.source
    return _Fields(
        alert_id=alert.alert_id, level=alert.level, model_id=alert.model_id,
        model_version=alert.model_version, signal=alert.signal, detector=alert.detector.type,
        observations=alert.observations, event_time=alert.event_time, detected_at=alert.detected_at,
        config_version=alert.config_version, episode_id=alert.episode_id, topic=source.topic,
        partition=source.partition, offset=source.offset, route=route,
    )  # fmt: skip


def fill(template: str, fields: Mapping[str, object]) -> str:
    """The template with its `{field}`s replaced (the routes file checked their names when it was read)."""
    return string.Formatter().vformat(template, (), fields)


def alertmanager_alert(alert: Alert, route: Route, receiver: AlertmanagerReceiver) -> dict[str, object]:
    """The alert as Alertmanager's v2 API takes it (POST /api/v2/alerts takes a list of these)."""
    fields = template_fields(alert, route.name)
    # A drift opens its own episode (episode_id = its alert_id); a warning outside an episode has none.
    episode = alert.episode_id or alert.alert_id
    opened_by = "drift" if alert.level == "resolved" else alert.level
    if alert.signal == MODEL_SIGNAL:
        severity = receiver.severity.model
    elif opened_by == "warning":
        severity = receiver.severity.warning
    else:
        severity = receiver.severity.signal
    labels = {
        **receiver.labels,
        "alertname": ALERTNAME,
        "model_id": alert.model_id,
        "signal": alert.signal,
        "level": opened_by,
        "severity": severity,
        "episode_id": episode,
    }
    at = _record_time(alert)
    latest = max(at, datetime.now(tz=UTC))  # a record time in the past (a backfill) never ends it at once
    if alert.level == "resolved":
        ends = latest
    else:  # warnings have no resolved alert of their own: they expire sooner
        hold = receiver.warning_for_s if alert.level == "warning" else receiver.active_for_s
        ends = latest + timedelta(seconds=hold)
    return {
        "labels": labels,
        "annotations": {
            "summary": fill(route.title, fields),
            "description": fill(route.text, fields),
            "alert_id": alert.alert_id,
        },
        # Alertmanager keeps the earlier startsAt of two alerts with the same labels: the drift's.
        "startsAt": _rfc3339(at),
        "endsAt": _rfc3339(ends),
    }


def webhook_body(alert: Alert, route: Route) -> bytes:
    fields = template_fields(alert, route.name)
    return orjson.dumps(
        {"route": route.name, "title": fill(route.title, fields), "text": fill(route.text, fields),
         "alert": alert.to_dict()}
    )  # fmt: skip


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes, as GitHub's and Stripe's webhooks sign theirs."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _record_time(alert: Alert) -> datetime:
    """The alert's record time (deterministic); its event time, or now, when a replay had neither."""
    for text in (alert.detected_at, alert.event_time):
        if text:
            return datetime.fromisoformat(text)
    return datetime.now(tz=UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
