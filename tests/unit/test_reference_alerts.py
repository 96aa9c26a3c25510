"""Reference windows in the monitor: a `reference:` config section, its alerts, and their state.

The oracle: scipy's statistics from the raw values of the events each alert's window names (by offsets),
binned by numpy on the profile's edges (tests/unit/test_windows.py's `expected`)."""

from __future__ import annotations

import pickle
from pathlib import Path

import orjson
import pytest

from streamdrift.config import parse_config
from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.core.reference import Profile
from streamdrift.errors import ConfigError
from tests.unit.test_windows import expected, stream

CONFIG = """
kafka: {{bootstrap_servers: "127.0.0.1:1"}}
topics: {{input: [events]}}
reference:
  profile: {profile}
  window: {{events: 300}}
  numeric: {{psi: 0.1, wasserstein: 0.2}}
  categorical: {{chi_square: 0.01, jensen_shannon: 0.1}}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    profile = Profile(bins=10, top_k=4)
    profile.add_all(stream(1, 10_000))
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    (tmp_path / "streamdrift.yaml").write_text(CONFIG.format(profile="ref.json"))
    return tmp_path


def monitor_of(config_dir: Path) -> Monitor:
    config = parse_config((config_dir / "streamdrift.yaml").read_bytes(), base_dir=config_dir)
    return Monitor(config.policies(), config_version=config.config_version)


def sources(n: int) -> list[RecordSource]:
    return [
        RecordSource(offset=i, topic="events", partition=0, timestamp_ms=1_700_000_000_000 + i)
        for i in range(n)
    ]


def run(monitor: Monitor, events: list[InferenceEvent], where: list[RecordSource]) -> list[bytes]:
    return [
        alert.to_json()
        for event, source in zip(events, where, strict=True)
        for alert in monitor.process(event, source)
    ]


def test_a_shift_alerts_with_the_statistic_of_the_window_it_names(config_dir: Path) -> None:
    monitor = monitor_of(config_dir)
    live = stream(2, 1_500, shift=0.7)
    where = sources(len(live))
    alerts = [orjson.loads(a) for a in run(monitor, live, where)]
    window_alerts = [
        a for a in alerts if a["detector"]["type"] in {"psi", "wasserstein", "chi_square", "jensen_shannon"}
    ]
    assert {(a["signal"], a["detector"]["type"]) for a in window_alerts} >= {
        ("feature:amount", "psi"),
        ("feature:amount", "wasserstein"),
        ("feature:country", "chi_square"),
    }
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    cells = monitor.models["m"].reference.whole.cells  # type: ignore[union-attr]
    for alert in window_alerts:
        window = alert["stats"]["window"]
        first, last = window["offsets"]["events/0"]
        events = [e for e, s in zip(live, where, strict=True) if first <= s.offset <= last]
        assert len(events) == window["events"] == 300
        assert alert["source"]["offset"] == last  # the event that closed the window
        signal, test = alert["signal"], alert["detector"]["type"]
        statistic, p_value = expected(signal, test, cells[signal], events)
        assert alert["stats"]["statistic"] == pytest.approx(statistic, abs=1e-9)
        if p_value is not None:
            assert alert["stats"]["p_value"] == pytest.approx(p_value, abs=1e-9)
            assert alert["stats"]["p_value"] < alert["detector"]["params"]["threshold"]
        else:
            assert alert["stats"]["statistic"] > alert["detector"]["params"]["threshold"]
        assert alert["detector"]["params"]["window"] == {"events": 300}


def test_no_shift_no_window_alert_on_the_numeric_feature(config_dir: Path) -> None:
    alerts = [orjson.loads(a) for a in run(monitor_of(config_dir), stream(3, 1_500), sources(1_500))]
    assert not [a for a in alerts if a["signal"] == "feature:amount" and a["detector"]["type"] == "psi"]


def test_a_model_restored_mid_window_alerts_as_the_uninterrupted_one(config_dir: Path) -> None:
    live = stream(4, 1_000, shift=0.7)
    where = sources(len(live))
    whole = monitor_of(config_dir)
    expected_alerts = run(whole, live, where)
    first = monitor_of(config_dir)
    found = run(first, live[:450], where[:450])
    saved = pickle.loads(pickle.dumps(first.export_model("m")))
    second = monitor_of(config_dir)
    second.restore_model("m", saved)
    found += run(second, live[450:], where[450:])
    assert found == expected_alerts
    assert pickle.dumps(second.export_model("m")) == pickle.dumps(whole.export_model("m"))


def test_a_profile_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"format": "streamdrift.profile", "version": 7}')
    for name, message in (("missing.json", "cannot read"), ("bad.json", "profile version 7")):
        text = CONFIG.format(profile=name)
        with pytest.raises(ConfigError, match=f"reference.profile: .*{name}.*{message}"):
            parse_config(text, base_dir=tmp_path)


def test_a_window_that_cannot_work_is_a_config_error(config_dir: Path) -> None:
    text = CONFIG.format(profile="ref.json").replace("{events: 300}", "{events: 300, seconds: 60}")
    with pytest.raises(ConfigError, match="either `events` or `seconds`"):
        parse_config(text, base_dir=config_dir)
