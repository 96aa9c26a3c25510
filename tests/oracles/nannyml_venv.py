"""The venv of the NannyML oracle, which cannot share the project's.

NannyML pins numpy, pandas and scikit-learn versions the project does not use, so the CBPE cross-check runs
NannyML in a venv of its own: `.cache/nannyml-venv`, made on first use (`python -m venv`, then `pip install
-r tests/oracles/nannyml-requirements.txt`) and reused while its stamp, the requirements file's SHA-256,
matches the file; an edited file rebuilds it. A lock file keeps two runs from building it at once: the
builder is the benchmarks' Quix Streams peer's (benchmarks/peers_venv.py).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.peers_venv import separate_venv

REQUIREMENTS = Path(__file__).with_name("nannyml-requirements.txt")
DIRECTORY = Path(__file__).resolve().parents[2] / ".cache" / "nannyml-venv"


class OracleVenvError(RuntimeError):
    """The oracle's venv could not be built or does not run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleVenv:
    python: Path
    nannyml_version: str
    build_seconds: float | None  # None: an existing venv was reused


def _nannyml_version(python: Path) -> str:
    script = "import importlib.metadata as m; print(m.version('nannyml'))"
    done = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise OracleVenvError(f"the NannyML venv's {python} does not run:\n{done.stderr.strip()}")
    return done.stdout.strip()


def ensure_nannyml_venv(directory: Path = DIRECTORY, requirements: Path = REQUIREMENTS) -> OracleVenv:
    """The venv at `directory`, built (or rebuilt) when its stamp does not match `requirements`."""
    seconds = separate_venv(directory, requirements, what="NannyML", error=OracleVenvError)
    python = directory / "bin" / "python"
    return OracleVenv(python=python, nannyml_version=_nannyml_version(python), build_seconds=seconds)
