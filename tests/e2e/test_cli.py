"""The `streamdrift` command as a user runs it: the installed console script, in a subprocess.

Commands that need the broker (`run`, `alerts tail`) are tested in tests/integration/test_service.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from river.drift import ADWIN

from streamdrift import __version__
from streamdrift.config import parse_config
from tests.river_runs import drift_indices

STREAMDRIFT = str(Path(sys.executable).parent / "streamdrift")

GOOD_CONFIG = """
kafka:
  bootstrap_servers: 127.0.0.1:1
topics:
  input: [events]
defaults:
  features:
    detector: {type: adwin, delta: 0.002}
"""

BAD_CONFIG = """
kafka:
  bootstrap_servers: 127.0.0.1:1
  bootstrap: typo
topics:
  input: [events]
processing:
  guarantee: maybe
defaults:
  features:
    detector: {type: adwin, dleta: 0.01}
models:
  - match: "fraud-*"
    score:
      detector: {type: page_hinkley, threshold: -1}
"""


def streamdrift(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STREAMDRIFT, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def assert_clean_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert all(line.startswith("streamdrift") for line in lines), stderr
    return lines


def test_console_script_is_installed() -> None:
    assert Path(STREAMDRIFT).is_file()


def test_version() -> None:
    result = streamdrift("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"streamdrift {__version__}"


def test_help() -> None:
    result = streamdrift("--help")
    assert result.returncode == 0
    for command in ("run", "config", "replay", "alerts"):
        assert command in result.stdout


def test_config_validate_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_CONFIG)
    result = streamdrift("config", "validate", str(path))
    assert (result.returncode, result.stdout, result.stderr) == (0, "OK\n", "")


def test_config_validate_bad_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = streamdrift("config", "validate", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = assert_clean_lines(result.stderr)
    prefix = f"streamdrift: {path}: "
    assert all(line.startswith(prefix) for line in lines), lines
    located = sorted(line.removeprefix(prefix) for line in lines)
    assert located == sorted(
        [
            "kafka.bootstrap: unknown key",
            "processing.guarantee: Input should be 'exactly_once' or 'at_least_once' (got 'maybe')",
            "defaults.features.detector: adwin has no parameter 'dleta' "
            "(it takes: delta, clock, max_buckets, min_window_length, grace_period)",
            "models[0].score.detector: page_hinkley.threshold must be a number > 0, got -1",
        ]
    )


def test_config_validate_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kafka: {bootstrap_servers: [\n")
    result = streamdrift("config", "validate", str(path))
    assert result.returncode == 2
    lines = assert_clean_lines(result.stderr)
    assert len(lines) == 1
    assert lines[0].startswith(f"streamdrift: {path}: not valid YAML at line ")


def test_config_validate_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    result = streamdrift("config", "validate", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = assert_clean_lines(result.stderr)
    assert lines == [f"streamdrift: {path}: cannot read the config file: No such file or directory"]


def test_alerts_route_with_a_bad_routes_file_is_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "kafka: {bootstrap_servers: 'k:9092'}\nalerts_topic: a\n"
        "routes:\n  - {name: a, webhook: {url: 'ftp://h', secret: 'hunter2'}}\n  - {name: b}\n"
    )
    result = streamdrift("alerts", "route", "--config", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert assert_clean_lines(result.stderr) == [
        f"streamdrift: {path}: routes[0].webhook.url: an http:// or https:// URL",
        f"streamdrift: {path}: routes[1]: give exactly one receiver: alertmanager, webhook or apprise",
    ]
    missing = streamdrift("alerts", "route", "--config", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 2
    assert assert_clean_lines(missing.stderr) == [
        f"streamdrift: {tmp_path / 'absent.yaml'}: cannot read the routes file: No such file or directory"
    ]


def test_config_validate_missing_env_var(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(GOOD_CONFIG.replace("127.0.0.1:1", "${STREAMDRIFT_TEST_UNSET_VARIABLE}"))
    result = streamdrift("config", "validate", str(path))
    assert result.returncode == 2
    assert assert_clean_lines(result.stderr) == [
        f"streamdrift: {path}: kafka.bootstrap_servers: environment variable "
        "STREAMDRIFT_TEST_UNSET_VARIABLE is not set"
    ]


def test_run_with_an_invalid_config_exits_2_before_connecting(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = streamdrift("run", "--config", str(path))
    assert result.returncode == 2
    assert len(assert_clean_lines(result.stderr)) == 4


def test_config_schema_is_json() -> None:
    result = streamdrift("config", "schema")
    assert result.returncode == 0
    schema = orjson.loads(result.stdout)
    assert {"kafka", "topics", "processing", "defaults", "models"} <= set(schema["properties"])


def test_replay_a_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    values = [float(v) for v in np.concatenate([rng.normal(0, 1, 1500), rng.normal(1.5, 1, 1500)])]
    expected = drift_indices(ADWIN(delta=0.002), values)
    assert expected

    # Two bad lines: each is counted and keeps its line number as offset, so later offsets shift by one.
    lines = [orjson.dumps({"model_id": "m", "features": {"x": v}}) for v in values]
    bad_at = [700, 2100]
    for position in bad_at:
        lines.insert(position, b"{not json")
    good_positions = [i for i in range(len(lines)) if i not in bad_at]
    config = tmp_path / "config.yaml"
    config.write_text(GOOD_CONFIG)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    output = tmp_path / "alerts.jsonl"

    result = streamdrift("replay", "--config", str(config), "--input", str(events), "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    alerts = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    drifts = [alert for alert in alerts if alert["level"] == "drift"]
    assert [alert["source"]["offset"] for alert in drifts] == [good_positions[i] for i in expected]
    assert {(a["signal"], a["model_id"]) for a in alerts} == {("feature:x", "m")}
    # After 1000 quiet values the drift's episode is resolved: every other alert closes one.
    for alert in alerts:
        if alert["level"] != "drift":
            assert alert["level"] == "resolved"
            assert alert["episode_id"] in {drift["alert_id"] for drift in drifts}
    assert all(a["schema"] == "streamdrift.alert/v2" for a in alerts)
    assert all(a["source"]["topic"] is None and a["source"]["partition"] is None for a in alerts)
    assert all(a["detector"] == {"type": "adwin", "params": alerts[0]["detector"]["params"]} for a in alerts)
    assert alerts[0]["detector"]["params"]["delta"] == 0.002
    assert result.stderr == (
        f"replay: {len(values)} events, {len(alerts)} alerts, 2 bad lines (invalid_json=2)\n"
    )

    # Without --output the alerts go to standard output, byte for byte the same.
    again = streamdrift("replay", "--config", str(config), "--input", str(events))
    assert again.returncode == 0
    assert again.stdout.encode() == output.read_bytes()


def test_replay_missing_input(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(GOOD_CONFIG)
    result = streamdrift("replay", "--config", str(config), "--input", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2
    assert assert_clean_lines(result.stderr) == [
        f"streamdrift: --input {tmp_path / 'none.jsonl'}: no such file"
    ]


def test_replay_unwritable_output_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(GOOD_CONFIG)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"model_id": "m", "features": {"x": 1}}\n')
    result = streamdrift(
        "replay",
        "--config",
        str(config),
        "--input",
        str(events),
        "--output",
        str(tmp_path / "no" / "a.jsonl"),
    )
    assert result.returncode == 2
    assert len(assert_clean_lines(result.stderr)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "streamdrift: error: the following arguments are required: COMMAND"),
        (("frobnicate",), "streamdrift: error: argument COMMAND: invalid choice: 'frobnicate'"),
        (("config",), "streamdrift config: error: the following arguments are required: ACTION"),
        (
            ("config", "validate"),
            "streamdrift config validate: error: the following arguments are required: file",
        ),
        (
            ("replay", "--config", "c.yaml"),
            "streamdrift replay: error: one of the arguments --input --topic is required",
        ),
        (("run",), "streamdrift run: error: the following arguments are required: --config"),
        (
            ("replay", "--config", "c.yaml", "--input", "e.jsonl", "--topic", "t"),
            "streamdrift replay: error: argument --topic: not allowed with argument --input",
        ),
        (
            ("alerts", "tail", "--config", "c.yaml", "--max-alerts", "many"),
            "streamdrift alerts tail: error: argument --max-alerts: invalid int value: 'many'",
        ),
        (
            ("alerts", "tail", "--config", "c.yaml", "--max-alerts", "0"),
            "streamdrift alerts tail: error: argument --max-alerts: 0 is not a positive count",
        ),
        (
            ("alerts", "route"),
            "streamdrift alerts route: error: the following arguments are required: --config",
        ),
        (("run", "--config", "c.yaml", "--bogus"), "streamdrift: error: unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_are_one_line(args: tuple[str, ...], message: str) -> None:
    result = streamdrift(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = assert_clean_lines(result.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith(message), lines
    assert "--help)" in lines[0]


def test_tune_prints_a_table_and_a_recommendation_that_is_a_valid_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    reference = tmp_path / "good.jsonl"
    reference.write_bytes(
        b"".join(
            orjson.dumps({"model_id": "m", "features": {"x": float(v)}}) + b"\n"
            for v in rng.normal(size=3000)
        )
    )
    config = tmp_path / "config.yaml"
    config.write_text(GOOD_CONFIG)
    recommended = tmp_path / "recommended.yaml"
    result = streamdrift(
        "tune", "--config", str(config), "--reference", str(reference), "--signal", "feature:x",
        "--detector", "page_hinkley", "--grid", "threshold=25,100,400", "--runs", "5", "--length", "2000",
        "--output", str(recommended),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "threshold=400" in result.stdout and "* " in result.stdout  # the grid, one row marked
    pasted = parse_config(GOOD_CONFIG + recommended.read_text(), env={})
    assert pasted.models[0].features["x"].detector is not None
    assert pasted.models[0].features["x"].detector.type == "page_hinkley"


def test_tune_prints_false_alarms_per_day_at_the_references_event_rate(tmp_path: Path) -> None:
    """One event every 30 s: 2,880 a day, so a setting's false alarms per day are its figure per 10k times
    0.288."""
    rng = np.random.default_rng(6)
    reference = tmp_path / "good.jsonl"
    reference.write_bytes(
        b"".join(
            orjson.dumps({"model_id": "m", "timestamp": 1_780_000_000 + 30 * i, "features": {"x": float(v)}})
            + b"\n"
            for i, v in enumerate(rng.normal(size=3001))
        )
    )
    config = tmp_path / "config.yaml"
    config.write_text(GOOD_CONFIG)
    result = streamdrift(
        "tune", "--config", str(config), "--reference", str(reference), "--signal", "feature:x",
        "--detector", "page_hinkley", "--grid", "threshold=5,25", "--runs", "5", "--length", "2000",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "per day" in next(line for line in lines if "per 10k" in line)
    rows = [cells[1:] if cells[0] == "*" else cells for cells in map(str.split, lines) if cells]
    rows = [cells for cells in rows if cells[0].startswith("threshold=")]  # the table's, not the verdict
    assert len(rows) == 2
    for cells in rows:
        per_10k, per_day = float(cells[1]), float(cells[2])
        assert per_day == pytest.approx(per_10k * 3001 / (3000 * 30) * 86_400 / 10_000, rel=0.01)
