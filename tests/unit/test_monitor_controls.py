"""What operators control on a running monitor: cooldowns (in values or record time), mutes, and a new
config applied to live models. Expected detections come from River run on the same values.
"""

from __future__ import annotations

import pickle

import numpy as np
from river.drift import ADWIN, PageHinkley

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.detectors import DetectorSpec
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import ModelRule, Mute, Policies, PolicyOverride, SignalPolicy
from streamdrift.core.scaling import Standardize
from tests.river_runs import drift_indices

START_MS = 1_780_000_000_000
STEP_MS = 1000  # one event per second of record time


def shifting(seed: int, length: int = 6000, every: int = 400) -> list[float]:
    """A mean that jumps by 3 every `every` values: many detections for ADWIN."""
    rng = np.random.default_rng(seed)
    return [float(rng.normal(3.0 * ((i // every) % 2), 1.0)) for i in range(length)]


def river_drifts(values: list[float]) -> list[int]:
    return drift_indices(ADWIN(), values)


def features_only(**feature_policy: object) -> Policies:
    off = SignalPolicy(enabled=False)
    return Policies(
        defaults={
            "features": SignalPolicy(**feature_policy),  # type: ignore[arg-type]
            "prediction": off,
            "score": off,
            "error": off,
            "missing": off,
        }
    )


def feed(
    monitor: Monitor, streams: dict[str, list[float]], start: int = 0, stop: int | None = None
) -> list[tuple[int, DriftAlert]]:
    """Each model's value i as the event at offset i, record time START_MS + i seconds."""
    out = []
    length = len(next(iter(streams.values())))
    for i in range(start, length if stop is None else stop):
        for model_id, values in streams.items():
            event = InferenceEvent(model_id=model_id, features={"x": values[i]})
            source = RecordSource(topic="t", partition=0, offset=i, timestamp_ms=START_MS + i * STEP_MS)
            out.extend((i, alert) for alert in monitor.process(event, source))
    return out


def test_cooldown_in_values_publishes_a_drift_only_after_that_many_further_values() -> None:
    values = shifting(1)
    detected = river_drifts(values)
    expected, quiet_until = [], -1
    for i in detected:
        if i > quiet_until:
            expected.append(i)
            quiet_until = i + 500
    assert len(expected) < len(detected), "the cooldown must have something to suppress"
    monitor = Monitor(features_only(cooldown=500), config_version="v")
    assert [i for i, _ in feed(monitor, {"m": values})] == expected
    assert monitor.suppressed["cooldown"] == len(detected) - len(expected)


def test_cooldown_in_seconds_of_record_time() -> None:
    values = shifting(2)
    detected = river_drifts(values)
    expected, quiet_until_ms = [], 0
    for i in detected:
        at_ms = START_MS + i * STEP_MS
        if at_ms >= quiet_until_ms:
            expected.append(i)
            quiet_until_ms = at_ms + 700 * 1000
    assert len(expected) < len(detected)
    monitor = Monitor(features_only(cooldown_s=700.0), config_version="v")
    assert [i for i, _ in feed(monitor, {"m": values})] == expected
    assert monitor.suppressed["cooldown"] == len(detected) - len(expected)


def test_a_mute_suppresses_matching_detections_until_its_end_and_counts_them() -> None:
    values = shifting(3)
    detected = river_drifts(values)
    until = 3000
    policies = features_only()
    policies = Policies(
        defaults=policies.defaults,
        mutes=(Mute(model="muted-*", signal="feature:*", until_ms=START_MS + until * STEP_MS),),
    )
    monitor = Monitor(policies, config_version="v")
    alerts = feed(monitor, {"muted-a": values, "other": values})
    assert [i for i, a in alerts if a.model_id == "other"] == detected
    assert [i for i, a in alerts if a.model_id == "muted-a"] == [i for i in detected if i >= until]
    assert monitor.suppressed["mute"] == len([i for i in detected if i < until]) > 0


def test_reconfigure_restarts_only_the_detectors_whose_settings_changed() -> None:
    streams = {"changed": shifting(4), "kept": shifting(5)}
    switch_at = 2500
    before = features_only()
    after = Policies(
        defaults=features_only(cooldown=50).defaults,
        rules=(
            ModelRule(
                match="changed",
                features=(("x", PolicyOverride(detector=DetectorSpec.of("adwin", delta=0.01))),),
            ),
        ),
    )
    live = Monitor(before, config_version="v1")
    alerts = feed(live, streams, stop=switch_at)
    fresh = live.reconfigure(after, config_version="v2")
    alerts += feed(live, streams, start=switch_at)
    assert fresh == 1

    # "kept" goes on exactly as if nothing happened, apart from the new cooldown.
    kept_detected = river_drifts(streams["kept"])
    expected_kept, quiet_until = [], -1
    for i in kept_detected:
        if i < switch_at or i > quiet_until:
            expected_kept.append(i)
            if i >= switch_at:
                quiet_until = i + 50
    assert [i for i, a in alerts if a.model_id == "kept"] == expected_kept
    # "changed" starts a new ADWIN(delta=0.01) at the switch, fed only what followed.
    changed = streams["changed"]
    fresh_run = ADWIN(delta=0.01)
    expected_changed = river_drifts(changed[:switch_at])
    quiet_until = -1
    for i in range(switch_at, len(changed)):
        fresh_run.update(changed[i])
        if fresh_run.drift_detected and i > quiet_until:
            expected_changed.append(i)
            quiet_until = i + 50
    assert [i for i, a in alerts if a.model_id == "changed"] == expected_changed
    assert {a.config_version for i, a in alerts if i >= switch_at} == {"v2"}
    assert {a.config_version for i, a in alerts if i < switch_at} == {"v1"}

    # The kept detector is the very state an unreconfigured monitor holds.
    untouched = Monitor(before, config_version="v1")
    feed(untouched, streams)
    kept_track = live.models["kept"].features["x"].numeric
    untouched_track = untouched.models["kept"].features["x"].numeric
    assert kept_track is not None and untouched_track is not None
    assert pickle.dumps(kept_track.detector.export()) == pickle.dumps(untouched_track.detector.export())


# --- scale-free thresholds ---------------------------------------------------------------------------------


def river_page_hinkley(values: list[float], threshold: float) -> list[int]:
    return drift_indices(PageHinkley(threshold=threshold), values)


def standardized_policies(standardize: Standardize, threshold: float = 8.0) -> Policies:
    return features_only(
        detector=DetectorSpec.of("page_hinkley", threshold=threshold), standardize=standardize
    )


def test_given_mean_and_std_the_detector_sees_standard_scores_whatever_the_unit() -> None:
    unit = shifting(6, length=3000, every=1000)
    dollars = [2500.0 + 400.0 * v for v in unit]
    expected = river_page_hinkley(unit, threshold=8.0)
    assert expected, "the stream must drift for the test to mean anything"
    monitor = Monitor(standardized_policies(Standardize(mean=2500.0, std=400.0)), config_version="v")
    assert [i for i, _ in feed(monitor, {"m": dollars})] == expected
    # Unstandardised, the same threshold on dollars alarms at other places entirely.
    assert river_page_hinkley(dollars, threshold=8.0) != expected


def test_learned_from_a_warm_up_the_first_values_only_teach_the_scaler() -> None:
    values = [5.0 + 3.0 * v for v in shifting(7, length=4000, every=1500)]
    warmup = 500
    mean, std = float(np.mean(values[:warmup])), float(np.std(values[:warmup], ddof=1))
    scores = [(v - mean) / std for v in values[warmup:]]
    expected = [warmup + i for i in river_page_hinkley(scores, threshold=8.0)]
    assert expected
    monitor = Monitor(standardized_policies(Standardize(warmup=warmup)), config_version="v")
    alerts = feed(monitor, {"m": values})
    assert [i for i, _ in alerts] == expected
    assert alerts[0][1].observations == expected[0] - warmup + 1  # the warm-up reached no detector


def test_a_restored_model_keeps_its_learned_scale_and_warm_up_progress() -> None:
    values = [5.0 + 3.0 * v for v in shifting(8, length=4000, every=1500)]
    policies = standardized_policies(Standardize(warmup=500))
    uninterrupted = feed(Monitor(policies, config_version="v"), {"m": values})
    for cut in (200, 2500):  # mid warm-up, and after it
        first = Monitor(policies, config_version="v")
        alerts = feed(first, {"m": values}, stop=cut)
        second = Monitor(policies, config_version="v")
        second.restore_model("m", pickle.loads(pickle.dumps(first.export_model("m"))))
        alerts += feed(second, {"m": values}, start=cut)
        assert [(i, a.to_json()) for i, a in alerts] == [(i, a.to_json()) for i, a in uninterrupted]
    # A changed standardisation restarts the signal, as a changed detector does.
    changed = Monitor(standardized_policies(Standardize(warmup=300)), config_version="v")
    assert changed.restore_model("m", first.export_model("m")) == 1
