"""NannyML's CBPE on given data: run with the NannyML venv's python (nannyml_venv.py), never imported.

Input, JSON on stdin or in the file named by the first argument:
    {"chunk_size": 1000, "metrics": ["accuracy", ...],
     "reference": {"score": [...], "prediction": [...], "label": [...]},
     "analysis": {"score": [...], "prediction": [...]}}
Output, JSON on stdout: NannyML's version, whether it decided to calibrate the scores, and per analysis
chunk its first and last row and each metric's estimate (null where NannyML gives NaN):
    {"nannyml": "0.13.1", "needs_calibration": true,
     "chunks": [{"start": 0, "end": 999, "estimates": {"accuracy": 0.81, ...}}, ...]}
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path


def _frame(columns: dict[str, list[float]]):  # a pandas DataFrame: pandas is only in NannyML's venv
    import pandas as pd

    frame = pd.DataFrame(columns)
    frame["prediction"] = frame["prediction"].astype(int)
    if "label" in frame:
        frame["label"] = frame["label"].astype(int)
    return frame


def main() -> None:
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no usage reports sent anywhere
    # A reference of a few windows is what the comparison wants; NannyML's advice against it is noise here.
    warnings.filterwarnings("ignore", message="The resulting number of chunks is too low")
    import nannyml

    text = Path(sys.argv[1]).read_text() if len(sys.argv) > 1 else sys.stdin.read()
    request = json.loads(text)
    metrics = list(request["metrics"])
    estimator = nannyml.CBPE(
        problem_type="classification_binary",
        y_pred_proba="score",
        y_pred="prediction",
        y_true="label",
        metrics=metrics,
        chunk_size=int(request["chunk_size"]),
    )
    estimator.fit(_frame(request["reference"]))
    result = estimator.estimate(_frame(request["analysis"])).filter(period="analysis").to_df()
    chunks = []
    for _, row in result.iterrows():
        values = {m: float(row[(m, "value")]) for m in metrics}
        chunks.append(
            {
                "start": int(row[("chunk", "start_index")]),
                "end": int(row[("chunk", "end_index")]),
                "estimates": {m: None if math.isnan(v) else v for m, v in values.items()},
            }
        )
    answer = {"nannyml": nannyml.__version__, "needs_calibration": bool(estimator.needs_calibration)}
    json.dump(answer | {"chunks": chunks}, sys.stdout)


if __name__ == "__main__":
    main()
