"""Estimated performance (CBPE) as the service runs it: `profile build` fits each selected model's reference
from its labelled events, and the monitor estimates every window of the model's live events
(core/performance.py), publishes the metrics and alerts `estimated:<metric>` outside the reference's band.

Oracles: NannyML (tests/oracles, its own venv) on the same reference and windows for the estimates; numpy
counting for the realized metrics; an uninterrupted run for a restore from a snapshot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from streamdrift.cli.main import main
from streamdrift.config import load_config
from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import RecordSource
from streamdrift.core.cbpe import METRICS
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.errors import ConfigError
from tests.oracles.nannyml_venv import ensure_nannyml_venv
from tests.unit.test_cbpe import Sample, synthetic
from tests.unit.test_cbpe_nannyml import nannyml_estimates

WINDOW = 500
SHIFTS = (0.0, 0.5, -1.0, 2.5, 0.0, 3.0)  # the input mean of each live window: covariate shift
CONFIG = f"""
kafka: {{bootstrap_servers: "127.0.0.1:1"}}
topics: {{input: [events]}}
defaults:
  features: {{enabled: false}}
  prediction: {{enabled: false}}
  score: {{enabled: false}}
  missing: {{enabled: false}}
  type_mismatch: {{enabled: false}}
reference:
  profile: ref.json
  performance: {{models: "clf-*", window_events: {WINDOW}}}
"""


def lines(model_id: str, sample: Sample, *, labelled: bool) -> list[bytes]:
    return [
        orjson.dumps(
            {"model_id": model_id, "features": {"x": 0.0}, "score": score}
            | ({"label": label} if labelled else {})
        )
        for score, label in zip(sample.scores.tolist(), sample.labels.tolist(), strict=True)
    ]


def built(tmp_path: Path, reference: Sample, text: str = CONFIG) -> StreamdriftConfig:
    """The config, its profile built by `streamdrift profile build` from the labelled reference."""
    (tmp_path / "streamdrift.yaml").write_text(text)
    events = lines("clf-1", reference, labelled=True) + lines("other", reference, labelled=True)
    (tmp_path / "ref.jsonl").write_bytes(b"\n".join(events) + b"\n")
    code = main([
        "profile", "build", "--config", str(tmp_path / "streamdrift.yaml"),
        "--input", str(tmp_path / "ref.jsonl"), "--output", str(tmp_path / "ref.json"),
    ])  # fmt: skip
    assert code == 0
    return load_config(tmp_path / "streamdrift.yaml")


def live_events(samples: list[Sample], *, labelled: bool) -> list[InferenceEvent]:
    return [
        InferenceEvent(model_id="clf-1", features={"x": 0.0}, score=score, label=label if labelled else None)
        for sample in samples
        for score, label in zip(sample.scores.tolist(), sample.labels.tolist(), strict=True)
    ]


def run_windows(
    monitor: Monitor, events: list[InferenceEvent], start: int = 0
) -> tuple[list[dict[str, float]], list[tuple[int, str, dict[str, object]]]]:
    """Each closed window's estimates (read where the metrics endpoint reads them), and the drift alerts."""
    estimates, alerts = [], []
    for offset, event in enumerate(events, start=start):
        for alert in monitor.process(event, RecordSource(offset=offset, topic="events", partition=0)):
            alerts.append((offset, alert.signal, alert.stats))
        if (offset + 1) % WINDOW == 0:
            estimates.append(monitor.estimated["clf-1"])
    return estimates, alerts


def test_window_estimates_equal_nannyml_and_alerts_name_the_windows_outside_the_band(tmp_path: Path) -> None:
    venv = ensure_nannyml_venv()
    rng = np.random.default_rng(7)
    reference = synthetic(rng, 6 * WINDOW, 0.0, squash=0.5)
    windows = [synthetic(rng, WINDOW, mu, squash=0.5) for mu in SHIFTS]
    config = built(tmp_path, reference)
    assert set(config.policies().performance) == {"clf-1"}
    monitor = Monitor(config.policies(), config_version=config.config_version)

    estimates, alerts = run_windows(monitor, live_events(windows, labelled=False))

    request = {
        "chunk_size": WINDOW, "metrics": list(METRICS),
        "reference": {"score": reference.scores.tolist(), "prediction": reference.predictions.tolist(),
                      "label": reference.labels.tolist()},
        "analysis": {"score": np.concatenate([w.scores for w in windows]).tolist(),
                     "prediction": np.concatenate([w.predictions for w in windows]).tolist()},
    }  # fmt: skip
    theirs = nannyml_estimates(venv.python, request, tmp_path)
    assert theirs["needs_calibration"]
    assert len(estimates) == len(theirs["chunks"]) == len(SHIFTS)
    for ours, chunk in zip(estimates, theirs["chunks"], strict=True):
        for name in METRICS:
            assert ours[name] == pytest.approx(chunk["estimates"][name], abs=0.01), name
    # An alert per window and metric whose (NannyML's) estimate is outside the band the profile holds.
    bands = orjson.loads((tmp_path / "ref.json").read_bytes())["models"]["clf-1"]["performance"]["bands"]
    expected = {
        (index, f"estimated:{name}")
        for index, chunk in enumerate(theirs["chunks"])
        for name in METRICS
        if not bands[name]["low"] <= chunk["estimates"][name] <= bands[name]["high"]
    }
    assert expected, "no window left the band: the alerts would not be exercised"
    assert {(offset // WINDOW, signal) for offset, signal, _ in alerts} == expected
    assert all((offset + 1) % WINDOW == 0 for offset, _, _ in alerts)  # the event closing its window


def test_realized_metrics_with_inline_labels_and_a_restored_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    config = built(tmp_path, synthetic(rng, 4 * WINDOW, 0.0))
    windows = [synthetic(rng, WINDOW, mu) for mu in (0.0, 1.5, -1.0)]
    events = live_events(windows, labelled=True)
    whole = Monitor(config.policies(), config_version=config.config_version)
    expected = run_windows(whole, events)

    for window, realized in zip(windows, [None, None, whole.realized["clf-1"]], strict=True):
        if realized is not None:  # the last window's, counted here
            assert realized["accuracy"] == pytest.approx(np.mean(window.labels == window.predictions))
            positives = window.predictions == 1
            assert realized["precision"] == pytest.approx(np.mean(window.labels[positives] == 1))

    first = Monitor(config.policies(), config_version=config.config_version)
    cut = WINDOW + 123  # inside the second window
    before = run_windows(first, events[:cut])
    second = Monitor(config.policies(), config_version=config.config_version)
    second.restore_model("clf-1", orjson.loads(orjson.dumps(first.export_model("clf-1"))))
    after = run_windows(second, events[cut:], start=cut)
    assert (before[0] + after[0], before[1] + after[1]) == expected


def test_events_that_cannot_count_are_counted_by_reason(tmp_path: Path) -> None:
    config = built(tmp_path, synthetic(np.random.default_rng(9), 3 * WINDOW, 0.0))
    monitor = Monitor(config.policies(), config_version=config.config_version)
    for event in (
        InferenceEvent(model_id="clf-1", features={}, score=None),
        InferenceEvent(model_id="clf-1", features={}, score=float("nan")),
        InferenceEvent(model_id="clf-1", features={}, score=0.4, prediction="cat"),
        InferenceEvent(model_id="clf-1", features={}, score=0.4, prediction=1),
    ):
        monitor.process(event, RecordSource(offset=0))
    assert monitor.skipped["performance_no_score"] == 2
    assert monitor.skipped["performance_not_binary"] == 1
    watch = monitor.models["clf-1"].performance
    assert watch is not None and len(watch.window.scores) == 1


def test_a_profile_without_labels_or_for_another_window_size_is_one_clear_error(tmp_path: Path) -> None:
    reference = synthetic(np.random.default_rng(10), 3 * WINDOW, 0.0)
    built(tmp_path, reference)
    other = CONFIG.replace(f"window_events: {WINDOW}", "window_events: 700")
    (tmp_path / "other.yaml").write_text(other)
    with pytest.raises(ConfigError, match="CBPE reference is for windows of 500 events, not 700"):
        load_config(tmp_path / "other.yaml")
    unlabelled = lines("clf-1", reference, labelled=False)
    (tmp_path / "ref.jsonl").write_bytes(b"\n".join(unlabelled) + b"\n")
    main(["profile", "build", "--config", str(tmp_path / "streamdrift.yaml"), "--input",
          str(tmp_path / "ref.jsonl"), "--output", str(tmp_path / "ref.json")])  # fmt: skip
    with pytest.raises(ConfigError, match="no model of the profile matching 'clf-\\*' has a CBPE reference"):
        load_config(tmp_path / "streamdrift.yaml")


def test_late_labels_complete_a_closed_window_and_give_its_realized_metrics(tmp_path: Path) -> None:
    """With a labels topic: the labels of a closed window arrive later, in any order; the one that completes
    the window publishes its realized metrics (counted here with numpy)."""
    text = CONFIG.replace("topics: {input: [events]}", "topics: {input: [events], labels: labels}")
    rng = np.random.default_rng(11)
    config = built(tmp_path, synthetic(rng, 4 * WINDOW, 0.0), text)
    monitor = Monitor(config.policies(), config_version=config.config_version)
    windows = [synthetic(rng, WINDOW, mu) for mu in (0.5, -0.5)]
    for offset, event in enumerate(live_events(windows, labelled=False)):
        tagged = InferenceEvent(
            model_id="clf-1", features={}, event_id=f"e{offset}", score=event.score, prediction=0.0
        )
        monitor.process(tagged, RecordSource(offset=offset, topic="events", partition=0))
    assert "clf-1" in monitor.estimated and "clf-1" not in monitor.realized

    first = windows[0]
    order = rng.permutation(WINDOW)
    for count, index in enumerate(order, start=1):
        label = int(first.labels[index])
        monitor.label("clf-1", f"e{index}", label, RecordSource(offset=count, topic="labels", partition=0))
        assert ("clf-1" in monitor.realized) == (count == WINDOW)  # only the last one completes it
    realized = monitor.realized["clf-1"]
    assert realized["accuracy"] == pytest.approx(np.mean(first.labels == 0))  # every prediction was 0
    assert np.isnan(realized["precision"])  # no predicted positive: undefined
