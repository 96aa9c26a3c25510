"""`streamdrift profile build|merge` as a user runs it: the console script over JSONL files, and the bad
arguments and files a user would give it (one line, exit 2). Reading a topic goes through the same reader as
`replay --topic` (tests/integration)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import pytest

from streamdrift.core.event import EventDecoder
from streamdrift.core.windows import Cells
from tests.e2e.test_cli import GOOD_CONFIG, assert_clean_lines, streamdrift
from tests.unit.test_windows import expected


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "streamdrift.yaml").write_text(GOOD_CONFIG)
    rng = np.random.default_rng(9)
    for name, shift in (("week1", 0.0), ("week2", 1.0)):
        lines = [
            orjson.dumps({
                "model_id": model, "score": round(float(rng.uniform()), 5),
                "features": {
                    "amount": round(float(rng.normal(shift, 1)), 5), "plan": str(rng.choice(["a", "b"])),
                },
            })
            for _ in range(2_000) for model in ("fraud-v1", "churn-v1")
        ]  # fmt: skip
        (tmp_path / f"{name}.jsonl").write_bytes(b"\n".join([*lines, b"not json"]) + b"\n")
    return tmp_path


def test_build_then_merge_two_weeks(workdir: Path) -> None:
    config = str(workdir / "streamdrift.yaml")
    for week in ("week1", "week2"):
        done = streamdrift(
            "profile", "build", "--config", config, "--input", str(workdir / f"{week}.jsonl"),
            "--output", str(workdir / f"{week}.json"), "--models", "fraud-*", "--bins", "5",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().endswith(
            f"1 models, 2000 events, 1 records not events -> {workdir}/{week}.json"
        )
    done = streamdrift(
        "profile", "merge", str(workdir / "week1.json"), str(workdir / "week2.json"),
        "--output", str(workdir / "both.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    both = orjson.loads((workdir / "both.json").read_bytes())
    assert list(both["models"]) == ["fraud-v1"]
    model = both["models"]["fraud-v1"]
    assert model["events"] == 4_000
    amounts = [
        orjson.loads(line)["features"]["amount"]
        for week in ("week1", "week2")
        for line in (workdir / f"{week}.jsonl").read_bytes().splitlines()
        if line.startswith(b"{") and b"fraud-v1" in line
    ]
    assert model["signals"]["feature:amount"]["mean"] == pytest.approx(np.mean(amounts), rel=1e-9)
    plans = Counter(
        orjson.loads(line)["features"]["plan"]
        for week in ("week1", "week2")
        for line in (workdir / f"{week}.jsonl").read_bytes().splitlines()
        if line.startswith(b"{") and b"fraud-v1" in line
    )
    assert model["signals"]["feature:plan"]["categories"] == dict(plans)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.jsonl"], "--input missing.jsonl: no such file"),
        (["--input", "week1.jsonl", "--topic", "t"], "give either --input FILE or --topic TOPIC"),
        (["--input", "week1.jsonl", "--from", "0"], "--from and --to need --topic"),
        (["--input", "week1.jsonl", "--bins", "0"], "--bins must be from 1 to 1000, got 0"),
        (["--input", "week1.jsonl", "--top-k", "0"], "--top-k must be at least 1, got 0"),
        (
            ["--input", "week1.jsonl", "--output", "no/such/dir/p.json"],
            "--output no/such/dir/p.json: cannot write",
        ),
    ],
)
def test_bad_build_arguments_are_one_line_and_exit_2(workdir: Path, args: list[str], message: str) -> None:
    command = ["profile", "build", "--config", "streamdrift.yaml", "--output", "p.json", *args]
    done = streamdrift(*command, cwd=workdir)
    assert done.returncode == 2, done.stderr
    (line,) = assert_clean_lines(done.stderr)
    assert line.startswith(f"streamdrift: {message}"), line


def test_merging_what_is_not_a_profile_names_the_file(workdir: Path) -> None:
    (workdir / "not.json").write_text('{"format": "something"}')
    (workdir / "broken.json").write_text("{")
    for name, message in (("not.json", "not a streamdrift profile"), ("broken.json", "not JSON")):
        done = streamdrift("profile", "merge", name, name, "--output", "out.json", cwd=workdir)
        assert done.returncode == 2, done.stderr
        (line,) = assert_clean_lines(done.stderr)
        assert line.startswith(f"streamdrift: {name}: {message}"), line


def test_a_replay_with_reference_windows_alerts_as_scipy_computes_on_the_lines_named(workdir: Path) -> None:
    """`profile build` from one week, `replay` of the shifted week with windows against it: each window
    alert's statistic equals scipy's on the lines its window names (`lines`: line numbers of the input)."""

    config = workdir / "streamdrift.yaml"
    config.write_text(
        GOOD_CONFIG
        + "reference:\n  profile: week1.json\n  window: {events: 500}\n"
        + "  numeric: {psi: 0.1, wasserstein: 0.1}\n  categorical: {psi: 0.0}\n"
    )
    built = streamdrift(
        "profile", "build", "--config", "streamdrift.yaml", "--input", "week1.jsonl",
        "--output", "week1.json", cwd=workdir,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    replayed = streamdrift("replay", "--config", "streamdrift.yaml", "--input", "week2.jsonl", cwd=workdir)
    assert replayed.returncode == 0, replayed.stderr
    alerts = [orjson.loads(line) for line in replayed.stdout.splitlines()]
    window_alerts = [a for a in alerts if a["detector"]["type"] in {"psi", "wasserstein"}]
    # Two models x 2,000 events: four windows each; amount moved by 1 std: every window over both thresholds.
    assert {(a["model_id"], a["signal"], a["detector"]["type"]) for a in window_alerts} >= {
        (model, "feature:amount", test)
        for model in ("fraud-v1", "churn-v1")
        for test in ("psi", "wasserstein")
    }
    lines = (workdir / "week2.jsonl").read_bytes().splitlines()
    profile = orjson.loads((workdir / "week1.json").read_bytes())
    decoder = EventDecoder()
    for alert in window_alerts:
        first, last = alert["stats"]["window"]["offsets"]["lines"]
        named = [
            event
            for line in lines[first : last + 1]
            if line.startswith(b"{") and (event := decoder.decode(None, line)).model_id == alert["model_id"]
        ]
        assert len(named) == alert["stats"]["window"]["events"] == 500
        signal, test = alert["signal"], alert["detector"]["type"]
        cells = Cells(profile["models"][alert["model_id"]]["signals"][signal])
        statistic, _ = expected(signal, test, cells, named)
        assert alert["stats"]["statistic"] == pytest.approx(statistic, abs=1e-9), alert


def test_segments_from_the_config_through_build_and_replay(workdir: Path) -> None:
    """`reference.segments` names `plan`: `profile build` profiles each plan value on its own, and the
    replay's segment alerts carry a statistic scipy computes on the lines named that have the segment's
    value."""
    config = workdir / "streamdrift.yaml"
    config.write_text(
        GOOD_CONFIG
        + "reference:\n  profile: week1.json\n  window: {events: 400}\n"
        + "  numeric: {psi: 0.1}\n  categorical: {}\n  segments: [plan]\n"
    )
    built = streamdrift(
        "profile", "build", "--config", "streamdrift.yaml", "--input", "week1.jsonl",
        "--output", "week1.json", cwd=workdir,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    profile = orjson.loads((workdir / "week1.json").read_bytes())
    assert profile["segments"] == ["plan"]
    assert sorted(profile["models"]["fraud-v1"]["segments"]["plan"]) == ["a", "b"]
    replayed = streamdrift("replay", "--config", "streamdrift.yaml", "--input", "week2.jsonl", cwd=workdir)
    assert replayed.returncode == 0, replayed.stderr
    alerts = [orjson.loads(line) for line in replayed.stdout.splitlines()]
    segment_alerts = [a for a in alerts if "segment" in (a.get("stats") or {})]
    assert {(a["model_id"], a["stats"]["segment"]["value"]) for a in segment_alerts} == {
        (model, plan) for model in ("fraud-v1", "churn-v1") for plan in ("a", "b")
    }
    lines = (workdir / "week2.jsonl").read_bytes().splitlines()
    decoder = EventDecoder()
    for alert in segment_alerts:
        value = alert["stats"]["segment"]["value"]
        first, last = alert["stats"]["window"]["offsets"]["lines"]
        named = [
            event
            for line in lines[first : last + 1]
            if line.startswith(b"{")
            and (event := decoder.decode(None, line)).model_id == alert["model_id"]
            and event.features["plan"] == value
        ]
        assert len(named) == alert["stats"]["window"]["events"] == 400
        segment = profile["models"][alert["model_id"]]["segments"]["plan"][value]
        statistic, _ = expected("feature:amount", "psi", Cells(segment["signals"]["feature:amount"]), named)
        assert alert["stats"]["statistic"] == pytest.approx(statistic, abs=1e-9), alert


BUDGET = """
reference:
  profile: {profile}
  window: {{events: 500}}
budget: {{false_alarms: 1, days: 30}}
"""


def test_a_budget_is_calibrated_at_build_and_printed_by_validate(tmp_path: Path) -> None:
    """`profile build` with a budget in the config stores each numeric signal's run-length curve; `config
    validate` prints the fleet's expected false alarms per day, which the budget fixes: one per model per 30
    days for the model with timestamps; the one without is named as outside the budget."""
    rng = np.random.default_rng(4)
    lines = [
        orjson.dumps({
            "model_id": model, "score": float(rng.uniform()),
            "features": {"amount": float(rng.lognormal(0, 1)), "plan": str(rng.choice(["a", "b"]))},
            **({"timestamp": 1_780_000_000 + i * 60} if model == "fraud-v1" else {}),
        })
        for i in range(3_000) for model in ("fraud-v1", "churn-v1")
    ]  # fmt: skip
    (tmp_path / "ref.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    config = tmp_path / "streamdrift.yaml"
    config.write_text(GOOD_CONFIG + BUDGET.format(profile="ref.json"))
    done = streamdrift(
        "profile", "build", "--config", str(config), "--input", str(tmp_path / "ref.jsonl"),
        "--output", str(tmp_path / "ref.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 signals calibrated for the budget" in done.stderr  # amount and score of both models
    signals = orjson.loads((tmp_path / "ref.json").read_bytes())["models"]["fraud-v1"]["signals"]
    assert set(signals["feature:amount"]["run_length"]) == {"delta", "rise", "fall", "clip"}
    assert "run_length" not in signals["feature:plan"]
    done = streamdrift("config", "validate", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "OK",
        "budget: 1 false alarm(s) per model per 30 days; 1 models, 2 signals calibrated (page_hinkley on "
        "standardised values, delta 0.25)",
        f"budget: expected false alarms {1 / 30:.4g}/day for the fleet ({1 / 30:.4g}/day budgeted)",
        "budget: outside: churn-v1: no event rate in the profile (its events have no timestamps, or one "
        "event)",
    ]


def test_a_budget_without_a_profile_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "streamdrift.yaml"
    config.write_text(GOOD_CONFIG + "\nbudget: {false_alarms: 1}\n")
    done = streamdrift("config", "validate", str(config))
    assert done.returncode == 2
    assert assert_clean_lines(done.stderr) == [
        f"streamdrift: {config}: budget: needs reference.profile (the profile gives each model its event "
        "rate and each signal the distribution its threshold is calibrated on)"
    ]
