"""The replay report as an operator sees it: headless Chromium opens the page with no network and draws it.

Chromium is a requirement, not an option: when it is missing the test fails (`make tools` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import orjson
import pytest
from matplotlib.image import imread

from streamdrift.cli.replay import replay_file
from streamdrift.config.loader import load_config
from streamdrift.replay import replay
from streamdrift.report.collect import ReportCollector, select_signals

WINDOW = (1280, 2000)
CONFIG = """
kafka:
  bootstrap_servers: 127.0.0.1:1
topics:
  input: [events]
defaults:
  features:
    detector: {type: adwin, delta: 0.002}
"""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not on PATH: run `make tools` (it installs chromium, as it does kcat)")
    return path


def run_chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", *args],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


class SignalPlots(HTMLParser):
    """Collects the `data-signal` of every `<img class="signal-plot">` in a document."""

    def __init__(self) -> None:
        super().__init__()
        self.signals: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img" and "signal-plot" in (found.get("class") or "").split():
            self.signals.append(found.get("data-signal") or "")


def write_events(path: Path) -> None:
    """Three models; the first two shift their feature x, so both alert and the rest are topped up."""
    rng = np.random.default_rng(99)
    lines = []
    for i in range(3000):
        for model_id, shift_at in (("alpha", 1200), ("beta", 2000), ("gamma", None)):
            shifted = shift_at is not None and i >= shift_at
            x = float(rng.normal(1.5 if shifted else 0.0, 1.0))
            lines.append(orjson.dumps({"model_id": model_id, "features": {"x": x, "y": float(rng.random())}}))
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_the_report_page_renders_offline_with_one_plot_per_selected_signal(tmp_path: Path) -> None:
    chromium()  # fail first, with the fix, when it is missing
    config, events, report = tmp_path / "config.yaml", tmp_path / "events.jsonl", tmp_path / "report"
    config.write_text(CONFIG)
    write_events(events)
    assert replay_file(str(config), str(events), str(tmp_path / "alerts.jsonl"), report_dir=str(report)) == 0
    page = report / "report.html"

    # The selection the page should show, from the report API on the same run.
    collector = ReportCollector()
    alerts = list(replay(load_config(config), events.read_bytes().splitlines(), watcher=collector))
    selection = [h.name for h in select_signals(collector.histories()).chosen]
    assert {f"{a.model_id}/{a.signal}" for a in alerts} >= {"alpha/feature:x", "beta/feature:x"}
    assert len(selection) == min(12, len(collector.histories()))

    screenshot = tmp_path / "page.png"
    width, height = WINDOW
    run_chromium(f"--screenshot={screenshot}", f"--window-size={width},{height}", page.as_uri())
    assert screenshot.is_file()
    pixels = imread(screenshot)  # floats in [0, 1], RGB or RGBA
    assert pixels.shape[:2] == (height, width)
    rgb = pixels[..., :3]
    not_white = np.any(rgb < 0.95, axis=-1)
    assert not_white.mean() > 0.02, f"only {not_white.mean():.2%} of the page is drawn"
    # The page's own styles are gray: saturated colour can only come from the plots (the rolling mean's blue
    # and the drift lines' red), which shows the inlined PNGs decoded.
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    assert np.count_nonzero((blue > 0.55) & (red < 0.3)) > 500, "no plot line drawn"
    assert np.count_nonzero((red > 0.7) & (green < 0.3) & (blue < 0.3)) > 50, "no drift line drawn"

    dom = run_chromium("--dump-dom", page.as_uri()).stdout.decode()
    parser = SignalPlots()
    parser.feed(dom)
    assert parser.signals == selection
