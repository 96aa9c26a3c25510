"""The venv of the NannyML oracle, which cannot share the project's.

NannyML pins numpy, pandas and scikit-learn versions the project does not use, so the CBPE cross-check runs
NannyML in a venv of its own: `.cache/nannyml-venv`, made on first use (`python -m venv`, then `pip install
-r tests/oracles/nannyml-requirements.txt`) and reused while its stamp, the requirements file's SHA-256,
matches the file; an edited file rebuilds it. A lock file keeps two runs from building it at once. This
follows benchmarks/peers_venv.py; it does not import it, so that the tests do not depend on the benchmarks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("nannyml-requirements.txt")
DIRECTORY = Path(__file__).resolve().parents[2] / ".cache" / "nannyml-venv"
STAMP = ".requirements-sha256"
PIP_TIMEOUT_S = 900.0


class OracleVenvError(RuntimeError):
    """The oracle's venv could not be built or does not run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleVenv:
    python: Path
    nannyml_version: str
    build_seconds: float | None  # None: an existing venv was reused


def requirements_hash(path: Path = REQUIREMENTS) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv: Sequence[str], what: str) -> None:
    command = " ".join(argv)
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OracleVenvError(f"could not {what}: `{command}`: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise OracleVenvError(f"could not {what}: `{command}` exited {done.returncode}:\n{tail}")


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
    python = directory / "bin" / "python"
    wanted = requirements_hash(requirements)
    with _locked(directory.with_name(directory.name + ".lock")):
        stamp = directory / STAMP
        if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
            return OracleVenv(python=python, nannyml_version=_nannyml_version(python), build_seconds=None)
        started = time.monotonic()
        print(f"tests: installing NannyML into {directory} (once)", file=sys.stderr)
        shutil.rmtree(directory, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(directory)], "create the NannyML venv")
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, "-r", str(requirements)], "install NannyML")
        stamp.write_text(wanted + "\n")  # last: a half-built venv is never taken for a good one
        version = _nannyml_version(python)
        return OracleVenv(python=python, nannyml_version=version, build_seconds=time.monotonic() - started)
