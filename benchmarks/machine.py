"""The machine a run happened on: enough to tell whether two runs are comparable."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def code_version(repo: Path) -> dict[str, Any]:
    """The commit measured, and the streamdrift/ files with uncommitted changes (the figures are of those)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "streamdrift")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "streamdrift_uncommitted_changes": changed.splitlines(),
    }


def _librdkafka() -> str:
    try:
        import confluent_kafka  # noqa: PLC0415 -- an optional extra
    except ImportError:
        return "not installed"
    return str(confluent_kafka.libversion()[0])


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info(repo: Path) -> dict[str, Any]:
    return {
        "code": code_version(repo),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka_python": _version("kafka-python"),
        "confluent_kafka": _version("confluent-kafka"),
        "librdkafka": _librdkafka(),
        "crc32c": _version("crc32c"),
        "river": _version("river"),
        "orjson": _version("orjson"),
        "streamdrift": _version("streamdrift"),
        "load_average_at_start": load_average(),
    }
