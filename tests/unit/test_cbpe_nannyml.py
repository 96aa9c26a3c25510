"""Our CBPE against NannyML's on the same data: every estimated metric of every window within 0.01.

NannyML runs in a venv of its own (tests/oracles/nannyml_venv.py, built on first use, about 1.5 minutes;
reused after), through the script tests/oracles/nannyml_cbpe.py. When the venv cannot be built this test
FAILS: it never skips.

Like for like: NannyML calibrates only when its `needs_calibration` check (isotonic regression in 10
stratified splits of the reference must lower the expected calibration error) says so, and otherwise
estimates from the raw scores; we always calibrate. On raw scores that are already calibrated the two would
differ by the isotonic fit's noise, which is not what is being compared. So the model here is clearly
under-confident (its score is sigmoid(0.5 · logit)), NannyML decides to calibrate, and the test checks that
it did: both then fit the same isotonic map on the same reference and estimate from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.peers_venv import STAMP
from streamdrift.core.cbpe import METRICS, CbpeReference
from tests.oracles.nannyml_venv import OracleVenvError, ensure_nannyml_venv
from tests.unit.test_cbpe import close_window, synthetic

SCRIPT = Path(__file__).resolve().parents[1] / "oracles" / "nannyml_cbpe.py"
WINDOW = 1000
SHIFTS = (0.0, -0.75, -0.25, 0.5, 1.0, 1.5, 2.0, 0.25)  # covariate shift: the input mean of each window
TOLERANCE = 0.01


def nannyml_estimates(python: Path, request: dict[str, object], tmp_path: Path) -> dict:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    env = os.environ | {"NML_DISABLE_USAGE_LOGGING": "1"}
    done = subprocess.run(
        [str(python), str(SCRIPT), str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert done.returncode == 0, f"nannyml_cbpe.py exited {done.returncode}:\n{done.stderr[-3000:]}"
    answer: dict = json.loads(done.stdout)
    return answer


def test_estimates_match_nannyml(tmp_path: Path) -> None:
    venv = ensure_nannyml_venv()  # raises, and so fails the test, when the venv cannot be built
    if venv.build_seconds is not None:
        print(f"built the NannyML venv in {venv.build_seconds:.1f} s")
    rng = np.random.default_rng(2024)
    ref = synthetic(rng, 5 * WINDOW, 0.0, squash=0.5)
    windows = [synthetic(rng, WINDOW, mu, squash=0.5) for mu in SHIFTS]

    reference = CbpeReference.fit(ref.scores, ref.labels, window_events=WINDOW)
    ours = [close_window(reference, window, seed=i).estimates for i, window in enumerate(windows)]

    request = {
        "chunk_size": WINDOW,
        "metrics": list(METRICS),
        "reference": {
            "score": ref.scores.tolist(),
            "prediction": ref.predictions.tolist(),
            "label": ref.labels.tolist(),
        },
        "analysis": {
            "score": np.concatenate([w.scores for w in windows]).tolist(),
            "prediction": np.concatenate([w.predictions for w in windows]).tolist(),
        },
    }
    started = time.monotonic()
    theirs = nannyml_estimates(venv.python, request, tmp_path)
    print(f"NannyML {theirs['nannyml']} ran in {time.monotonic() - started:.1f} s")
    assert theirs["needs_calibration"], "NannyML did not calibrate: the comparison would not be like for like"
    assert [(c["start"], c["end"]) for c in theirs["chunks"]] == [
        (i * WINDOW, (i + 1) * WINDOW - 1) for i in range(len(windows))
    ]

    largest = dict.fromkeys(METRICS, 0.0)
    for i, (mine, chunk) in enumerate(zip(ours, theirs["chunks"], strict=True)):
        for name in METRICS:
            difference = abs(mine[name].value - chunk["estimates"][name])
            largest[name] = max(largest[name], difference)
            assert difference <= TOLERANCE, (i, name, mine[name].value, chunk["estimates"][name])
    print("largest |ours - NannyML| per metric: " + ", ".join(f"{n} {d:.2e}" for n, d in largest.items()))
    # The shifts must have moved the estimates, or agreeing would say little.
    accuracies = [chunk["estimates"]["accuracy"] for chunk in theirs["chunks"]]
    assert max(accuracies) - min(accuracies) > 0.05


def test_a_venv_that_cannot_be_built_raises(tmp_path: Path) -> None:
    """What makes the comparison fail, not skip, without NannyML: the builder raises (a requirements file
    that pip cannot parse fails locally, without asking the registry for anything)."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("this is not === a requirement\n")
    with pytest.raises(OracleVenvError, match="could not install NannyML"):
        ensure_nannyml_venv(tmp_path / "venv", requirements)
    assert not (tmp_path / "venv" / STAMP).exists()
