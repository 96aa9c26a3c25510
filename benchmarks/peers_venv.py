"""The venv of the fleet measurement's Quix Streams peer, which cannot share the project's.

quixstreams pins confluent-kafka below 2.13 and the project pins 2.16.1, so the Quix child runs with a venv
of its own: `.cache/bench/peers-venv`, made on first use (`python -m venv`, then `pip install -r
benchmarks/peers-requirements.txt`) and reused while its stamp, the requirements file's SHA-256, matches the
file; an edited file rebuilds it. A lock file keeps two runs from building it at once. `make bench` needs no
step of its own for it.
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

import orjson

from benchmarks.broker import BenchError

REQUIREMENTS = Path(__file__).with_name("peers-requirements.txt")
STAMP = ".requirements-sha256"
# What the table and the JSON say the peers ran on.
DISTRIBUTIONS = ("quixstreams", "river", "orjson", "confluent-kafka")
PIP_TIMEOUT_S = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PeersVenv:
    python: Path
    versions: dict[str, str]  # distribution -> version, as installed there
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


def _run(argv: Sequence[str], what: str, error: type[Exception]) -> None:
    command = " ".join(argv)
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"could not {what}: `{command}`: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise error(f"could not {what}: `{command}` exited {done.returncode}:\n{tail}")


def _versions(python: Path) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{n: m.version(n) for n in {list(DISTRIBUTIONS)!r}}}))"
    )
    done = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"the peers venv's {python} does not run:\n{done.stderr.strip()}")
    versions: dict[str, str] = orjson.loads(done.stdout)
    return versions


def separate_venv(
    directory: Path, requirements: Path, *, what: str, error: type[Exception] = BenchError
) -> float | None:
    """Make sure the venv at `directory` holds `requirements` (`what` names them in messages and errors):
    built, or rebuilt when its stamp does not match the file. Returns the seconds the build took, None when
    the venv was reused; raises `error` when it cannot be built."""
    python = directory / "bin" / "python"
    wanted = requirements_hash(requirements)
    with _locked(directory.with_name(directory.name + ".lock")):
        stamp = directory / STAMP
        if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
            return None
        started = time.monotonic()
        print(f"installing {what} into {directory} (once)", file=sys.stderr)
        shutil.rmtree(directory, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(directory)], f"create the venv of {what}", error)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, "-r", str(requirements)], f"install {what}", error)
        stamp.write_text(wanted + "\n")  # last: a half-built venv is never taken for a good one
        return time.monotonic() - started


def ensure_peers_venv(directory: Path, requirements: Path = REQUIREMENTS) -> PeersVenv:
    """The venv at `directory`, built (or rebuilt) when its stamp does not match `requirements`."""
    seconds = separate_venv(directory, requirements, what="the fleet peers")
    python = directory / "bin" / "python"
    return PeersVenv(python=python, versions=_versions(python), build_seconds=seconds)
