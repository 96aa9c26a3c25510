"""Categorical features: warm-up counting, one 0/1 stream per frequent category, new-category alerts, and
memory that stays bounded whatever the cardinality. Expected drifts come from River's ADWIN fed the same 0/1
streams offline; nothing is hard-coded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.categorical import CategoricalPolicy, CategoryProfile
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalKind, SignalPolicy
from tests.river_runs import FedValues, adwin_drifts

PAYMENT_METHODS = ("card", "cash", "crypto", "transfer", "voucher")


def categorical_only(**categorical: Any) -> Policies:
    """Only the `category:*` signals (and new-category alerts), watched by a default ADWIN."""
    defaults: dict[SignalKind, SignalPolicy] = {
        kind: SignalPolicy(enabled=kind == "categorical") for kind in SIGNAL_KINDS
    }
    return Policies(defaults=defaults, categorical=CategoricalPolicy(**categorical))


def top_categories(warmup_values: Sequence[str], top_k: int) -> list[str]:
    """The spec's ranking: most frequent first, ties broken by value."""
    ranked = sorted(Counter(warmup_values).items(), key=lambda item: (-item[1], item[0]))
    return [value for value, _count in ranked[:top_k]]


def payment_methods(seed: int, length: int = 4000, change_at: int = 2000) -> list[str]:
    """A category mix that moves at `change_at`: cards give way to vouchers."""
    rng = np.random.default_rng(seed)
    before, after = [0.5, 0.25, 0.12, 0.08, 0.05], [0.2, 0.25, 0.12, 0.03, 0.4]
    return [str(rng.choice(PAYMENT_METHODS, p=before if i < change_at else after)) for i in range(length)]


def run(
    monitor: Monitor, rows: Sequence[Mapping[str, Scalar]], fed: FedValues | None = None
) -> list[tuple[int, DriftAlert]]:
    """Row i as the features of the event at offset i of model "m"; the alerts with their event index."""
    out = []
    for i, features in enumerate(rows):
        if fed is not None:
            fed.event = i
        event = InferenceEvent(model_id="m", features=features)
        out.extend((i, alert) for alert in monitor.process(event, RecordSource(topic="t", offset=i)))
    return out


def test_the_top_categories_and_other_get_0_1_streams_from_the_value_after_the_warm_up() -> None:
    values = payment_methods(seed=3, length=1200)
    warmup, top_k = 500, 3
    monitor = Monitor(categorical_only(top_k=top_k, warmup=warmup), config_version="v")
    fed = FedValues(monitor)
    run(monitor, [{"method": value} for value in values], fed)

    top = top_categories(values[:warmup], top_k)
    assert set(fed.by_signal) == {f"category:method={value}" for value in top} | {"category:method=_other"}
    after_warmup = list(enumerate(values))[warmup:]
    for category in top:
        expected = [(i, float(value == category)) for i, value in after_warmup]
        assert fed.by_signal[f"category:method={category}"] == expected
    expected_other = [(i, float(value not in top)) for i, value in after_warmup]
    assert fed.by_signal["category:method=_other"] == expected_other


def test_equal_counts_rank_by_value() -> None:
    warmup_values = ["b", "c", "a", "c", "b", "a", "d"]  # a, b and c twice each
    monitor = Monitor(categorical_only(top_k=2, warmup=len(warmup_values)), config_version="v")
    fed = FedValues(monitor)
    run(monitor, [{"x": value} for value in [*warmup_values, "c"]], fed)
    assert top_categories(warmup_values, 2) == ["a", "b"]
    assert fed.by_signal == {
        "category:x=a": [(7, 0.0)],
        "category:x=b": [(7, 0.0)],
        "category:x=_other": [(7, 1.0)],
    }


def test_category_drifts_are_rivers_adwin_drifts_on_each_0_1_stream() -> None:
    values = payment_methods(seed=11)
    warmup, top_k = 500, 3
    monitor = Monitor(categorical_only(top_k=top_k, warmup=warmup), config_version="v")
    alerts = run(monitor, [{"method": value} for value in values])

    top = top_categories(values[:warmup], top_k)
    streamed = values[warmup:]
    expected: dict[str, list[int]] = {
        f"category:method={category}": [
            warmup + i for i in adwin_drifts([float(value == category) for value in streamed])
        ]
        for category in top
    }
    expected["category:method=_other"] = [
        warmup + i for i in adwin_drifts([float(value not in top) for value in streamed])
    ]
    assert any(expected.values()), "River must detect the shift for the test to mean anything"
    found: dict[str, list[int]] = {signal: [] for signal in expected}
    for i, alert in alerts:
        if alert.level == "drift":  # episodes also resolve: tested in test_lifecycle.py
            assert alert.detector_type == "adwin"
            found[alert.signal].append(i)
    assert found == expected


def test_a_value_unseen_in_the_warm_up_raises_one_new_category_alert_the_first_time_only() -> None:
    warmup = 300
    rng = np.random.default_rng(5)
    values = [str(rng.choice(["card", "cash", "crypto"])) for _ in range(1000)]
    values[warmup] = "iou"  # the very first value after the warm-up
    values[600] = values[650] = "iou"
    values[700] = values[900] = "gold"
    monitor = Monitor(categorical_only(top_k=2, warmup=warmup), config_version="v")
    fed = FedValues(monitor)
    alerts = [(i, a) for i, a in run(monitor, [{"method": v} for v in values], fed) if a.level == "drift"]
    new = [(i, alert) for i, alert in alerts if alert.signal == "new_category:method"]

    assert [(i, alert.stats["value"]) for i, alert in new] == [(warmup, "iou"), (700, "gold")]
    for _i, alert in new:
        assert alert.detector_type == "new_category"
        assert alert.episode_id == alert.alert_id
    # "crypto" is known from the warm-up without being a top category: not new, counted as _other.
    assert "crypto" in values[:warmup]
    assert (warmup, 1.0) in fed.by_signal["category:method=_other"]


def test_new_category_alerts_can_be_turned_off() -> None:
    values = ["a", "b"] * 100 + ["z"]
    monitor = Monitor(categorical_only(warmup=200, new_category=False), config_version="v")
    assert not [alert for _i, alert in run(monitor, [{"x": value} for value in values])]


def test_an_id_like_feature_turns_new_category_detection_off_and_keeps_memory_bounded() -> None:
    max_categories, warmup = 50, 200
    monitor = Monitor(categorical_only(warmup=warmup, max_categories=max_categories), config_version="v")
    fed = FedValues(monitor)
    largest = 0
    alerts = []
    for i in range(5000):  # every value distinct
        fed.event = i
        event = InferenceEvent(model_id="m", features={"user": f"u{i}"})
        alerts += monitor.process(event, RecordSource(offset=i))
        profile = monitor.models["m"].features["user"].profile
        assert profile is not None
        largest = max(largest, len(profile.counts or ()), len(profile.known or ()))
    assert not [alert for alert in alerts if alert.signal.startswith("new_category:")]
    assert largest <= max_categories + 1
    # Its streams still work: every value after the warm-up is one of "the others".
    assert fed.by_signal["category:user=_other"] == [(i, 1.0) for i in range(warmup, 5000)]


def first_occurrences(values: Sequence[str], known: set[str]) -> list[str]:
    """The values not in `known`, each at its first occurrence, in order."""
    seen = set(known)
    found = []
    for value in values:
        if value not in seen:
            seen.add(value)
            found.append(value)
    return found


@settings(max_examples=80, deadline=None)
@given(
    max_categories=st.integers(min_value=1, max_value=12),
    warmup=st.integers(min_value=1, max_value=40),
    codes=st.lists(st.integers(min_value=0, max_value=30), max_size=150),
)
def test_property_new_categories_and_bounded_memory(
    max_categories: int, warmup: int, codes: list[int]
) -> None:
    values = [f"v{code}" for code in codes]
    policy = CategoricalPolicy(warmup=warmup, max_categories=max_categories)
    monitor = Monitor(categorical_only(warmup=warmup, max_categories=max_categories), config_version="v")
    new_values = []
    for i, value in enumerate(values):
        event = InferenceEvent(model_id="m", features={"x": value})
        for alert in monitor.process(event, RecordSource(offset=i)):
            if alert.signal == "new_category:x":
                assert i >= warmup
                new_values.append(alert.stats["value"])
        profile = monitor.models["m"].features["x"].profile
        assert isinstance(profile, CategoryProfile) and profile.policy == policy
        assert len(profile.counts or ()) <= max_categories + 1
        assert len(profile.known or ()) <= max_categories + 1

    warmup_values = set(values[:warmup])
    unseen = first_occurrences(values[warmup:], warmup_values)
    # Alerts name values unseen in the warm-up, each once, at its first occurrence, in order...
    assert new_values == unseen[: len(new_values)]
    if len(warmup_values) > max_categories:
        assert new_values == []  # ... none for a feature with too many categories in its warm-up ...
    elif len(warmup_values) + len(unseen) <= max_categories:
        assert new_values == unseen  # ... and every one of them while the categories fit.
