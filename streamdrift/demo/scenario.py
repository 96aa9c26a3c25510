"""Synthetic inference events for a few models, each with one documented change at a known event.

Pure and seeded: the same seed gives the same events. Events are interleaved round-robin across models, so
model event `i` is the i-th event of that model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

BASE_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 50  # model event i has timestamp BASE_TIME_MS + i * STEP_MS, so alerts tell their model event


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One injected change: which model, which signal should catch it, from which model event on."""

    model_id: str
    signal: str
    at: int
    description: str


def changes(events_per_model: int) -> list[Change]:
    at = events_per_model // 2
    return [
        Change(
            model_id="fraud-v3", signal="feature:amount", at=at, description="mean shift of amount (+1.5 std)"
        ),
        Change(model_id="churn-v1", signal="feature:tenure", at=at, description="variance of tenure x3"),
        Change(model_id="credit-v2", signal="error", at=at, description="error rate 10% -> 30%"),
        Change(model_id="ranker-v5", signal="missing:income", at=at, description="missing income 2% -> 30%"),
    ]


def generate(events_per_model: int = 4000, seed: int = 7) -> Iterator[tuple[str, int, bytes]]:
    """Yield (model_id, model event index, JSON value) in production order."""
    rng = np.random.default_rng(seed)
    at = events_per_model // 2
    for i in range(events_per_model):
        after = i >= at
        for model_id, body in (
            ("fraud-v3", _fraud(rng, after)),
            ("churn-v1", _churn(rng, after)),
            ("credit-v2", _credit(rng, after)),
            ("ranker-v5", _ranker(rng, after)),
        ):
            event = {
                "model_id": model_id,
                "model_version": "1",
                "event_id": f"{model_id}-{i}",
                "timestamp": BASE_TIME_MS + i * STEP_MS,
                **body,
            }
            yield model_id, i, orjson.dumps(event)


def _fraud(rng: np.random.Generator, after: bool) -> dict[str, Any]:
    amount = rng.normal(80.0 if after else 50.0, 20.0)
    return {
        "features": {
            "amount": round(amount, 3),
            "country_risk": round(rng.uniform(), 4),
            "is_new": bool(rng.uniform() < 0.2),
        },
        "score": round(float(rng.beta(2, 8)), 4),
    }


def _churn(rng: np.random.Generator, after: bool) -> dict[str, Any]:
    tenure = rng.normal(0.0, 3.0 if after else 1.0)
    return {
        "features": {"tenure": round(tenure, 4), "logins": int(rng.poisson(5))},
        "score": round(float(rng.uniform()), 4),
    }


def _credit(rng: np.random.Generator, after: bool) -> dict[str, Any]:
    label = "default" if rng.uniform() < 0.3 else "repay"
    wrong = rng.uniform() < (0.3 if after else 0.1)
    prediction = ({"default": "repay", "repay": "default"}[label]) if wrong else label
    return {"features": {"income": round(rng.normal(50, 10), 2)}, "prediction": prediction, "label": label}


def _ranker(rng: np.random.Generator, after: bool) -> dict[str, Any]:
    income = None if rng.uniform() < (0.3 if after else 0.02) else round(rng.normal(50, 10), 2)
    features: dict[str, Any] = {"clicks": int(rng.poisson(3))}
    if income is not None:
        features["income"] = income
    return {"features": features, "score": round(float(rng.uniform()), 4)}


def model_event(alert: Mapping[str, Any]) -> int:
    """The model event index of the event that triggered an alert, from its `event_time`.

    >>> model_event({"event_time": "2026-01-01T00:00:01.000Z"})
    20
    """
    moment = datetime.fromisoformat(alert["event_time"])
    return (round(moment.timestamp() * 1000) - BASE_TIME_MS) // STEP_MS
