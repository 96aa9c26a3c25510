"""Snapshots of the whole model state: snapshot -> restore -> continue gives the uninterrupted run's alerts,
byte for byte, wherever the cut falls: in a categorical warm-up, inside a drift episode, with a model-level
window open, with predictions waiting for their labels. And replays (`live=False`) bring a restored model up
to date without publishing again what was published before.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.categorical import CategoricalPolicy
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.labels import LabelPolicy
from streamdrift.core.lifecycle import ModelAlertPolicy
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalPolicy
from streamdrift.core.quality import RangePolicy
from streamdrift.core.tracks import ModelMonitor

START_MS = 1_780_000_000_000
STEP_MS = 1000
EVENTS = 2500
COUNTRIES = ("de", "fr", "it", "es", "pl")

# Everything on, with short warm-ups and episodes so that one stream exercises all of it.
POLICIES = Policies(
    defaults={kind: SignalPolicy(resolve_after=200) for kind in SIGNAL_KINDS},
    categorical=CategoricalPolicy(warmup=300, top_k=3),
    ranges=RangePolicy(warmup=300),
    model_alerts=ModelAlertPolicy(min_signals=2, window=300),
    labels=LabelPolicy(ttl_ms=60 * STEP_MS, max_pending=500),
)


@dataclass(frozen=True, slots=True)
class Prediction:
    event: InferenceEvent
    source: RecordSource


@dataclass(frozen=True, slots=True)
class Label:
    model_id: str
    event_id: str
    label: Scalar
    source: RecordSource


Record = Prediction | Label


def fraud_stream(seed: int) -> list[Record]:
    """One fraud model's events, with shifts in two numeric features and in the country mix, a few type
    mismatches and missing values, and labels on their own topic: mostly up to 40 events late, now and then
    just before their prediction, a few never."""
    rng = random.Random(seed)
    events: list[Prediction] = []
    labels: list[Scalar] = []
    for i in range(EVENTS):
        at_ms = START_MS + i * STEP_MS
        amount: Scalar = rng.gauss(65.0 if i >= 1000 else 50.0, 10.0)
        if rng.random() < 0.01:
            amount = "n/a"
        age: Scalar = None if rng.random() < 0.02 else rng.gauss(48.0 if i >= 1100 else 40.0, 5.0)
        weights = (5, 3, 1, 1, 1) if i < 1200 else (1, 3, 1, 1, 5)
        country = rng.choices(COUNTRIES, weights=weights)[0]
        if i == 2000:
            country = "lu"  # a category the warm-up never saw
        prediction = "fraud" if rng.random() < 0.1 else "legit"
        wrong = rng.random() < (0.3 if i >= 1500 else 0.05)
        labels.append(({"fraud": "legit", "legit": "fraud"}[prediction]) if wrong else prediction)
        event = InferenceEvent(
            model_id="fraud", model_version="v7", event_id=f"e{i}", timestamp_ms=at_ms,
            features={"amount": amount, "age": age, "country": country}, prediction=prediction,
            score=rng.random(),
        )  # fmt: skip
        events.append(
            Prediction(event, RecordSource(topic="events", partition=0, offset=i, timestamp_ms=at_ms))
        )
    due: dict[int, list[int]] = {}  # event index -> the labels delivered right after it
    for i in range(EVENTS):
        if rng.random() > 0.03:
            due.setdefault(max(0, i + rng.randint(-2, 40)), []).append(i)
    records: list[Record] = []
    label_offset = 0
    for i, prediction_record in enumerate(events):
        records.append(prediction_record)
        for j in due.get(i, []):
            source = RecordSource(topic="labels", offset=label_offset, timestamp_ms=START_MS + i * STEP_MS)
            records.append(Label("fraud", f"e{j}", labels[j], source))
            label_offset += 1
    return records


RECORDS = fraud_stream(seed=2024)


def apply(monitor: Monitor, record: Record, *, live: bool = True) -> list[DriftAlert]:
    if isinstance(record, Prediction):
        return monitor.process(record.event, record.source, live=live)
    return monitor.label(record.model_id, record.event_id, record.label, record.source, live=live)


def run(monitor: Monitor, records: Sequence[Record], *, live: bool = True) -> list[bytes]:
    return [alert.to_json() for record in records for alert in apply(monitor, record, live=live)]


def restored_from(monitor: Monitor) -> Monitor:
    """A fresh monitor holding every model of `monitor`, through a pickled snapshot."""
    fresh = Monitor(POLICIES, config_version="v")
    for model_id in monitor.models:
        state = pickle.loads(pickle.dumps(monitor.export_model(model_id)))
        assert fresh.restore_model(model_id, state) == 0
    return fresh


@cache
def uninterrupted() -> tuple[tuple[bytes, ...], ...]:
    """The alerts of each record of an uninterrupted run."""
    monitor = Monitor(POLICIES, config_version="v")
    return tuple(tuple(alert.to_json() for alert in apply(monitor, record)) for record in RECORDS)


def alerts_from(start: int) -> list[bytes]:
    return [alert for per_record in uninterrupted()[start:] for alert in per_record]


def cut_and_continue(cut: int) -> list[bytes]:
    first = Monitor(POLICIES, config_version="v")
    alerts = run(first, RECORDS[:cut])
    return alerts + run(restored_from(first), RECORDS[cut:])


def alert_field(alert: bytes, name: str) -> str:
    value = orjson.loads(alert)[name]
    assert isinstance(value, str)
    return value


def test_the_stream_exercises_every_kind_of_alert() -> None:
    signals = {alert_field(alert, "signal").split(":")[0] for alert in alerts_from(0)}
    levels = {alert_field(alert, "level") for alert in alerts_from(0)}
    assert {"feature", "category", "new_category", "error", "model"} <= signals
    assert {"drift", "resolved"} <= levels


# What a cut should land in, read off the state of the uninterrupted monitor after a record.
STATES: dict[str, Callable[[ModelMonitor], bool]] = {
    "categorical warm-up": lambda model: any(
        watch.profile is not None and watch.profile.warming_up for watch in model.features.values()
    ),
    "open episode, open window and waiting predictions": lambda model: (
        model.window.opened_at is not None
        and model.join is not None
        and any(not entry.labelled for entry in model.join.queue)
        and any(
            track is not None and track.episode is not None
            for watch in model.features.values()
            for track in (watch.numeric, *watch.categories.values(), watch.other)
        )
    ),
    "a label waiting for its prediction": lambda model: model.join is not None and bool(model.join.early),
}


def first_cuts_in_each_state() -> dict[str, int]:
    monitor = Monitor(POLICIES, config_version="v")
    found: dict[str, int] = {}
    for i, record in enumerate(RECORDS):
        apply(monitor, record)
        for state, holds in STATES.items():
            if state not in found and holds(monitor.models["fraud"]):
                found[state] = i + 1
    return found


def test_cuts_in_every_interesting_state_continue_exactly_as_the_uninterrupted_run() -> None:
    cuts = first_cuts_in_each_state()
    missing = set(STATES) - set(cuts)
    assert not missing, f"the stream never reaches: {missing}"
    for cut in cuts.values():
        assert cut_and_continue(cut) == alerts_from(0)


@settings(max_examples=15, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(RECORDS)))
def test_property_snapshot_restore_continue_is_the_uninterrupted_run(cut: int) -> None:
    assert cut_and_continue(cut) == alerts_from(0)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_property_a_replay_after_a_restore_publishes_exactly_what_was_not_published(
    data: st.DataObject,
) -> None:
    """Snapshot after record `snapshot`, crash after record `crash`: the restored model replays the records
    in between with live=False, then goes on live. It returns exactly the uninterrupted run's alerts of the
    records from `crash` on: nothing twice, nothing lost (late labels included)."""
    snapshot = data.draw(st.integers(min_value=0, max_value=len(RECORDS)), label="snapshot")
    crash = data.draw(st.integers(min_value=snapshot, max_value=len(RECORDS)), label="crash")
    before = Monitor(POLICIES, config_version="v")
    run(before, RECORDS[:snapshot])
    after = restored_from(before)
    assert run(after, RECORDS[snapshot:crash], live=False) == []
    assert run(after, RECORDS[crash:]) == alerts_from(crash)


def test_a_replayed_record_updates_state_but_returns_no_alerts() -> None:
    cut = len(RECORDS) // 2
    assert alerts_from(0) != alerts_from(cut), "the replayed half must hold alerts"
    monitor = Monitor(POLICIES, config_version="v")
    assert run(monitor, RECORDS[:cut], live=False) == []
    assert run(monitor, RECORDS[cut:]) == alerts_from(cut)


def test_armed_tracks_publish_and_hold_exactly_what_the_full_feed_does() -> None:
    """A calm signal's values go straight to River (SignalTrack.arm); an observer turns that off, so that it
    sees every value. Both ways must give the same alerts and the same state, at every point of the stream."""
    armed, full = Monitor(POLICIES, config_version="v"), Monitor(POLICIES, config_version="v")
    full.observer = lambda _model, _signal, _index, _value, _level: None
    used_the_lane = False
    for i, record in enumerate(RECORDS):
        assert [a.to_json() for a in apply(armed, record)] == [a.to_json() for a in apply(full, record)]
        tracks = list(armed.models["fraud"].each_track())
        used_the_lane = used_the_lane or any(track.fast is not None for track in tracks)
        if i % 250 == 0 or i == len(RECORDS) - 1:
            assert pickle.dumps(armed.export_model("fraud")) == pickle.dumps(full.export_model("fraud"))
    assert used_the_lane
    assert all(track.fast is None for track in full.models["fraud"].each_track())
