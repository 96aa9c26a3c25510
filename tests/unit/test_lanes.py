"""Batches of events through `Monitor.process_batch` (armed tracks fed a column at a time, columns.py) give
the same alerts, in the same order, and the same state as every value through the full feed."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamdrift.core.monitor as monitor_module
from streamdrift.core import columns
from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.lifecycle import ModelAlertPolicy
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalPolicy

START_MS = 1_780_000_000_000
MODELS = ("churn", "fraud", "price")
EVENTS = 6000

# The default signals (out-of-range off: bounds take every event the full way), with episodes, cooldowns
# and model-level windows, so that a drift inside a column goes through all of them.
POLICIES = Policies(
    defaults={
        kind: SignalPolicy(enabled=kind != "out_of_range", resolve_after=150, cooldown=40)
        for kind in SIGNAL_KINDS
    },
    model_alerts=ModelAlertPolicy(min_signals=2, window=200),
)


def value_stream(seed: int) -> list[tuple[InferenceEvent, RecordSource]]:
    """Three models interleaved. Their features shift (drifts inside columns), now and then are null,
    absent, NaN, an int, a bool or text (NaN and text end a plain prefix), new features appear, and a model
    sends a string prediction for a while."""
    rng = random.Random(seed)
    stream = []
    for i in range(EVENTS):
        model = rng.choice(MODELS)
        shift = 4.0 if (i // 1500) % 2 else 0.0
        features: dict[str, Scalar] = {f"x{k}": rng.gauss(shift if k < 2 else 0.0, 1.0) for k in range(4)}
        roll = rng.random()
        if roll < 0.01:
            features["x1"] = None
        elif roll < 0.012:
            features["x2"] = float("nan")
        elif roll < 0.014:
            features["x3"] = "n/a"
        elif roll < 0.016:
            features["x0"] = 3
        elif roll < 0.018:
            features["x1"] = True
        if rng.random() < 0.02:
            del features["x3"]
        elif rng.random() < 0.003:
            features[f"renamed{i}"] = features.pop("x3")  # a new feature, and as many keys as before
        if i > 4000:
            features["late"] = rng.gauss(0.0, 1.0)
        prediction: Scalar = rng.gauss(shift, 1.0)
        if model == "churn" and 2500 < i < 2700:
            prediction = rng.choice(("stay", "leave"))
        event = InferenceEvent(
            model, features, model_version="v1", event_id=f"e{i}", timestamp_ms=START_MS + i * 1000,
            prediction=prediction, score=rng.random() if rng.random() > 0.01 else None,
        )  # fmt: skip
        stream.append((event, RecordSource(i, "events", 0, START_MS + i * 1000)))
    return stream


STREAM = value_stream(seed=11)


def one_at_a_time(monitor: Monitor, chunk: list[tuple[InferenceEvent, RecordSource]]) -> list[bytes]:
    return [alert.to_json() for event, source in chunk for alert in monitor.process(event, source)]


def in_batches(monitor: Monitor, chunk: list[tuple[InferenceEvent, RecordSource]]) -> list[bytes]:
    """As the service runs a fetched batch: grouped by model, alerts put back in record order."""
    by_model: dict[str, list[int]] = {}
    for index, (event, _) in enumerate(chunk):
        by_model.setdefault(event.model_id, []).append(index)
    found = []
    for model_id, indexes in by_model.items():
        events, sources = [chunk[i][0] for i in indexes], [chunk[i][1] for i in indexes]
        for at, alerts in monitor.process_batch(model_id, events, sources.__getitem__):
            found.append((indexes[at], alerts))
    found.sort(key=lambda pair: pair[0])
    return [alert.to_json() for _, alerts in found for alert in alerts]


def chunks(sizes: Iterator[int]) -> Iterator[list[tuple[InferenceEvent, RecordSource]]]:
    start = 0
    while start < len(STREAM):
        size = next(sizes)
        yield STREAM[start : start + size]
        start += size


@dataclass
class ColumnUse:
    taken: int = 0  # events the columns took whole
    replays: int = 0  # tracks that replayed a column a drift cut short


@pytest.fixture
def column_use(monkeypatch: pytest.MonkeyPatch) -> ColumnUse:
    use = ColumnUse()
    take = columns.take_columns

    def counting_take(*args: Any) -> int:
        taken = take(*args)
        use.taken += taken
        return taken

    class CountingReplay(columns.ReplayLane):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            use.replays += 1

    monkeypatch.setattr(monitor_module, "take_columns", counting_take)
    monkeypatch.setattr(columns, "ReplayLane", CountingReplay)
    return use


def test_batches_publish_and_hold_exactly_what_the_full_feed_does(column_use: ColumnUse) -> None:
    batched, full = Monitor(POLICIES, config_version="v"), Monitor(POLICIES, config_version="v")
    full.observer = lambda _model, _signal, _index, _value, _level: None  # every value the full way
    rng = random.Random(5)
    published: list[bytes] = []
    for chunk in chunks(iter(lambda: rng.choice((1, 7, 30, 120, 400)), None)):
        expected = one_at_a_time(full, chunk)
        assert in_batches(batched, chunk) == expected
        published += expected
        for model_id in full.models:
            assert pickle.dumps(batched.export_model(model_id)) == pickle.dumps(full.export_model(model_id))
    # Drifts, the episodes they open and resolve, model-level alerts.
    assert sum(b'"level":"drift"' in alert for alert in published) > 10
    assert any(b'"level":"resolved"' in alert for alert in published)
    assert any(b'"signal":"model"' in alert for alert in published)
    # The columns were used, whole, and cut short by a drift (their tracks replayed).
    assert column_use.taken > EVENTS // 5
    assert column_use.replays > 0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=40))
def test_property_any_batching_gives_the_alerts_of_one_event_at_a_time(sizes: list[int]) -> None:
    expected = one_at_a_time(Monitor(POLICIES, config_version="v"), STREAM)
    batched = Monitor(POLICIES, config_version="v")
    got: list[bytes] = []
    for chunk in chunks(iter([*sizes, len(STREAM)])):
        got += in_batches(batched, chunk)
    assert got == expected


@pytest.mark.parametrize(
    ("cut_at", "features"),
    [
        (12, {"a": 1.0, "c": 2.0}),  # in place of a known feature: as many keys as before
        (12, {"a": 1.0, "b": 2.0, "c": 3.0}),
        (12, {"a": 1.0, "b": "text"}),
        (12, {"a": 1.0, "b": float("inf")}),
        (12, {"a": 1.0, "b": float("nan")}),
        (20, {"a": True, "b": 2}),  # a bool or an int: its float, as one event at a time feeds it
        (20, {"a": 1.0}),  # absent: only its missing signal, which a column takes
        (20, {"a": 1.0, "b": None}),
    ],
)
def test_the_columns_take_the_events_before_the_first_that_needs_more(
    cut_at: int, features: dict[str, Scalar]
) -> None:
    monitor = Monitor(POLICIES, config_version="v")
    for i in range(60):
        event = InferenceEvent("m", {"a": float(i % 3), "b": 1.0}, prediction=0.5, score=0.25)
        monitor.process(event, RecordSource(i))
    calm = InferenceEvent("m", {"a": 2.0, "b": 1.0}, prediction=0.5, score=0.25)
    odd = InferenceEvent("m", features, prediction=0.5, score=0.25)
    assert columns.take_columns(monitor.models["m"], [calm] * 12 + [odd] + [calm] * 7) == cut_at
