"""Batches of events through `Monitor.process_many` (plain events of steady models fed to River in one call,
lanes.py) give the same alerts, in the same order, and the same state as every value through the full feed,
whether a batch holds a few models or many."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.core import lanes
from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.lifecycle import ModelAlertPolicy
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalPolicy

START_MS = 1_780_000_000_000
FEW_MODELS = ("churn", "fraud", "price")
MANY_MODELS = tuple(f"model-{i}" for i in range(40))
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


def value_stream(seed: int, models: tuple[str, ...]) -> list[tuple[InferenceEvent, RecordSource]]:
    """Models interleaved at random. Their features shift (drifts inside columns), now and then are null,
    absent, NaN, an int, a bool or text (NaN and text end a plain prefix), new features appear, and a model
    sends a string prediction for a while."""
    rng = random.Random(seed)
    stream = []
    for i in range(EVENTS):
        model = rng.choice(models)
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
        if model == models[0] and 2500 < i < 2700:
            prediction = rng.choice(("stay", "leave"))
        event = InferenceEvent(
            model, features, model_version="v1", event_id=f"e{i}", timestamp_ms=START_MS + i * 1000,
            prediction=prediction, score=rng.random() if rng.random() > 0.01 else None,
        )  # fmt: skip
        stream.append((event, RecordSource(i, "events", 0, START_MS + i * 1000)))
    return stream


STREAMS = {"few models": value_stream(11, FEW_MODELS), "many models": value_stream(11, MANY_MODELS)}


def one_at_a_time(monitor: Monitor, chunk: list[tuple[InferenceEvent, RecordSource]]) -> list[bytes]:
    return [alert.to_json() for event, source in chunk for alert in monitor.process(event, source)]


def in_batches(monitor: Monitor, chunk: list[tuple[InferenceEvent, RecordSource]]) -> list[bytes]:
    """As the service runs a fetched batch: every event at once, alerts in record order."""
    events, sources = [event for event, _ in chunk], [source for _, source in chunk]
    found = monitor.process_many(events, sources.__getitem__)
    assert [index for index, _ in found] == sorted(index for index, _ in found)
    return [alert.to_json() for _, alerts in found for alert in alerts]


def chunks(
    stream: list[tuple[InferenceEvent, RecordSource]], sizes: Iterator[int]
) -> Iterator[list[tuple[InferenceEvent, RecordSource]]]:
    start = 0
    while start < len(stream):
        size = next(sizes)
        yield stream[start : start + size]
        start += size


@dataclass
class LaneUse:
    fast: int = 0  # events fed in one call with others
    replays: int = 0  # values answered again for an event a drift cut short


@pytest.fixture
def lane_use(monkeypatch: pytest.MonkeyPatch) -> LaneUse:
    use = LaneUse()
    feed = lanes.Queue.feed

    def counting_feed(queue: lanes.Queue) -> int | None:
        queued = list(queue.events)
        drifted = feed(queue)
        use.fast += len(queued) if drifted is None else queued.index(drifted)
        return drifted

    class CountingReplay(lanes.ReplayLane):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            use.replays += 1

    monkeypatch.setattr(lanes.Queue, "feed", counting_feed)
    monkeypatch.setattr(lanes, "ReplayLane", CountingReplay)
    return use


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_batches_publish_and_hold_exactly_what_the_full_feed_does(lane_use: LaneUse, name: str) -> None:
    stream = STREAMS[name]
    batched, full = Monitor(POLICIES, config_version="v"), Monitor(POLICIES, config_version="v")
    full.observer = lambda _model, _signal, _index, _value, _level: None  # every value the full way
    rng = random.Random(5)
    published: list[bytes] = []
    for chunk in chunks(stream, iter(lambda: rng.choice((1, 7, 30, 120, 400)), None)):
        expected = one_at_a_time(full, chunk)
        assert in_batches(batched, chunk) == expected
        published += expected
        for model_id in full.models:
            assert pickle.dumps(batched.export_model(model_id)) == pickle.dumps(full.export_model(model_id))
    # Drifts, the episodes they open and resolve, model-level alerts.
    assert sum(b'"level":"drift"' in alert for alert in published) > 10
    if stream is STREAMS["few models"]:  # the many have too few events each for an episode to resolve
        assert any(b'"level":"resolved"' in alert for alert in published)
        assert any(b'"signal":"model"' in alert for alert in published)
    # Most events went the fast way, and drifts cut queues short (their values answered again).
    assert lane_use.fast > EVENTS // 10
    assert lane_use.replays > 0


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=40))
def test_property_any_batching_gives_the_alerts_of_one_event_at_a_time(sizes: list[int]) -> None:
    for stream in STREAMS.values():
        _same_alerts_in_batches(stream, sizes)


def _same_alerts_in_batches(stream: list[tuple[InferenceEvent, RecordSource]], sizes: list[int]) -> None:
    expected = one_at_a_time(Monitor(POLICIES, config_version="v"), stream)
    batched = Monitor(POLICIES, config_version="v")
    got: list[bytes] = []
    for chunk in chunks(stream, iter([*sizes, len(stream)])):
        got += in_batches(batched, chunk)
    assert got == expected


@pytest.mark.parametrize(
    ("features", "plain"),
    [
        ({"a": 2.0, "b": 1.0}, True),
        ({"a": True, "b": 2}, True),  # a bool or an int: its float, as one event at a time feeds it
        ({"a": 1.0, "c": 2.0}, False),  # in place of a known feature: as many keys as before
        ({"a": 1.0, "b": 2.0, "c": 3.0}, False),
        ({"a": 1.0, "b": "text"}, False),
        ({"a": 1.0, "b": float("inf")}, False),
        ({"a": 1.0, "b": float("nan")}, False),
        ({"a": 1.0}, False),  # absent: its missing signal says 1
        ({"a": 1.0, "b": None}, False),
        ({"a": 1.0, "b": 10**400}, False),  # no float holds it
    ],
)
def test_an_event_is_plain_when_its_values_are_one_per_armed_lane(
    features: dict[str, Scalar], plain: bool
) -> None:
    monitor = Monitor(POLICIES, config_version="v")
    for i in range(60):
        event = InferenceEvent("m", {"a": float(i % 3), "b": 1.0}, prediction=0.5, score=0.25)
        monitor.process(event, RecordSource(i))
    shape = lanes.steady(monitor.models["m"])
    assert shape is not None
    values = lanes.plain_values(shape, InferenceEvent("m", features, prediction=0.5, score=0.25))
    assert (values is not None) == plain
    if plain:
        # Type mismatch, two missing flags, the features, prediction, score: lane for lane.
        assert values == (0.0, 0.0, 0.0, *features.values(), 0.5, 0.25)
    for other in (
        InferenceEvent("m", {"a": 1.0, "b": 1.0}, prediction=0.5, score=0.25, label=1.0),
        InferenceEvent("m", {"a": 1.0, "b": 1.0}, prediction="yes", score=0.25),
        InferenceEvent("m", {"a": 1.0, "b": 1.0}, score=0.25),
        InferenceEvent("m", {"a": 1.0, "b": 1.0}, prediction=0.5),
    ):
        assert lanes.plain_values(shape, other) is None
