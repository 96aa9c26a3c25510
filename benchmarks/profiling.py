"""Where the service spends its time: py-spy attached to a service run, summarised as top frames.

Profiling runs the service once more, apart from the measured run (sampling costs a little), and records the
middle of it (10% to 90% of the events) in py-spy's raw (collapsed stacks) format, kept in the run's folder.
"""

from __future__ import annotations

import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.broker import BenchError
from benchmarks.service import start_service, wait_for_events
from benchmarks.variants import Variant
from benchmarks.workspace import Scope

TOP = 12


def py_spy() -> Path:
    path = Path(sys.executable).parent / "py-spy"
    if not path.exists():
        raise BenchError("py-spy is not installed in the venv (pip install py-spy)")
    return path


def summarise(collapsed: Path) -> dict[str, Any]:
    """Top frames by own time and by inclusive time, in percent of samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def top(counter: Counter[str]) -> list[tuple[str, float]]:
        return (
            [(frame, round(100 * n / samples, 1)) for frame, n in counter.most_common(TOP)] if samples else []
        )

    return {"file": str(collapsed), "samples": samples, "top_own": top(own), "top_inclusive": top(inclusive)}


def profile_service(scope: Scope, input_topic: str, total: int, variant: Variant) -> dict[str, Any]:
    setup = scope.service_config("profiled", input_topic, variant)
    service = start_service(scope.children, "profiled", setup, instance_id="profiled-0")
    timeout = max(900.0, total / 200)
    wait_for_events(service, total // 10, timeout=timeout)
    output = scope.dir / "service-profile.txt"
    spy = scope.children.start(
        "py-spy",
        [str(py_spy()), "record", "--pid", str(service.pid), "--format", "raw", "--rate", "100",
         "--nonblocking", "--output", str(output)],
        json_stream="stdout",
    )  # fmt: skip
    wait_for_events(service, total * 9 // 10, timeout=timeout)
    spy.stop(sig=signal.SIGINT, timeout=30.0)
    service.stop(timeout=60.0)
    if not output.exists():
        raise BenchError(f"py-spy wrote no profile:\n{spy.tail()}")
    return {**summarise(output), "service_build": variant.name}
