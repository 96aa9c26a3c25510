"""The false-alarm budget's inputs and arithmetic (core/budget.py, core/autocorrelation.py): the profile's
lag-1 autocorrelation and event rate against numpy on the same values, the correction across a model's
signals, the detectors the plan gets, and the config's errors. The budget's outcome on whole simulated
fleets is tests/unit/test_budget_fleet.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import optimize
from scipy.signal import lfilter

from streamdrift.config.loader import parse_config
from streamdrift.core.event import InferenceEvent
from streamdrift.core.reference import Profile
from streamdrift.errors import ConfigError

DAY_MS = 86_400_000


def ar1(seed: int, n: int, phi: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values: np.ndarray = lfilter([1.0], [1.0, -phi], rng.standard_normal(n)) + 5.0
    return values


def profile_of(values: list[float | None], *, every_ms: int | None = 30_000, start_ms: int = 0) -> Profile:
    profile = Profile()
    profile.add_all(
        InferenceEvent(
            model_id="m", features={"x": value},
            timestamp_ms=None if every_ms is None else start_ms + i * every_ms,
        )
        for i, value in enumerate(values)
    )  # fmt: skip
    return profile


def test_the_lag1_autocorrelation_is_numpys() -> None:
    x = ar1(3, 5_000, 0.6)
    signal = profile_of(x.tolist()).document()["models"]["m"]["signals"]["feature:x"]
    oracle = np.cov(x[:-1], x[1:])[0, 1] / np.var(x, ddof=1)
    assert signal["autocorrelation"] == pytest.approx(oracle, abs=1e-9)
    assert 0.55 < signal["autocorrelation"] < 0.65


def test_missing_values_are_skipped_not_paired() -> None:
    x = ar1(4, 3_000, 0.3)
    with_gaps: list[float | None] = [v if i % 7 else None for i, v in enumerate(x.tolist())]
    present = np.array([v for v in with_gaps if v is not None])
    signal = profile_of(with_gaps).document()["models"]["m"]["signals"]["feature:x"]
    oracle = np.cov(present[:-1], present[1:])[0, 1] / np.var(present, ddof=1)
    assert signal["autocorrelation"] == pytest.approx(oracle, abs=1e-9)


def test_two_merged_periods_keep_every_pair_but_the_one_joining_them() -> None:
    first, second = ar1(5, 2_000, 0.5), ar1(6, 3_000, 0.5) + 1.0
    merged = profile_of(first.tolist())
    merged.merge(profile_of(second.tolist(), start_ms=10 * DAY_MS))
    document = merged.document()["models"]["m"]
    both = np.concatenate([first, second])
    previous = np.concatenate([first[:-1], second[:-1]])
    following = np.concatenate([first[1:], second[1:]])
    oracle = np.cov(previous, following)[0, 1] / np.var(both, ddof=1)
    assert document["signals"]["feature:x"]["autocorrelation"] == pytest.approx(oracle, abs=1e-9)
    # The rate counts the two periods' spans, not the gap between them.
    span = (2_000 - 1) * 30_000 + (3_000 - 1) * 30_000
    assert document["span_ms"] == span
    assert document["events_per_day"] == pytest.approx(5_000 * DAY_MS / span, rel=1e-12)
    # And the merged document reads back to the same figures.
    again = Profile.from_document(orjson.loads(orjson.dumps(merged.document()))).document()["models"]["m"]
    assert again["signals"]["feature:x"]["autocorrelation"] == pytest.approx(oracle, abs=1e-9)
    assert again["events_per_day"] == document["events_per_day"]


CONFIG = """
kafka: {{bootstrap_servers: "127.0.0.1:1"}}
topics: {{input: [events]}}
reference:
  profile: ref.json
  window: {{events: 500}}
budget: {budget}
models:
  - match: "a"
    features:
      ignored: {{enabled: false}}
"""


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Path:
    """Model a: x (normal), sparse (in one event of four), ignored (disabled in the config), flat
    (constant), country (categorical), a numeric score, one event every 45 s; model b: the same values
    without timestamps. Model a's raw x values are kept beside the profile (x-a.npy), for the oracles."""
    rng = np.random.default_rng(8)
    profile = Profile()
    for model, every_ms in (("a", 45_000), ("b", None)):
        x = []
        for i in range(4_000):
            x.append(float(rng.normal(3, 2)))
            profile.add(InferenceEvent(
                model_id=model,
                features={"x": x[-1], "ignored": float(rng.normal()), "flat": 1.0,
                          "country": str(rng.choice(["US", "BR"])),
                          **({"sparse": float(i % 7)} if i % 4 == 0 else {})},
                score=float(rng.beta(2, 5)),
                timestamp_ms=None if every_ms is None else i * every_ms,
            ))  # fmt: skip
        np.save(tmp_path / f"x-{model}.npy", np.array(x))
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    return tmp_path


def config_in(directory: Path, budget: str) -> Path:
    path = directory / "streamdrift.yaml"
    path.write_text(CONFIG.format(budget=budget))
    return path


def test_each_models_budget_is_split_over_its_calibrated_signals(fleet_dir: Path) -> None:
    path = config_in(fleet_dir, "{false_alarms: 2, days: 10, shift_std: 0.4}")
    config = parse_config(path.read_bytes(), base_dir=fleet_dir)
    fleet = config.fleet_budget()
    assert fleet is not None
    assert list(fleet.models) == ["a"]
    assert set(fleet.outside) == {"a feature:flat", "b"}
    assert fleet.unstored == 3  # the profile was built without the budget: its curves measured at load
    model = fleet.models["a"]
    events_per_day = 4_000 * DAY_MS / (3_999 * 45_000)
    assert model.events_per_day == pytest.approx(events_per_day, rel=1e-12)
    assert [s.signal for s in model.signals] == ["feature:sparse", "feature:x", "score"]  # not the others
    # Three signals share the model's 2 alarms per 10 days; `sparse` has a value in one event of four.
    for signal, share in zip(model.signals, (0.25, 1.0, 1.0), strict=True):
        assert signal.values_per_day == pytest.approx(events_per_day * share, rel=1e-12)
        assert signal.run_length == pytest.approx(3 * events_per_day * share * 10 / 2, rel=1e-3)
    assert fleet.false_alarms_per_day == pytest.approx(2 / 10, rel=1e-3)

    plan = config.policies().plan_for("a")
    raw = raw_x(fleet_dir, "a")
    x = plan.feature("x")
    assert x.detector.type == "page_hinkley"
    params = x.detector.kwargs()
    assert params["delta"] == pytest.approx(0.2) and params["alpha"] == 1.0
    assert params["threshold"] == model.signals[1].threshold
    assert x.standardize is not None
    assert x.standardize.mean == pytest.approx(raw.mean(), rel=1e-9)
    assert x.standardize.std == pytest.approx(raw.std(ddof=1), rel=1e-9)
    assert plan.signal("score").detector.type == "page_hinkley"
    # What the budget does not calibrate keeps the config's detectors.
    assert plan.feature("ignored").enabled is False
    assert plan.feature("flat").detector.type == "adwin"
    assert config.policies().plan_for("b").feature("x").detector.type == "adwin"


def raw_x(directory: Path, model: str) -> np.ndarray:
    """The x values the fixture profiled for the model."""
    values: np.ndarray = np.load(directory / f"x-{model}.npy")
    return values


def test_a_curve_stored_in_the_profile_is_the_one_used(fleet_dir: Path) -> None:
    document = orjson.loads((fleet_dir / "ref.json").read_bytes())
    for signal in document["models"]["a"]["signals"].values():
        if signal["type"] == "numeric":
            signal["run_length"] = {
                "delta": 0.25, "clip": 3.0,
                "rise": {"intercept": 1.5, "slope": 0.3}, "fall": {"intercept": 2.0, "slope": None},
            }  # fmt: skip
    (fleet_dir / "ref.json").write_bytes(orjson.dumps(document))
    path = config_in(fleet_dir, "{false_alarms: 1, days: 30}")
    config = parse_config(path.read_bytes(), base_dir=fleet_dir)
    fleet = config.fleet_budget()
    assert fleet is not None
    signals = {s.signal: s for s in fleet.models["a"].signals}
    run_length = 3 * (4_000 * DAY_MS / (3_999 * 45_000)) * 30  # x: a value in every event
    root = optimize.brentq(
        lambda h: 1.5 + math.log(math.expm1(0.3 * h) - 0.3 * h) - math.log(run_length), 1e-3, 1e3
    )
    assert signals["feature:x"].threshold == pytest.approx(root, abs=1e-4)
    assert signals["score"].threshold == signals["feature:x"].threshold
    assert fleet.unstored == 0


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("{false_alarms: 0}", "budget.false_alarms: Input should be greater than 0"),
        ("{false_alarms: 1, days: -3}", "budget.days: Input should be greater than 0"),
        ("{false_alarms: 1, shift: 0.5}", "budget.shift: unknown key"),
    ],
)
def test_a_budget_that_cannot_work_is_a_config_error(fleet_dir: Path, budget: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config_in(fleet_dir, budget).read_bytes(), base_dir=fleet_dir)


def test_a_budget_needs_a_profile(tmp_path: Path) -> None:
    text = CONFIG.format(budget="{false_alarms: 1}").replace(
        "reference:\n  profile: ref.json\n  window: {events: 500}\n", ""
    )
    with pytest.raises(ConfigError, match=r"budget: needs reference.profile"):
        parse_config(text.encode(), base_dir=tmp_path)


def test_the_monitor_alerts_where_river_does_with_the_budgets_detector(fleet_dir: Path) -> None:
    """The budget's detector in the service's core: its drift alerts on `x` are at the values where River's
    PageHinkley, given the alert's parameters and fed the profile-standardised values clipped at ±3 (numpy on
    the raw reference values), detects."""
    from streamdrift.core.alert import RecordSource
    from streamdrift.core.monitor import Monitor

    path = config_in(fleet_dir, "{false_alarms: 1, days: 30}")
    config = parse_config(path.read_bytes(), base_dir=fleet_dir)
    monitor = Monitor(config.policies(), config_version=config.config_version)
    rng = np.random.default_rng(21)
    x = np.concatenate([rng.normal(3, 2, 1_000), rng.normal(4.5, 2, 3_000)])  # +0.75 std after 1,000
    alerts: list[dict[str, Any]] = []
    for i, value in enumerate(x.tolist()):
        event = InferenceEvent(model_id="a", features={"x": value}, timestamp_ms=i * 45_000)
        source = RecordSource(offset=i, topic="events", partition=0, timestamp_ms=i * 45_000)
        alerts.extend(orjson.loads(alert.to_json()) for alert in monitor.process(event, source))
    drifts = [
        a for a in alerts
        if a["signal"] == "feature:x" and a["level"] == "drift" and a["detector"]["type"] == "page_hinkley"
    ]  # fmt: skip
    assert drifts, "a 0.75-std shift is found"
    params = drifts[0]["detector"]["params"]
    assert params["alpha"] == 1.0 and params["delta"] == 0.25

    from river.drift import PageHinkley

    reference = raw_x(fleet_dir, "a")
    standardised = np.clip((x - reference.mean()) / reference.std(ddof=1), -3.0, 3.0)
    river = PageHinkley(**{k: params[k] for k in ("min_instances", "delta", "threshold", "alpha", "mode")})
    detected = []
    for i, value in enumerate(standardised.tolist()):
        river.update(value)  # type: ignore[no-untyped-call]
        if river.drift_detected:
            detected.append(i)
    assert [a["source"]["offset"] for a in drifts] == detected


def test_the_budget_covers_the_models_reference_models_selects(fleet_dir: Path) -> None:
    text = CONFIG.format(budget="{false_alarms: 1}").replace("  window:", '  models: "b*"\n  window:')
    config = parse_config(text.encode(), base_dir=fleet_dir)
    fleet = config.fleet_budget()
    assert fleet is not None
    assert list(fleet.models) == [] and list(fleet.outside) == ["b"]  # a is not selected; b has no rate
    assert config.policies().plan_for("a").feature("x").detector.type == "adwin"
