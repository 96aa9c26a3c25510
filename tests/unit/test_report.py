"""Replay reports: the figures equal what the production core did on the same data; memory stays bounded.

Expected figures are computed here from the alerts `replay()` yields and from the events themselves, never
written down by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest

from streamdrift.cli.replay import replay_file
from streamdrift.cli.replay_options import add_report_arguments, report_options
from streamdrift.config.loader import parse_config
from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.errors import ConfigError
from streamdrift.replay import replay
from streamdrift.report.collect import AlertMark, ReportCollector, RollingMean, SignalHistory, select_signals
from streamdrift.report.render import MISSING_MATPLOTLIB, ReportContext, require_matplotlib, write_report

CONFIG = """
kafka:
  bootstrap_servers: 127.0.0.1:1
topics:
  input: [events]
defaults:
  features:
    detector: {type: adwin, delta: 0.002}
  score:
    detector: {type: page_hinkley}
  error:
    detector: {type: ddm}
"""

# model -> (index of its own events where its means shift, error rate before, error rate after)
SHIFTS = {"alpha": (1800, 0.1, 0.45), "beta": (2600, 0.05, 0.3)}
EVENTS_PER_MODEL = 4000


def make_events(seed: int = 20240607) -> list[dict[str, object]]:
    """Two models interleaved; every event carries every field, so each signal gets one value per event."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, object]] = []
    for i in range(EVENTS_PER_MODEL):
        for model_id, (shift_at, error_before, error_after) in SHIFTS.items():
            after = i >= shift_at
            wrong = rng.random() < (error_after if after else error_before)
            events.append(
                {
                    "model_id": model_id,
                    "features": {
                        "x": float(rng.normal(2.0 if after else 0.0, 1.0)),
                        "y": float(rng.normal(5.0, 2.0)),
                    },
                    "score": float(rng.normal(0.8 if after else 0.3, 0.1)),
                    "prediction": "fraud",
                    "label": "ok" if wrong else "fraud",
                }
            )
    return events


def encode(events: list[dict[str, object]]) -> list[bytes]:
    return [orjson.dumps(event) for event in events]


@dataclass
class ValueCounter:
    """A watcher of our own: counts the values the core feeds each detector, independently of the report."""

    counts: Counter[tuple[str, str]]

    def observe(self, model_id: str, signal: str, index: int, value: float, level: int) -> None:
        self.counts[model_id, signal] += 1

    def record_alert(self, alert: DriftAlert) -> None:
        pass


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return make_events()


def test_report_figures_equal_the_alerts_replay_yields(
    events: list[dict[str, object]], tmp_path: Path
) -> None:
    config = parse_config(CONFIG)
    values = encode(events)
    plain_alerts = list(replay(config, values))
    collector = ReportCollector()
    watched_alerts = list(replay(config, values, watcher=collector))
    counter = ValueCounter(Counter())
    list(replay(config, values, watcher=counter))

    # Watching changes nothing, and the stream is built so both levels and both models alert.
    assert [a.to_json() for a in watched_alerts] == [a.to_json() for a in plain_alerts]
    assert {a.model_id for a in plain_alerts} == set(SHIFTS)
    assert {a.level for a in plain_alerts} >= {"drift", "warning"}

    # Every event of a model feeds each of its signals once, so a value's index in its signal's stream is
    # the number of that model's events before it.
    model_of = [str(event["model_id"]) for event in events]
    events_before = {}
    seen: Counter[str] = Counter()
    for offset, model_id in enumerate(model_of):
        events_before[offset] = seen[model_id]
        seen[model_id] += 1

    expected: dict[tuple[str, str, str], list[AlertMark]] = {}
    for alert in plain_alerts:
        mark = AlertMark(index=events_before[alert.source.offset], offset=alert.source.offset)
        expected.setdefault((alert.model_id, alert.signal, alert.level), []).append(mark)

    histories = collector.histories()
    assert {(h.model_id, h.signal) for h in histories} == set(counter.counts)
    for history in histories:
        assert history.observations == counter.counts[history.model_id, history.signal]
        assert history.observations == seen[history.model_id] == EVENTS_PER_MODEL
        for level, tally in (("drift", history.drifts), ("warning", history.warnings)):
            marks = expected.get((history.model_id, history.signal, level), [])
            assert tally.count == len(marks), (history.name, level)
            assert tally.marks == marks
            assert tally.first == (marks[0] if marks else None)
            assert tally.last == (marks[-1] if marks else None)
    drifted = {
        name for (model, signal, level) in expected if level == "drift" for name in [f"{model}/{signal}"]
    }
    assert {f"{model}/feature:x" for model in SHIFTS} <= drifted

    selection = select_signals(histories)
    alerted = {h.name for h in histories if h.alerts}
    chosen = [h.name for h in selection.chosen]
    assert alerted <= set(chosen)
    assert len(chosen) == min(12, len(histories))
    context = ReportContext(
        input_name="events.jsonl",
        config_version=config.config_version,
        rolling_window=collector.rolling_window,
        events=len(events),
        alerts=len(plain_alerts),
    )
    files = write_report(tmp_path / "report", histories, selection, context)

    assert files.html.is_file()
    assert len(files.plots) == len(chosen)
    assert all(path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in files.plots)
    page = files.html.read_text()
    for reference in ("http://", "https://", 'src="//', "<script", "<link"):
        assert reference not in page
    assert re.findall(r'<img class="signal-plot" data-signal="([^"]*)"', page) == chosen
    assert re.findall(r'src="([^"]{0,22})', page) == ["data:image/png;base64,"] * len(chosen)
    assert f"<title>streamdrift replay report: events.jsonl (config {config.config_version})</title>" in page
    # The table lists every signal, with each one's first and last drift as "index (offset)".
    assert page.count("<tr") == len(histories) + 1
    for history in histories:
        if history.drifts.first is not None:
            first = history.drifts.first
            assert f"<td>{first.index:,} ({first.offset:,})</td>" in page


def test_rolling_mean_memory_is_bounded_and_its_points_are_block_averages() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1, 120_000), rng.normal(3, 1, 80_000)])
    window, max_points = 200, 2_000
    collector = ReportCollector(rolling_window=window, max_points=max_points)
    for index, value in enumerate(values.tolist()):
        collector.observe("m", "feature:x", index, value, 0)
    (history,) = collector.histories()
    series = history.rolling

    assert history.observations == len(values)
    assert len(series) <= max_points
    assert series.floats_held <= window + max_points

    # The exact rolling mean (partial windows at the start), averaged over the series' blocks.
    sums = np.cumsum(np.concatenate([[0.0], values]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    rolling = (sums[ends] - sums[starts]) / (ends - starts)
    stride = series.stride
    full = len(values) // stride * stride
    expected = rolling[:full].reshape(-1, stride).mean(axis=1).tolist()
    if full < len(values):
        expected.append(float(rolling[full:].mean()))
    xs, ys = series.points()
    assert len(ys) == len(expected)
    np.testing.assert_allclose(ys, expected, rtol=0, atol=1e-9)
    assert xs[0] == (stride - 1) / 2
    assert xs[-1] <= len(values) - 1


def test_alert_marks_are_capped_but_counts_first_and_last_stay_exact() -> None:
    collector = ReportCollector(max_marks=3)
    for index in range(10):
        collector.observe("m", "score", index, 1.0, 2)
        collector.record_alert(alert("m", "score", "drift", offset=100 + index))
    (history,) = collector.histories()
    assert history.drifts.count == 10
    assert [mark.index for mark in history.drifts.marks] == [0, 1, 2]
    assert history.drifts.first == AlertMark(index=0, offset=100)
    assert history.drifts.last == AlertMark(index=9, offset=109)


def test_an_alert_that_follows_no_detection_is_refused() -> None:
    collector = ReportCollector()
    collector.observe("m", "score", 0, 1.0, 0)
    with pytest.raises(ValueError, match="record each alert before the next event"):
        collector.record_alert(alert("m", "score", "drift", offset=0))


def alert(model_id: str, signal: str, level: str, *, offset: int) -> DriftAlert:
    return DriftAlert(
        alert_id="x", level=level, model_id=model_id, model_version=None, signal=signal,  # type: ignore[arg-type]
        detector_type="adwin", detector_params={}, source=RecordSource(offset=offset), observations=1,
        stats={}, event_time_ms=None, config_version="v",
    )  # fmt: skip


def history(model_id: str, signal: str, *, observations: int, drifts: int = 0) -> SignalHistory:
    made = SignalHistory(model_id, signal, window=10, max_points=10, max_marks=10)
    made.observations = observations
    for index in range(drifts):
        made.drifts.add(AlertMark(index=index, offset=index))
    return made


def test_default_selection_is_alerted_signals_topped_up_with_the_busiest() -> None:
    signals = [history("m", f"feature:f{i:02d}", observations=100 + i) for i in range(20)]
    signals += [
        history("a", "score", observations=5, drifts=1),
        history("b", "error", observations=1, drifts=4),
    ]
    selection = select_signals(signals)
    names = [h.name for h in selection.chosen]
    assert len(names) == 12
    assert {"a/score", "b/error"} <= set(names)
    assert set(names) - {"a/score", "b/error"} == {f"m/feature:f{i:02d}" for i in range(10, 20)}
    assert names == sorted(names)


def test_selection_is_bounded_and_keeps_the_most_alerted() -> None:
    signals = [history(f"model-{i:05d}", "score", observations=10, drifts=1 + i % 7) for i in range(1000)]
    selection = select_signals(signals, max_plots=25)
    assert len(selection.chosen) == 25
    assert selection.qualified == 1000
    assert selection.truncated
    assert all(h.drifts.count == 7 for h in selection.chosen)


def test_selection_by_globs_on_model_and_signal() -> None:
    signals = [
        history(m, s, observations=10) for m in ("fraud-1", "fraud-2", "churn") for s in ("score", "error")
    ]
    selection = select_signals(signals, ["fraud-*/score", "churn/*", "nobody/*"])
    assert [h.name for h in selection.chosen] == [
        "churn/error",
        "churn/score",
        "fraud-1/score",
        "fraud-2/score",
    ]
    assert selection.unmatched_patterns == ("nobody/*",)


def test_names_from_the_data_are_escaped_and_never_read_as_math(tmp_path: Path) -> None:
    collector = ReportCollector()
    for index in range(50):
        collector.observe("<b>$x_1$", 'feature:"a&b"', index, float(index), 0)
    histories = collector.histories()
    context = ReportContext(input_name="<in>", config_version="v1", rolling_window=200, events=50, alerts=0)
    files = write_report(tmp_path, histories, select_signals(histories), context)
    page = files.html.read_text()
    assert "<b>" not in page
    assert 'data-signal="&lt;b&gt;$x_1$/feature:&quot;a&amp;b&quot;"' in page
    assert [path.name for path in files.plots] == ["001-b_x_1_feature_a_b.png"]


def test_a_report_without_matplotlib_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ConfigError) as caught:
        require_matplotlib()
    assert caught.value.problems == [MISSING_MATPLOTLIB]
    assert MISSING_MATPLOTLIB == "--report needs matplotlib: pip install 'streamdrift[report]'"


def test_report_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_report_arguments(parser)
    defaults = report_options(parser.parse_args([]))
    assert defaults == {
        "report_dir": None, "signals": None, "rolling_window": 200, "max_plots": 50, "progress": None,
    }  # fmt: skip
    argv = "--report out --signals a/* b/x --signals c/* --rolling-window 50 --max-plots 5 --no-progress"
    given = report_options(parser.parse_args(argv.split()))
    assert given == {
        "report_dir": "out", "signals": ["a/*", "b/x", "c/*"], "rolling_window": 50, "max_plots": 5,
        "progress": False,
    }  # fmt: skip


@pytest.fixture
def replay_files(tmp_path: Path, events: list[dict[str, object]]) -> Iterator[tuple[Path, Path]]:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(encode(events[:3000])) + b"\n")
    yield config, source


def test_the_cli_writes_the_same_alerts_with_a_report(
    replay_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, source = replay_files
    plain, reported = tmp_path / "plain.jsonl", tmp_path / "reported.jsonl"
    assert replay_file(str(config), str(source), str(plain)) == 0
    quiet = capsys.readouterr().err
    assert "\r" not in quiet  # stderr is not a terminal here: no progress line unless forced

    report_dir = tmp_path / "out" / "report"
    code = replay_file(
        str(config), str(source), str(reported), report_dir=str(report_dir), signals=["alpha/*"],
        rolling_window=50, progress=True,
    )  # fmt: skip
    assert code == 0
    assert reported.read_bytes() == plain.read_bytes()
    err = capsys.readouterr().err
    progress, summary, report_line = err.rsplit("\n", 3)[:3]
    assert progress.startswith("\rreplay: ") and progress.rstrip().endswith(", 100%")
    assert f"\rreplay: {3000:,} events, " in progress
    assert summary == quiet.strip()
    plots = sorted((report_dir / "plots").glob("*.png"))
    assert report_line == f"replay: report {report_dir / 'report.html'}: 16 signals, {len(plots)} plotted"
    # alpha's signals: feature x and y, missing x and y, score, prediction, error, quality:type_mismatch
    assert len(plots) == 8
    page = (report_dir / "report.html").read_text()
    assert page.count('class="signal-plot"') == 8
    assert all(name.startswith("alpha/") for name in re.findall(r'data-signal="([^"]*)"', page))


def test_cli_report_options_are_checked_before_the_replay(
    replay_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config, source = replay_files
    with pytest.raises(ConfigError, match="--signals needs --report"):
        replay_file(str(config), str(source), None, signals=["a/*"])
    with pytest.raises(ConfigError, match="--rolling-window must be at least 1"):
        replay_file(str(config), str(source), None, report_dir=str(tmp_path / "r"), rolling_window=0)


def test_rolling_mean_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="window"):
        RollingMean(window=0)
    with pytest.raises(ValueError, match="even"):
        RollingMean(max_points=3)
