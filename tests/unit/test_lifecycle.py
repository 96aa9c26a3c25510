"""Alert lifecycle: drift episodes per signal (opened by a drift, joined by later ones, resolved after
`resolve_after` quiet values) and model-level alerts grouping the signals that drift within a window.

Where River detects comes from River itself, run offline on the same values; the episode and window rules
are then applied to River's detections by small reference functions written from the specification.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from river.drift import ADWIN
from river.drift.binary import DDM

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.detectors import DetectorSpec
from streamdrift.core.event import InferenceEvent
from streamdrift.core.lifecycle import ModelAlertPolicy
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalKind, SignalPolicy
from tests.river_runs import RiverRun, run_river


def features_only(model_alerts: ModelAlertPolicy | None = None, **feature_policy: Any) -> Policies:
    """Only the `feature:*` signals, watched as `feature_policy` says."""
    defaults: dict[SignalKind, SignalPolicy] = {kind: SignalPolicy(enabled=False) for kind in SIGNAL_KINDS}
    defaults["features"] = SignalPolicy(**feature_policy)
    return Policies(defaults=defaults, model_alerts=model_alerts or ModelAlertPolicy(enabled=False))


def feed(monitor: Monitor, columns: dict[str, Sequence[float]]) -> list[tuple[int, DriftAlert]]:
    """Value i of every column as the features of the event at offset i of model "m"."""
    out = []
    length = len(next(iter(columns.values())))
    for i in range(length):
        event = InferenceEvent(model_id="m", features={name: values[i] for name, values in columns.items()})
        out.extend((i, alert) for alert in monitor.process(event, RecordSource(topic="t", offset=i)))
    return out


# ---- episodes --------------------------------------------------------------------------------------------


def level_shifts(seed: int) -> list[float]:
    """N(level, 1) where the level steps 0 -> 2 -> 4 -> 0: two nearby drifts, a long calm, a third drift."""
    rng = np.random.default_rng(seed)
    levels = [0.0] * 600 + [2.0] * 300 + [4.0] * 1100 + [0.0] * 1100
    return [float(rng.normal(level, 1.0)) for level in levels]


def bernoulli_errors(seed: int) -> list[float]:
    """0/1 errors whose rate moves 0.1 -> 0.3 -> 0.1 -> 0.5: warnings inside and outside episodes."""
    rng = random.Random(seed)
    rates = [0.1] * 1000 + [0.3] * 1000 + [0.1] * 1000 + [0.5] * 1000
    return [1.0 if rng.random() < rate else 0.0 for rate in rates]


# One expected alert: (value index, level, index of the drift that opened its episode or None, and for a
# resolved alert the drifts its episode counted).
Expected = tuple[int, str, int | None, int | None]


def expected_lifecycle(river: RiverRun, length: int, resolve_after: int, cooldown: int = 0) -> list[Expected]:
    """The specification applied to River's detections on one signal."""
    drifts, warnings = set(river.drifts), set(river.warnings)
    expected: list[Expected] = []
    opened_by: int | None = None  # the open episode, by the index of its first drift
    quiet = episode_drifts = 0
    quiet_until = -1  # the cooldown: detections at indices up to this one are not published
    for i in range(length):
        if i not in drifts and opened_by is not None:
            quiet += 1
            if quiet >= resolve_after:
                expected.append((i, "resolved", opened_by, episode_drifts))
                opened_by = None
        if i in drifts:
            if opened_by is not None:  # joins the open episode, published or not
                quiet, episode_drifts = 0, episode_drifts + 1
            if i <= quiet_until:
                continue
            quiet_until = i + cooldown
            expected.append((i, "drift", i if opened_by is None else opened_by, None))
            if opened_by is None and resolve_after > 0:
                opened_by, quiet, episode_drifts = i, 0, 1
        elif i in warnings and i > quiet_until:
            expected.append((i, "warning", opened_by, None))
    return expected


def observed_lifecycle(alerts: Sequence[tuple[int, DriftAlert]]) -> list[Expected]:
    """The monitor's alerts in the same terms: episode ids become the index of the drift they name."""
    index_of = {alert.alert_id: i for i, alert in alerts if alert.level == "drift"}
    observed: list[Expected] = []
    for i, alert in alerts:
        opened_by = None if alert.episode_id is None else index_of[alert.episode_id]
        episode_drifts = alert.stats["episode_drifts"] if alert.level == "resolved" else None
        observed.append((i, alert.level, opened_by, episode_drifts))
    return observed


def test_drifts_open_join_and_resolve_episodes_as_river_detects() -> None:
    values = level_shifts(seed=1)
    resolve_after = 400
    expected = expected_lifecycle(run_river(ADWIN(), values), len(values), resolve_after)
    resolved = [e for e in expected if e[1] == "resolved"]
    assert len(resolved) >= 2, "the stream must hold more than one episode"
    assert any(e[3] is not None and e[3] >= 2 for e in resolved), "some episode must hold several drifts"

    monitor = Monitor(features_only(resolve_after=resolve_after), config_version="v")
    alerts = feed(monitor, {"x": values})
    assert observed_lifecycle(alerts) == expected
    first = alerts[0][1]
    assert first.level == "drift" and first.episode_id == first.alert_id
    for _i, alert in alerts:
        if alert.level == "resolved":
            assert alert.signal == "feature:x" and alert.detector_type == "adwin"


def test_with_resolve_after_0_every_drift_is_its_own_episode_and_none_resolves() -> None:
    values = level_shifts(seed=2)
    detected = run_river(ADWIN(), values).drifts
    assert len(detected) >= 2
    monitor = Monitor(features_only(resolve_after=0), config_version="v")
    alerts = feed(monitor, {"x": values})
    assert [i for i, _alert in alerts] == detected
    assert all(alert.level == "drift" and alert.episode_id == alert.alert_id for _i, alert in alerts)


def test_a_drift_the_cooldown_suppresses_keeps_the_episode_open() -> None:
    values = level_shifts(seed=3)
    resolve_after, cooldown = 400, 400
    river = run_river(ADWIN(), values)
    expected = expected_lifecycle(river, len(values), resolve_after, cooldown)
    published = [e[0] for e in expected if e[1] == "drift"]
    assert len(published) < len(river.drifts), "the cooldown must suppress a drift inside an episode"

    monitor = Monitor(features_only(resolve_after=resolve_after, cooldown=cooldown), config_version="v")
    assert observed_lifecycle(feed(monitor, {"x": values})) == expected
    assert monitor.suppressed["cooldown"] == len(river.drifts) - len(published)


@pytest.mark.parametrize("seed", [1, 3])
def test_warnings_carry_the_open_episodes_id_or_none(seed: int) -> None:
    values = bernoulli_errors(seed)
    resolve_after = 300
    expected = expected_lifecycle(run_river(DDM(), values), len(values), resolve_after)
    warnings = [e for e in expected if e[1] == "warning"]
    assert any(e[2] is None for e in warnings) and any(e[2] is not None for e in warnings)

    policies = features_only(detector=DetectorSpec.of("ddm"), resolve_after=resolve_after)
    assert observed_lifecycle(feed(Monitor(policies, config_version="v"), {"errors": values})) == expected


# ---- model-level alerts ----------------------------------------------------------------------------------

FEATURES = tuple(f"f{j}" for j in range(8))


def shifted_columns(seed: int, shifts: dict[str, int], length: int) -> dict[str, list[float]]:
    """N(0, 1) features; those in `shifts` move to N(3, 1) from the given event on."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name in FEATURES:
        start = shifts.get(name, length)
        columns[name] = [float(rng.normal(3.0 if i >= start else 0.0, 1.0)) for i in range(length)]
    return columns


def river_feature_drifts(columns: dict[str, list[float]]) -> dict[str, list[int]]:
    return {name: run_river(ADWIN(), values).drifts for name, values in columns.items()}


def expected_model_alerts(
    drifts: dict[str, list[int]], policy: ModelAlertPolicy, length: int
) -> list[tuple[int, int, tuple[str, ...]]]:
    """(closing event, opening event, signals) per model alert: a window opens at a drift, closes `window`
    events later, and alerts if `min_signals` distinct signals drifted in it (closing event included)."""
    by_event: dict[int, list[str]] = {}
    for name in FEATURES:  # within one event, features drift in the order the event lists them
        for i in drifts[name]:
            by_event.setdefault(i, []).append(f"feature:{name}")
    found = []
    opened: int | None = None
    signals: list[str] = []
    for i in range(length):
        for signal in by_event.get(i, []):
            opened = i if opened is None else opened
            if signal not in signals:
                signals.append(signal)
        if opened is not None and i == opened + policy.window:
            if len(signals) >= policy.min_signals:
                found.append((i, opened, tuple(signals)))
            opened, signals = None, []
    return found


def model_alerts_of(alerts: Sequence[tuple[int, DriftAlert]]) -> list[tuple[int, int, tuple[str, ...]]]:
    found = []
    for i, alert in alerts:
        if alert.signal == "model":
            assert alert.level == "drift" and alert.detector_type == "model"
            assert alert.episode_id == alert.alert_id and alert.signals is not None
            found.append((i, alert.stats["opened_at"]["offset"], alert.signals))
    return found


def test_five_of_eight_features_shifting_together_make_one_model_alert_naming_them() -> None:
    shifts = {"f6": 1000, "f2": 1150, "f0": 1300, "f5": 1450, "f3": 1600}  # staggered: order is by drift
    length = 4000
    columns = shifted_columns(seed=4, shifts=shifts, length=length)
    drifts = river_feature_drifts(columns)
    assert all(drifts[name] for name in shifts), "River must see every shift"
    assert not any(drifts[name] for name in FEATURES if name not in shifts), "and nothing else"

    policy = ModelAlertPolicy(min_signals=4, window=2000)
    monitor = Monitor(features_only(model_alerts=policy), config_version="v")
    alerts = feed(monitor, columns)

    drift_alerts = [(i, alert.signal) for i, alert in alerts if alert.level == "drift"]
    assert {
        name: [i for i, signal in drift_alerts if signal == f"feature:{name}"] for name in FEATURES
    } == drifts
    first_drift = {name: drifts[name][0] for name in shifts}
    opened = min(first_drift.values())
    in_drift_order = tuple(f"feature:{name}" for name in sorted(shifts, key=first_drift.__getitem__))
    assert model_alerts_of(alerts) == [(opened + policy.window, opened, in_drift_order)]
    assert model_alerts_of(alerts) == expected_model_alerts(drifts, policy, length)


def test_a_window_with_too_few_drifting_signals_alerts_nothing_and_clears() -> None:
    shifts = {"f1": 500, "f4": 550, "f0": 2000, "f2": 2050, "f7": 2100}
    length = 3500
    columns = shifted_columns(seed=5, shifts=shifts, length=length)
    drifts = river_feature_drifts(columns)
    policy = ModelAlertPolicy(min_signals=3, window=600)
    expected = expected_model_alerts(drifts, policy, length)
    # The first window holds f1 and f4 only; the second names the three later features, not those two.
    assert [signals for _closing, _opened, signals in expected] == [
        ("feature:f0", "feature:f2", "feature:f7")
    ]

    monitor = Monitor(features_only(model_alerts=policy), config_version="v")
    assert model_alerts_of(feed(monitor, columns)) == expected
    assert monitor.models["m"].window.opened_at is None
