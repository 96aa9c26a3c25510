"""`multivariate:reconstruction` and estimated performance through the commands a user runs: `profile build`
fits both from a labelled reference file, and `replay` of the live file gives the drift where River's ADWIN
puts it on numpy's own reconstruction errors, the estimates' alerts, and the same bytes on every run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from tests.e2e.test_cli import streamdrift
from tests.unit.test_multivariate_signal import FLIP_AT, NAMES, first_adwin_drift, oracle_errors, pairs

SCORES_MOVE_AT = 4_500

CONFIG = """
kafka: {bootstrap_servers: "127.0.0.1:1"}
topics: {input: [events]}
defaults:
  prediction: {enabled: false}
  score: {enabled: false}
reference:
  profile: ref.json
  multivariate: {}
  performance: {window_events: 500}
"""


def lines(
    rows: np.ndarray, rng: np.random.Generator, *, labelled: bool, shift_from: int | None = None
) -> bytes:
    """Events of model m: the rows as features, a score from the first feature (from row `shift_from` on,
    the scores move up by 2 on the logit scale) and, in the reference, a label drawn from the score."""
    out = []
    for index, row in enumerate(rows):
        offset = 2.0 if shift_from is not None and index >= shift_from else 0.0
        score = float(1 / (1 + np.exp(-(row[0] + offset))))
        event = {"model_id": "m", "features": dict(zip(NAMES, map(float, row), strict=True)), "score": score}
        if labelled:
            event["label"] = int(rng.uniform() < score)
        out.append(orjson.dumps(event))
    return b"\n".join(out) + b"\n"


def test_profile_build_then_replay(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    reference = pairs(1, [(0.9, 4_000)])
    live = pairs(2, [(0.9, FLIP_AT), (-0.9, 3_000)])
    (tmp_path / "streamdrift.yaml").write_text(CONFIG)
    (tmp_path / "ref.jsonl").write_bytes(lines(reference, rng, labelled=True))
    (tmp_path / "live.jsonl").write_bytes(lines(live, rng, labelled=False, shift_from=SCORES_MOVE_AT))
    built = streamdrift(
        "profile", "build", "--config", str(tmp_path / "streamdrift.yaml"), "--input",
        str(tmp_path / "ref.jsonl"), "--output", str(tmp_path / "ref.json"),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "1 models with a CBPE reference" in built.stderr

    first = streamdrift("replay", "--config", str(tmp_path / "streamdrift.yaml"), "--input",
                        str(tmp_path / "live.jsonl"))  # fmt: skip
    again = streamdrift("replay", "--config", str(tmp_path / "streamdrift.yaml"), "--input",
                        str(tmp_path / "live.jsonl"))  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout
    alerts = [orjson.loads(line) for line in first.stdout.splitlines()]
    drifts = [a for a in alerts if a["level"] == "drift"]
    reconstruction = [a["source"]["offset"] for a in drifts if a["signal"] == "multivariate:reconstruction"]
    assert reconstruction[:1] == [first_adwin_drift(oracle_errors(reference, live))]
    assert not [a for a in drifts if a["signal"].startswith("feature:")]
    # The score depends on feature a alone, whose marginal the flip leaves alone: the estimates leave their
    # band only once the scores move, in the windows closed after that.
    estimated = [a for a in drifts if a["signal"].startswith("estimated:")]
    assert estimated, "no estimated performance alert"
    assert min(a["source"]["offset"] for a in estimated) >= SCORES_MOVE_AT
    assert all((a["source"]["offset"] + 1) % 500 == 0 for a in estimated)
