"""Late labels: ground truth joined to earlier predictions by `event_id`, fed to the `error` signal in
prediction order. Whatever order and delay the labels come with, the error alerts are those of the same
labels sent inline; predictions that wait too long (record time, or queue length) expire and are counted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.labels import LabelPolicy
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalKind, SignalPolicy

START_MS = 1_780_000_000_000
STEP_MS = 1000  # one prediction per second of record time
MODEL = "m"


def error_only(labels: LabelPolicy | None) -> Policies:
    """Only the `error` signal, watched by a default ADWIN; late labels joined under `labels`."""
    defaults: dict[SignalKind, SignalPolicy] = {
        kind: SignalPolicy(enabled=kind == "error") for kind in SIGNAL_KINDS
    }
    return Policies(defaults=defaults, labels=labels)


@dataclass(frozen=True, slots=True)
class Prediction:
    event_id: str
    prediction: Scalar
    label: Scalar


LENGTH = 2400


def worse(i: int) -> bool:
    """The model does worse between these events."""
    return 800 <= i < 1600


def classifications(seed: int, length: int = LENGTH) -> list[Prediction]:
    """Fraud/legit predictions, wrong 10% of the time, 40% while `worse`."""
    rng = random.Random(seed)
    out = []
    for i in range(length):
        prediction = rng.choice(["fraud", "legit"])
        wrong = rng.random() < (0.4 if worse(i) else 0.1)
        label = ({"fraud": "legit", "legit": "fraud"}[prediction]) if wrong else prediction
        out.append(Prediction(f"e{i}", prediction, label))
    return out


def regressions(seed: int, length: int = LENGTH) -> list[Prediction]:
    """Numeric predictions whose absolute error grows while `worse`."""
    rng = random.Random(seed)
    out = []
    for i in range(length):
        prediction = rng.uniform(0.0, 100.0)
        error = rng.gauss(0.0, 4.0 if worse(i) else 1.0)
        out.append(Prediction(f"e{i}", prediction, prediction + error))
    return out


def prediction_event(i: int, p: Prediction, *, inline: bool) -> tuple[InferenceEvent, RecordSource]:
    event = InferenceEvent(
        model_id=MODEL, event_id=p.event_id, features={}, prediction=p.prediction,
        label=p.label if inline else None, timestamp_ms=START_MS + i * STEP_MS,
    )  # fmt: skip
    return event, RecordSource(topic="events", partition=0, offset=i, timestamp_ms=START_MS + i * STEP_MS)


def label_source(offset: int, at_ms: int | None = None) -> RecordSource:
    return RecordSource(topic="labels", partition=0, offset=offset, timestamp_ms=at_ms)


def inline_error_alerts(predictions: Sequence[Prediction]) -> list[bytes]:
    """The reference: every label inline in its event, no join at all."""
    monitor = Monitor(error_only(labels=None), config_version="v")
    alerts = []
    for i, p in enumerate(predictions):
        alerts += monitor.process(*prediction_event(i, p, inline=True))
    return [alert.to_json() for alert in alerts if alert.signal == "error"]


def delivery_plan(length: int, seed: int, max_delay: int) -> list[list[int]]:
    """For each event index, the labels delivered right after it: label i comes after prediction i, at most
    `max_delay` events later, in a shuffled order among the labels due at the same point."""
    rng = random.Random(seed)
    due: list[list[int]] = [[] for _ in range(length)]
    for i in range(length):
        due[min(i + rng.randint(0, max_delay), length - 1)].append(i)
    for batch in due:
        rng.shuffle(batch)
    return due


def late_error_alerts(
    predictions: Sequence[Prediction], plan: Sequence[Sequence[int]]
) -> tuple[list[bytes], Monitor]:
    monitor = Monitor(error_only(LabelPolicy()), config_version="v")
    alerts: list[DriftAlert] = []
    offset = 0
    for i, p in enumerate(predictions):
        alerts += monitor.process(*prediction_event(i, p, inline=False))
        for j in plan[i]:
            alerts += monitor.label(
                MODEL, predictions[j].event_id, predictions[j].label, label_source(offset)
            )
            offset += 1
    return [alert.to_json() for alert in alerts if alert.signal == "error"], monitor


CLASSIFICATIONS = classifications(seed=31)
REGRESSIONS = regressions(seed=32)
INLINE_ALERTS = {
    "classification": inline_error_alerts(CLASSIFICATIONS),
    "regression": inline_error_alerts(REGRESSIONS),
}


@pytest.mark.parametrize("kind", ["classification", "regression"])
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), max_delay=st.integers(min_value=0, max_value=60))
def test_property_late_labels_give_the_error_alerts_of_inline_labels(
    kind: str, seed: int, max_delay: int
) -> None:
    predictions = CLASSIFICATIONS if kind == "classification" else REGRESSIONS
    expected = INLINE_ALERTS[kind]
    assert expected, "River must detect the error-rate change for the property to mean anything"
    plan = delivery_plan(len(predictions), seed, max_delay)
    late, monitor = late_error_alerts(predictions, plan)
    assert late == expected
    assert monitor.labels["joined"] == len(predictions)
    assert monitor.models[MODEL].join is not None and not monitor.models[MODEL].join.queue


def test_a_prediction_past_the_ttl_expires_and_releases_the_ones_behind_it() -> None:
    ttl_ms = 5 * STEP_MS
    monitor = Monitor(error_only(LabelPolicy(ttl_ms=ttl_ms)), config_version="v")
    released: list[int] = []  # error values fed, by the index of the record that released them
    record = -1
    monitor.observer = lambda _m, _signal, _index, _value, _level: released.append(record)
    predictions = classifications(seed=1, length=10)
    for i, p in enumerate(predictions):
        record = i
        monitor.process(*prediction_event(i, p, inline=False))
        if i > 0:  # prediction 0 never gets its label; every other one at once
            monitor.label(MODEL, p.event_id, p.label, label_source(i))
    # Prediction 0 (t=0) holds the others back until a prediction more than 5 s newer arrives (t=6 s).
    assert monitor.labels["expired_predictions"] == 1
    assert released == [6] * 6 + [7, 8, 9]


def test_at_most_max_pending_predictions_wait() -> None:
    monitor = Monitor(error_only(LabelPolicy(max_pending=3)), config_version="v")
    for i, p in enumerate(classifications(seed=2, length=8)):
        event, source = prediction_event(i, p, inline=False)
        monitor.process(event, RecordSource(offset=source.offset))  # no record time: the TTL never applies
    assert monitor.labels["expired_predictions"] == 5
    join = monitor.models[MODEL].join
    assert join is not None and [entry.event_id for entry in join.queue] == ["e5", "e6", "e7"]


def test_a_label_that_comes_before_its_prediction_still_joins() -> None:
    p = Prediction("early", "fraud", "legit")
    monitor = Monitor(error_only(LabelPolicy()), config_version="v")
    fed: list[float] = []
    monitor.observer = lambda _m, _signal, _index, value, _level: fed.append(value)
    monitor.label(MODEL, p.event_id, p.label, label_source(0))
    assert fed == []
    monitor.process(*prediction_event(0, p, inline=False))
    assert monitor.labels["joined"] == 1
    assert fed == [1.0]


def test_a_label_that_never_meets_its_prediction_expires_and_is_counted() -> None:
    ttl_ms = 5 * STEP_MS
    monitor = Monitor(error_only(LabelPolicy(ttl_ms=ttl_ms)), config_version="v")
    monitor.label(MODEL, "ghost", "fraud", label_source(0, at_ms=START_MS))
    for i, p in enumerate(classifications(seed=3, length=10)):
        monitor.process(*prediction_event(i, p, inline=True))
        assert monitor.labels["labels_without_prediction"] == (1 if i > 5 else 0)
    assert monitor.labels["joined"] == 0 and monitor.labels["expired_predictions"] == 0


def test_late_labels_need_a_labels_policy() -> None:
    monitor = Monitor(error_only(labels=None), config_version="v")
    with pytest.raises(ValueError, match="labels policy"):
        monitor.label(MODEL, "e0", 1.0, label_source(0))


# ---- replays: `live` --------------------------------------------------------------------------------------


def test_a_live_late_label_releases_the_alerts_of_a_replayed_prediction() -> None:
    expected = INLINE_ALERTS["classification"]
    monitor = Monitor(error_only(LabelPolicy()), config_version="v")
    replayed: list[DriftAlert] = []
    for i, p in enumerate(CLASSIFICATIONS):
        replayed += monitor.process(*prediction_event(i, p, inline=False), live=False)
    assert replayed == []
    alerts = []
    for offset, p in enumerate(CLASSIFICATIONS):
        alerts += monitor.label(MODEL, p.event_id, p.label, label_source(offset))
    assert [alert.to_json() for alert in alerts] == expected


def test_a_replayed_prediction_releases_the_alerts_of_a_live_label_that_came_first() -> None:
    expected = INLINE_ALERTS["classification"]
    monitor = Monitor(error_only(LabelPolicy()), config_version="v")
    for offset, p in enumerate(CLASSIFICATIONS):
        assert monitor.label(MODEL, p.event_id, p.label, label_source(offset)) == []
    alerts = []
    for i, p in enumerate(CLASSIFICATIONS):
        alerts += monitor.process(*prediction_event(i, p, inline=False), live=False)
    assert [alert.to_json() for alert in alerts] == expected


def predict_and_label(monitor: Monitor, start: int, stop: int, *, live: bool) -> list[bytes]:
    """Each of CLASSIFICATIONS[start:stop], its label right after it."""
    alerts = []
    for i in range(start, stop):
        p = CLASSIFICATIONS[i]
        alerts += monitor.process(*prediction_event(i, p, inline=False), live=live)
        alerts += monitor.label(MODEL, p.event_id, p.label, label_source(i), live=live)
    return [alert.to_json() for alert in alerts]


def test_replayed_predictions_and_labels_alert_nothing_but_bring_the_detector_up_to_date() -> None:
    expected = INLINE_ALERTS["classification"]
    cut = orjson.loads(expected[0])["source"]["offset"] + 1  # just after the first error alert
    replayed = Monitor(error_only(LabelPolicy()), config_version="v")
    live = Monitor(error_only(LabelPolicy()), config_version="v")
    assert predict_and_label(replayed, 0, cut, live=False) == []
    before_cut = predict_and_label(live, 0, cut, live=True)
    assert before_cut == expected[: len(before_cut)] and before_cut
    after_cut = predict_and_label(replayed, cut, len(CLASSIFICATIONS), live=True)
    assert after_cut == predict_and_label(live, cut, len(CLASSIFICATIONS), live=True)
    assert before_cut + after_cut == expected
