"""Why an episode ended: a `resolved` alert of a model with reference windows says whether the signal came
back to the reference or the detector adapted to a level that still differs from it (core/model_windows.py).

The oracle: the data itself (a shift that persists, or one that goes back), and numpy/scipy's statistic on the
events of the window the verdict names (tests/unit/test_windows.py's `expected`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamdrift.config import parse_config
from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.core.reference import Profile
from tests.unit.test_windows import expected

CONFIG = """
kafka: {bootstrap_servers: "127.0.0.1:1"}
topics: {input: [events]}
defaults:
  features: {detector: {type: adwin}, resolve_after: 500}
  score: {enabled: false}
  prediction: {enabled: false}
reference:
  profile: ref.json
  window: {events: 200}
  numeric: {psi: 0.2}
"""


def amounts(seed: int, levels: list[tuple[float, int]]) -> list[InferenceEvent]:
    """Amounts around each level in turn, for as many events as it says."""
    rng = np.random.default_rng(seed)
    return [
        InferenceEvent(model_id="m", features={"amount": round(float(rng.normal(level, 1.0)), 6)})
        for level, count in levels
        for _ in range(count)
    ]


def resolved(
    tmp_path: Path, live: list[InferenceEvent], text: str = CONFIG
) -> tuple[list[dict[str, Any]], Monitor]:
    """The resolved alerts of feature:amount, against a profile of amounts around 0."""
    profile = Profile(bins=10)
    profile.add_all(amounts(1, [(0.0, 20_000)]))
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    config = parse_config(text, base_dir=tmp_path)
    monitor = Monitor(config.policies(), config_version=config.config_version)
    alerts = [
        orjson.loads(alert.to_json())
        for offset, event in enumerate(live)
        for alert in monitor.process(event, RecordSource(offset=offset, topic="events", partition=0))
    ]
    return [a for a in alerts if a["level"] == "resolved" and a["signal"] == "feature:amount"], monitor


def check_statistic(verdict: dict[str, Any], monitor: Monitor, live: list[InferenceEvent]) -> None:
    first, last = verdict["window"]["offsets"]["events/0"]
    named = live[first : last + 1]
    assert len(named) == verdict["window"]["events"] == 200
    windows = monitor.models["m"].reference
    assert windows is not None
    statistic, _ = expected("feature:amount", "psi", windows.whole.cells["feature:amount"], named)
    assert verdict["statistic"] == pytest.approx(statistic, abs=1e-9)
    assert (verdict["ended"] == "adapted") == (statistic > verdict["threshold"])


def test_a_shift_that_persists_ends_as_adapted(tmp_path: Path) -> None:
    live = amounts(2, [(0.0, 1_000), (1.5, 3_000)])
    (alert,), monitor = resolved(tmp_path, live)
    verdict = alert["stats"]["reference"]
    assert verdict["ended"] == "adapted"
    assert verdict["window"]["offsets"]["events/0"][0] >= 1_000  # a window of shifted data only
    check_statistic(verdict, monitor, live)


def test_a_shift_that_goes_back_ends_back_to_reference(tmp_path: Path) -> None:
    live = amounts(3, [(0.0, 1_000), (1.5, 1_000), (0.0, 3_000)])
    found, monitor = resolved(tmp_path, live)
    verdict = found[-1]["stats"]["reference"]
    assert verdict["ended"] == "back_to_reference"
    assert verdict["window"]["offsets"]["events/0"][0] >= 2_000  # a window after the return
    check_statistic(verdict, monitor, live)


def test_no_verdict_without_a_window_closed_since_the_last_drift(tmp_path: Path) -> None:
    """Windows longer than the stream: none has closed when the episode ends, so nothing says why."""
    live = amounts(4, [(0.0, 1_000), (1.5, 3_000)])
    ends, _monitor = resolved(tmp_path, live, CONFIG.replace("{events: 200}", "{events: 5000}"))
    assert ends
    assert all("reference" not in a["stats"] for a in ends)
