"""Alerts as one line a person can read (`alerts tail`, the demo)."""

from __future__ import annotations

from typing import Any


def format_alert(alert: dict[str, Any]) -> str:
    """One line a person can read.

    >>> format_alert({"level": "drift", "model_id": "m", "signal": "score", "detector": {"type": "adwin"},
    ...               "source": {"topic": "t", "partition": 0, "offset": 9}, "observations": 10,
    ...               "detected_at": "2026-01-01T00:00:00.000Z"})
    '2026-01-01T00:00:00.000Z  DRIFT     m  score  adwin  t/0@9  after 10 obs'
    >>> format_alert({"level": "drift", "model_id": "m", "signal": "model", "detector": {"type": "model"},
    ...               "source": {"topic": "t", "partition": 0, "offset": 9}, "observations": 500,
    ...               "detected_at": None, "signals": ["feature:a", "feature:b", "feature:c"]})
    'None  DRIFT     m  model  model  t/0@9  after 500 obs  feature:a, feature:b, feature:c'
    """
    source = alert.get("source") or {}
    where = f"{source.get('topic')}/{source.get('partition')}@{source.get('offset')}"
    detector = str((alert.get("detector") or {}).get("type"))
    parts = [
        str(alert.get("detected_at")),
        f"{str(alert.get('level')).upper():<8}",
        str(alert.get("model_id")),
        str(alert.get("signal")),
        detector,
        where,
        f"after {alert.get('observations')} obs",
    ]
    if alert.get("signals"):  # a model-level alert: what drifted together
        parts.append(", ".join(alert["signals"]))
    stats = alert.get("stats") or {}
    if detector == "new_category":
        parts.append(f"new value {stats.get('value')!r}")
    segment = stats.get("segment")
    if isinstance(segment, dict):  # a reference window of one segment's events
        parts.append(f"segment {segment.get('feature')}={segment.get('value')}")
    verdict = stats.get("reference")
    if isinstance(verdict, dict):  # why an episode ended, by the latest reference window
        parts.append(f"ended: {verdict.get('ended')} ({verdict.get('test')} {verdict.get('statistic'):.3g})")
    return "  ".join(parts)
