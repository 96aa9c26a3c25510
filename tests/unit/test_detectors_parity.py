"""streamdrift detects exactly what River detects, fed the same values offline.

Expected indices always come from River's own detector, run here on the same data; nothing is hard-coded.
Each case also asserts River found at least one change, so a streamdrift that never alerts cannot pass.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from river.drift import ADWIN, KSWIN, PageHinkley
from river.drift.binary import DDM, EDDM, FHDDM, HDDMA, HDDMW

from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.detectors import DETECTOR_KINDS, DetectorSpec
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import NON_FINITE, Monitor
from streamdrift.core.plan import Policies, SignalPolicy
from streamdrift.replay import ReplayStats, replay
from tests.river_runs import run_river

SEED = 20240607
CHANGE_AT = 1000
LENGTH = 2000


def numeric_stream(seed: int = SEED) -> list[float]:
    """N(0, 1) for CHANGE_AT values, then N(2, 1)."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0.0, 1.0, CHANGE_AT), rng.normal(2.0, 1.0, LENGTH - CHANGE_AT)])
    return [float(v) for v in values]


def binary_stream(seed: int = SEED) -> list[float]:
    """Bernoulli(0.1) errors for CHANGE_AT values, then Bernoulli(0.5)."""
    rng = random.Random(seed)
    return [1.0 if rng.random() < (0.1 if i < CHANGE_AT else 0.5) else 0.0 for i in range(LENGTH)]


SIGNAL_KINDS_OFF = {"features": False, "prediction": False, "score": False, "error": False, "missing": False}


def config_with(kind: str, detector: dict[str, Any]) -> StreamdriftConfig:
    """A config whose only enabled signal kind is `kind`, watched by `detector`."""
    defaults: dict[str, Any] = {name: {"enabled": False} for name in SIGNAL_KINDS_OFF}
    defaults[kind] = {"enabled": True, "detector": detector}
    document = {
        "kafka": {"bootstrap_servers": "127.0.0.1:1"},
        "topics": {"input": ["events"]},
        "defaults": defaults,
    }
    return parse_config(yaml.safe_dump(document))


def feature_events(values: Sequence[float]) -> list[bytes]:
    return [orjson.dumps({"model_id": "m", "features": {"x": v}}) for v in values]


def error_events(values: Sequence[float]) -> list[bytes]:
    """prediction 'a'; label 'a' (error 0) or 'b' (error 1)."""
    return [orjson.dumps({"model_id": "m", "prediction": "a", "label": "b" if v else "a"}) for v in values]


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    detector: dict[str, Any]  # the config's detector mapping
    river: Callable[[], Any]  # River's detector with the same parameters
    binary: bool
    invert: bool = False
    default_river: Callable[[], Any] | None = None  # when params are non-default: River with defaults


CASES = [
    Case("adwin", {"type": "adwin"}, ADWIN, binary=False),
    Case(
        "adwin-params",
        {"type": "adwin", "delta": 0.5, "clock": 16},
        lambda: ADWIN(delta=0.5, clock=16),
        binary=False,
        default_river=ADWIN,
    ),
    Case("page_hinkley", {"type": "page_hinkley"}, PageHinkley, binary=False),
    Case(
        "page_hinkley-params",
        {"type": "page_hinkley", "threshold": 30.0, "min_instances": 300},
        lambda: PageHinkley(threshold=30.0, min_instances=300),
        binary=False,
        default_river=PageHinkley,
    ),
    Case("kswin", {"type": "kswin", "seed": 42}, lambda: KSWIN(seed=42), binary=False),
    Case(
        "kswin-params",
        {"type": "kswin", "alpha": 0.001, "window_size": 200, "stat_size": 50, "seed": 7},
        lambda: KSWIN(alpha=0.001, window_size=200, stat_size=50, seed=7),
        binary=False,
    ),
    Case("ddm", {"type": "ddm"}, DDM, binary=True),
    Case(
        "ddm-params",
        {"type": "ddm", "warm_start": 50, "warning_threshold": 1.5, "drift_threshold": 2.5},
        lambda: DDM(warm_start=50, warning_threshold=1.5, drift_threshold=2.5),
        binary=True,
        default_river=DDM,
    ),
    Case("eddm", {"type": "eddm"}, EDDM, binary=True),
    Case("hddm_a", {"type": "hddm_a"}, HDDMA, binary=True),
    Case("hddm_w", {"type": "hddm_w"}, HDDMW, binary=True),
    Case("fhddm", {"type": "fhddm"}, FHDDM, binary=True, invert=True),
]


def test_every_detector_type_has_a_case() -> None:
    assert {case.detector["type"] for case in CASES} == set(DETECTOR_KINDS)


def alert_offsets(alerts: Sequence[DriftAlert], level: str) -> list[int]:
    return [alert.source.offset for alert in alerts if alert.level == level]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_replay_alerts_at_rivers_indices(case: Case) -> None:
    values = binary_stream() if case.binary else numeric_stream()
    expected = run_river(case.river(), values, invert=case.invert)
    assert expected.drifts, f"River's {case.id} detected nothing: the stream does not test anything"
    if case.default_river is not None:
        # The parameters must matter on this stream, or passing them through would go untested.
        assert run_river(case.default_river(), values, invert=case.invert) != expected

    kind = "error" if case.binary else "features"
    config = config_with(kind, case.detector)
    stats = ReplayStats()
    events = error_events(values) if case.binary else feature_events(values)
    alerts = list(replay(config, events, stats))

    assert stats.events == len(values)
    assert not stats.bad_records
    assert {alert.signal for alert in alerts} == {"error" if case.binary else "feature:x"}
    assert {alert.detector_type for alert in alerts} == {case.detector["type"]}
    assert alert_offsets(alerts, "drift") == expected.drifts
    assert alert_offsets(alerts, "warning") == expected.warnings
    for alert in alerts:
        for name, value in case.detector.items():
            if name != "type":
                assert alert.detector_params[name] == value


def test_fhddm_is_fed_the_inverse() -> None:
    """River's FHDDM reads 1 as correct: fed errors as-is, it misses the rise that streamdrift reports."""
    values = binary_stream()
    inverted = run_river(FHDDM(), values, invert=True)
    as_is = run_river(FHDDM(), values, invert=False)
    assert inverted.drifts
    assert inverted != as_is
    alerts = list(replay(config_with("error", {"type": "fhddm"}), error_events(values)))
    assert alert_offsets(alerts, "drift") == inverted.drifts


def test_ddm_warnings_at_rivers_warning_rising_edges() -> None:
    values = binary_stream()
    river = DDM()
    rising: list[int] = []
    drifts: list[int] = []
    previous = False
    for i, value in enumerate(values):
        river.update(value)
        if river.drift_detected:
            drifts.append(i)
        if river.warning_detected and not previous and not river.drift_detected:
            rising.append(i)
        previous = river.warning_detected
    assert rising, "River's DDM never entered its warning zone on this stream"
    assert drifts
    alerts = list(replay(config_with("error", {"type": "ddm"}), error_events(values)))
    assert alert_offsets(alerts, "warning") == rising
    assert alert_offsets(alerts, "drift") == drifts
    assert all(alert.level in {"drift", "warning", "resolved"} for alert in alerts)


def test_kswin_without_a_seed_is_still_deterministic() -> None:
    """An unseeded KSWIN gets a seed derived from model and signal: two replays give the same alerts."""
    values = numeric_stream()
    config = config_with("features", {"type": "kswin"})
    first = [alert.to_json() for alert in replay(config, feature_events(values))]
    second = [alert.to_json() for alert in replay(config, feature_events(values))]
    assert first
    assert first == second


# ---- Hypothesis properties: the Monitor against River's ADWIN ---------------------------------------


def adwin_monitor() -> Monitor:
    """Only `feature:*` signals, watched by a default ADWIN."""
    off = SignalPolicy(enabled=False)
    on = SignalPolicy(detector=DetectorSpec.of("adwin"))
    policies = Policies(
        defaults={"features": on, "prediction": off, "score": off, "error": off, "missing": off}
    )
    return Monitor(policies, config_version="test")


def monitor_drift_offsets(monitor: Monitor, values: Sequence[float]) -> list[int]:
    offsets: list[int] = []
    for i, value in enumerate(values):
        event = InferenceEvent(model_id="m", features={"x": value})
        for alert in monitor.process(event, RecordSource(offset=i)):
            assert alert.signal == "feature:x"
            assert alert.level == "drift"
            offsets.append(alert.source.offset)
    return offsets


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def shifting_streams(draw: st.DrawFn) -> list[float]:
    """Segments of noise around different levels: streams on which ADWIN has something to detect."""
    stream: list[float] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        level = draw(st.floats(min_value=-100, max_value=100))
        scale = draw(st.floats(min_value=0, max_value=10))
        length = draw(st.integers(min_value=1, max_value=400))
        noise_seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
        rng = random.Random(noise_seed)
        stream.extend(level + scale * rng.gauss(0, 1) for _ in range(length))
    return stream


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.lists(finite, max_size=600), shifting_streams()))
def test_property_monitor_matches_river_adwin(values: list[float]) -> None:
    expected = run_river(ADWIN(), values).drifts
    assert monitor_drift_offsets(adwin_monitor(), values) == expected


@settings(max_examples=60, deadline=None)
@given(
    shifting_streams(),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000),
            st.sampled_from([math.nan, math.inf, -math.inf]),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_property_non_finite_values_are_skipped(
    values: list[float], insertions: list[tuple[int, float]]
) -> None:
    stream = list(values)
    for position, bad in insertions:
        stream.insert(position % (len(stream) + 1), bad)
    finite_positions = [i for i, value in enumerate(stream) if math.isfinite(value)]
    assert len(finite_positions) == len(values)

    monitor = adwin_monitor()
    offsets = monitor_drift_offsets(monitor, stream)

    assert monitor.skipped[NON_FINITE] == len(insertions)
    # Detection over the finite values is River's over the finite subsequence, at the same records.
    expected = [finite_positions[i] for i in run_river(ADWIN(), values).drifts]
    assert offsets == expected


def test_non_finite_values_do_not_disable_detection() -> None:
    """A NaN fed to River's ADWIN disables it for good; streamdrift must still detect after one."""
    values = numeric_stream()
    expected = run_river(ADWIN(), values).drifts
    assert expected
    poisoned = ADWIN()
    poisoned.update(math.nan)
    assert run_river(poisoned, values).drifts != expected  # the hazard is real

    stream = [math.nan, *values[:500], math.inf, *values[500:], -math.inf]
    positions = [i for i, value in enumerate(stream) if math.isfinite(value)]
    monitor = adwin_monitor()
    assert monitor_drift_offsets(monitor, stream) == [positions[i] for i in expected]
    assert monitor.skipped[NON_FINITE] == 3
