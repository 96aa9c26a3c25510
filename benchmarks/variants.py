"""The builds of the service a run measures side by side, and the rows that compare them.

The current code once per transport (`--transports`, the config's `kafka.client`), and with `--before REF`
the code of an earlier commit on kafka-python: `git archive REF` is unpacked into the run's folder and put
first on the service child's PYTHONPATH, so the same venv runs the old package instead of the installed one.
Which package the old build imports is checked once, with its PYTHONPATH, before any run; each service
child's `started` log line is checked against the transport it should be running: the current code names its
transport there, an old commit names kafka-python (its default) or, before `kafka.client` existed, none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.broker import BenchError
from benchmarks.report import Outcome, Row, ratio

TRANSPORTS = ("kafka-python", "confluent")
BEFORE = "before"


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One build of the service: the current code on one transport, or an earlier commit's code."""

    name: str  # in child names, topic and group names and the JSON: a transport's name, or "before"
    client: str | None  # `kafka.client` in its config; None for code older than the key (left out)
    code_dir: Path | None = None  # first on the child's PYTHONPATH; None: the installed code
    ref: str | None = None
    commit: str | None = None

    @property
    def title(self) -> str:
        return self.name if self.ref is None else f"before {self.ref}, kafka-python"

    def env(self) -> dict[str, str]:
        if self.code_dir is None:
            return {}
        inherited = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": os.pathsep.join([str(self.code_dir), *([inherited] if inherited else [])])}

    def check_started(self, fields: Mapping[str, Any]) -> str | None:
        """What is wrong with a service's `started` line for this build, if anything."""
        transport = fields.get("transport")
        if self.client is None:  # an earlier commit, given no `kafka.client`: its default or none at all
            known = transport in (None, "kafka-python")
            return None if known else f"runs transport={transport}, not kafka-python"
        if transport != self.client:
            return f"runs transport={transport}, not {self.client}"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "client": self.client,
            "code_dir": None if self.code_dir is None else str(self.code_dir),
            "ref": self.ref,
            "commit": self.commit,
        }


def parse_transports(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in TRANSPORTS]
    if not names or unknown:
        raise ValueError(f"--transports takes a comma-separated list of {', '.join(TRANSPORTS)}")
    return names


def resolve_commit(repo: Path, ref: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=repo, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip():
        raise ValueError(f"--before {ref}: not a commit of {repo}")
    return done.stdout.strip()


def unpack(repo: Path, commit: str, into: Path) -> None:
    """`git archive COMMIT | tar -x -C INTO`."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "archive", commit], cwd=repo, stdout=subprocess.PIPE)
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=False)
    archive.stdout.close()
    if archive.wait(timeout=120) != 0 or untar.returncode != 0:
        raise BenchError(f"could not unpack {commit} into {into} with git archive | tar -x")
    if not (into / "streamdrift" / "__init__.py").exists():
        raise BenchError(f"{commit} has no streamdrift package")


def imported_from(variant: Variant, cwd: Path) -> Path:
    """Where a child with the variant's environment imports the streamdrift package from."""
    done = subprocess.run(
        [sys.executable, "-c", "import streamdrift; print(streamdrift.__file__)"],
        cwd=cwd, env={**os.environ, **variant.env()}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"{variant.title}: streamdrift does not import:\n{done.stderr.strip()}")
    return Path(done.stdout.strip()).resolve()


def build_variants(
    repo: Path, run_dir: Path, transports: tuple[str, ...], before: str | None
) -> tuple[Variant, ...]:
    """The builds in the order they run in each round: the old code first, then each transport."""
    current = tuple(Variant(name=name, client=name) for name in transports)
    if before is None:
        return current
    commit = resolve_commit(repo, before)
    code_dir = run_dir / BEFORE
    unpack(repo, commit, code_dir)
    old = Variant(name=BEFORE, client=None, code_dir=code_dir.resolve(), ref=before, commit=commit)
    found = imported_from(old, run_dir)
    if not found.is_relative_to(old.code_dir or code_dir):
        raise BenchError(f"with PYTHONPATH={code_dir}, streamdrift still imports from {found}")
    print(f"benchmarks: {before} ({commit[:12]}) unpacked into {code_dir}", file=sys.stderr)
    return (old, *current)


def compare(
    outcome: Outcome,
    label: str,
    values: Mapping[str, float | None],
    show: Callable[[float], str],
    *,
    lower_is_better: bool = False,
) -> None:
    """Rows (and JSON) for confluent / kafka-python and kafka-python after / before, where both were run."""
    python, confluent, before = (values.get(name) for name in ("kafka-python", "confluent", BEFORE))
    better = "lower is better" if lower_is_better else "higher is better"
    found: dict[str, float | None] = {}
    for title, key, top, bottom in (
        ("confluent / kafka-python", "confluent_over_kafka_python", confluent, python),
        ("kafka-python after / before", "after_over_before", python, before),
    ):
        if top is None or bottom is None:
            continue
        found[key] = round(top / bottom, 3) if bottom else None
        outcome.rows.append(
            Row(
                measurement=f"  {label}: {title}",
                figure=f"{show(top)} / {show(bottom)}",
                reference=better,
                ratio=ratio(top, bottom),
            )
        )
    if found:
        outcome.details.setdefault("comparisons", {})[label] = {
            **found,
            "values": {name: None if value is None else round(value, 3) for name, value in values.items()},
            "lower_is_better": lower_is_better,
        }


def succeeded(
    outcome: Outcome, variants: tuple[Variant, ...], failed: Mapping[str, str]
) -> tuple[Variant, ...]:
    """The builds that did not fail; a FAILED row (and the error in the JSON) for each that did. Raises
    BenchError when every build failed."""
    done = tuple(variant for variant in variants if variant.name not in failed)
    if not done:
        raise BenchError(
            "every build failed: " + "; ".join(f"{name}: {error}" for name, error in failed.items())
        )
    if failed:
        outcome.details["failed_builds"] = dict(failed)
    for variant in variants:
        if variant.name in failed:
            first = failed[variant.name].splitlines()[0]
            outcome.rows.append(Row(measurement=tagged(outcome.name, variant), figure=f"FAILED: {first}"))
    return done


def tagged(label: str, variant: Variant) -> str:
    """A table row's measurement, for one build."""
    return f"{label} [{variant.title}]"
