"""Reference windows per segment value (core/model_windows.py): a shift in one segment is found and named,
each segment is compared with its own reference, and the windows survive export and restore.

The oracle: numpy and scipy on the raw values of the events each alert names — those between its first and
last offset whose segment feature has the segment's value (tests/unit/test_windows.py's `expected`)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamdrift.config import parse_config
from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.core.reference import Profile, ProfileError
from streamdrift.core.windows import Cells
from streamdrift.errors import ConfigError
from tests.unit.test_reference_alerts import monitor_of
from tests.unit.test_windows import expected

MEANS = {"US": 0.0, "DE": 1.5, "BR": -1.5}  # each segment's amounts differ from the whole's
SHARES = [0.5, 0.3, 0.2]
CONFIG = """
kafka: {{bootstrap_servers: "127.0.0.1:1"}}
topics: {{input: [events]}}
reference:
  profile: ref.json
  window: {{events: 200}}
  numeric: {{psi: 0.25, wasserstein: 0.6}}
  categorical: {{chi_square: 0.001}}
  segments: {segments}
"""


def stream(seed: int, n: int, shift: dict[str, float] | None = None) -> list[InferenceEvent]:
    """Amounts around each country's mean, moved by `shift` for the countries it names; a category
    (`channel`) drawn alike everywhere."""
    rng = np.random.default_rng(seed)
    countries = rng.choice(list(MEANS), size=n, p=SHARES)
    channels = rng.choice(["web", "app", "store"], size=n, p=[0.5, 0.3, 0.2])
    noise = rng.normal(0.0, 1.0, size=n)
    shift = shift or {}
    return [
        InferenceEvent(
            model_id="m",
            features={
                "amount": round(float(MEANS[c] + shift.get(c, 0.0) + e), 6),
                "country": str(c),
                "channel": str(ch),
            },
        )
        for c, ch, e in zip(countries, channels, noise, strict=True)
    ]


def sources(n: int) -> list[RecordSource]:
    return [RecordSource(offset=i, topic="events", partition=0) for i in range(n)]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    profile = Profile(bins=10, top_k=5, segments=["country"])
    profile.add_all(stream(1, 20_000))
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    (tmp_path / "streamdrift.yaml").write_text(CONFIG.format(segments="[country]"))
    return tmp_path


def run(monitor: Monitor, events: list[InferenceEvent], where: list[RecordSource]) -> list[dict[str, Any]]:
    return [
        orjson.loads(alert.to_json())
        for event, source in zip(events, where, strict=True)
        for alert in monitor.process(event, source)
    ]


def window_alerts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["detector"]["type"] in {"psi", "wasserstein", "chi_square"}]


def test_a_shift_in_one_segment_alerts_for_that_segment_only(config_dir: Path) -> None:
    monitor = monitor_of(config_dir)
    live = stream(2, 6_000, shift={"BR": 1.0})
    where = sources(len(live))
    alerts = window_alerts(run(monitor, live, where))
    by_segment = {(a["signal"], a["stats"].get("segment", {}).get("value")) for a in alerts}
    assert ("feature:amount", "BR") in by_segment
    assert not {("feature:amount", "US"), ("feature:amount", "DE")} & by_segment
    windows = monitor.models["m"].reference
    assert windows is not None
    for alert in alerts:
        segment = alert["stats"].get("segment")
        if segment is None:
            continue
        assert segment["feature"] == "country"
        cells = windows.segments[("country", segment["value"])].cells
        first, last = alert["stats"]["window"]["offsets"]["events/0"]
        events = [
            e
            for e, s in zip(live, where, strict=True)
            if first <= s.offset <= last and e.features["country"] == segment["value"]
        ]
        assert len(events) == alert["stats"]["window"]["events"] == 200
        assert alert["source"]["offset"] == last
        statistic, p_value = expected(
            str(alert["signal"]), str(alert["detector"]["type"]), cells[str(alert["signal"])], events
        )
        assert alert["stats"]["statistic"] == pytest.approx(statistic, abs=1e-9)
        if p_value is not None:
            assert alert["stats"]["p_value"] == pytest.approx(p_value, abs=1e-9)
    assert len({a["alert_id"] for a in alerts}) == len(alerts)


def test_each_segment_is_compared_with_its_own_reference(config_dir: Path) -> None:
    """Unshifted, no segment alerts, although each segment's amounts are far from the whole's (as the
    whole's cells show: compared with them, the US windows alone would cross the threshold)."""
    monitor = monitor_of(config_dir)
    live = stream(3, 4_000)
    where = sources(len(live))
    alerts = window_alerts(run(monitor, live, where))
    assert not [a for a in alerts if a["signal"] == "feature:amount"]
    windows = monitor.models["m"].reference
    assert windows is not None
    us = [e for e in live if e.features["country"] == "US"][:200]
    psi_against_whole, _ = expected("feature:amount", "psi", windows.whole.cells["feature:amount"], us)
    assert psi_against_whole > 0.25


def test_segment_windows_restored_mid_way_alert_as_uninterrupted(config_dir: Path) -> None:
    live = stream(4, 3_000, shift={"BR": 1.0})
    where = sources(len(live))
    whole = monitor_of(config_dir)
    uninterrupted = run(whole, live, where)
    first = monitor_of(config_dir)
    found = run(first, live[:1_234], where[:1_234])
    saved = pickle.loads(pickle.dumps(first.export_model("m")))
    second = monitor_of(config_dir)
    second.restore_model("m", saved)
    found += run(second, live[1_234:], where[1_234:])
    assert found == uninterrupted
    assert any(a["stats"].get("segment") for a in window_alerts(found))
    assert pickle.dumps(second.export_model("m")) == pickle.dumps(whole.export_model("m"))


def test_a_window_saved_before_segments_is_taken_over_as_the_whole_window(config_dir: Path) -> None:
    live = stream(5, 150)
    where = sources(len(live))
    first = monitor_of(config_dir)
    run(first, live, where)
    windows = first.models["m"].reference
    assert windows is not None
    bare = windows.whole.export()  # what a model's state held before segments
    second = monitor_of(config_dir)
    second.model("m")
    restored = second.models["m"].reference
    assert restored is not None
    restored.restore(bare)
    assert restored.whole.export() == bare
    assert all(window.events == 0 for window in restored.segments.values())


def test_the_profile_of_a_segment_holds_its_events_and_not_its_own_feature() -> None:
    events = stream(6, 3_000)
    profile = Profile(bins=10, top_k=2, segments=["country"])
    profile.add_all(events)
    document = profile.document()
    assert document["segments"] == ["country"]
    segments = document["models"]["m"]["segments"]["country"]
    counts = {c: sum(e.features["country"] == c for e in events) for c in MEANS}
    kept = sorted(counts, key=lambda c: -counts[c])[:2]  # top_k values by events
    assert sorted(segments) == sorted(kept)
    for value, segment in segments.items():
        assert segment["events"] == counts[value]
        assert set(segment["signals"]) == {"feature:amount", "feature:channel"}
        amounts = [e.features["amount"] for e in events if e.features["country"] == value]
        assert segment["signals"]["feature:amount"]["mean"] == pytest.approx(np.mean(amounts), abs=1e-9)


def test_segmented_profiles_merge_and_differently_segmented_ones_do_not() -> None:
    first, second = stream(7, 2_000), stream(8, 3_000)
    merged = Profile(segments=["country"])
    merged.add_all(first)
    other = Profile(segments=["country"])
    other.add_all(second)
    merged.merge(Profile.from_document(orjson.loads(orjson.dumps(other.document()))))
    segments = merged.document()["models"]["m"]["segments"]["country"]
    for value, segment in segments.items():
        assert segment["events"] == sum(e.features["country"] == value for e in first + second)
    with pytest.raises(ProfileError, match="segmented by"):
        merged.merge(Profile())


def test_segments_the_profile_was_not_built_with_are_a_config_error(tmp_path: Path) -> None:
    profile = Profile()
    profile.add_all(stream(9, 500))
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    text = CONFIG.format(segments="[country]")
    with pytest.raises(ConfigError, match=r"reference\.segments: ref\.json has no segments by country"):
        parse_config(text, base_dir=tmp_path)


def test_segment_cells_are_those_of_the_segment_values() -> None:
    """A segment value's cells come from its own events: its bin edges are its own quantiles."""
    profile = Profile(bins=4, segments=["country"])
    profile.add_all(stream(10, 8_000))
    signal = profile.document()["models"]["m"]["segments"]["country"]["DE"]["signals"]["feature:amount"]
    cells = Cells(signal)
    assert np.median(cells.edges) == pytest.approx(MEANS["DE"], abs=0.15)
