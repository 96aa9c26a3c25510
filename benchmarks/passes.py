"""One process's pass over a pre-filled topic — the service's or a bare consumer's — and its figures.

Rates are taken over the steady middle of the pass (20% to 80% of the events, by the process's own
timestamps). CPU seconds come from /proc (inside the window) and `wait4` (whole run); "rest of machine" is
what every other process — the broker, and whatever else shares the host — kept busy during the window, in
cores.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from benchmarks.broker import BenchError
from benchmarks.processes import ChildProcess, Line
from benchmarks.rates import SteadyRate, steady_rate
from benchmarks.service import events_of, is_summary, log_time, start_service, wait_for_events
from benchmarks.variants import Variant
from benchmarks.workspace import Scope


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFigures:
    """One process's pass over the topic."""

    steady: SteadyRate
    window_cpu_s: float | None  # CPU seconds the process spent inside the steady window
    others_cores: float | None  # cores every other process kept busy inside the window
    total_cpu_s: float | None  # over the whole life of the process (wait4)
    wall_s: float  # from process start to its last progress line

    @property
    def cpu_per_100k(self) -> float | None:
        if self.window_cpu_s is None:
            return None
        return self.window_cpu_s / (self.steady.to_events - self.steady.from_events) * 100_000

    def as_dict(self) -> dict[str, Any]:
        s = self.steady
        return {
            "events_per_s": round(s.events_per_s, 1),
            "window_s": round(s.seconds, 2),
            "window_events": [s.from_events, s.to_events],
            "window_cpu_s": None if self.window_cpu_s is None else round(self.window_cpu_s, 2),
            "cpu_s_per_100k_events": None if self.cpu_per_100k is None else round(self.cpu_per_100k, 2),
            "cpu_utilisation_in_window": None
            if self.window_cpu_s is None
            else round(self.window_cpu_s / s.seconds, 2),
            "rest_of_machine_busy_cores": None if self.others_cores is None else round(self.others_cores, 2),
            "total_cpu_s": None if self.total_cpu_s is None else round(self.total_cpu_s, 2),
            "wall_s": round(self.wall_s, 2),
        }


def figures(points: list[tuple[float, float, Line]], total: int, child: ChildProcess) -> RunFigures:
    """From (time, cumulative events, line) progress points of a reaped child."""
    steady = steady_rate([(t, e) for t, e, _ in points], total)
    at = {t: line for t, _, line in points}
    first, last = at[steady.start], at[steady.end]
    window = others = None
    if first.cpu_s is not None and last.cpu_s is not None:
        window = last.cpu_s - first.cpu_s
        if first.system_busy_s is not None and last.system_busy_s is not None:
            others = max(
                0.0, (last.system_busy_s - first.system_busy_s - window) / (last.received - first.received)
            )
    return RunFigures(
        steady=steady,
        window_cpu_s=window,
        others_cores=others,
        total_cpu_s=child.exit.cpu_s if child.exit else None,
        wall_s=(points[-1][0] - child.started) if points else 0.0,
    )


def run_reader(scope: Scope, name: str, argv: list[str], total: int) -> RunFigures:
    """One child reading the whole topic (the baseline, a peer), printing `baseline.py`'s progress lines:
    its figures from them."""
    child = scope.children.start(name, argv, json_stream="stdout")
    done = child.wait_for(
        lambda line: line.fields.get("event") == "done",
        what=f"{name} to read the topic",
        timeout=max(900.0, total / 200),
        progress=lambda line: line.fields.get("events"),
        stall_s=90.0,
    )
    exit_ = child.wait(timeout=60.0)
    if exit_.code != 0:
        raise BenchError(f"{name} failed (exit {exit_.code}): {child.tail()}")
    if int(done.fields["events"]) < total:
        raise BenchError(f"{name} read {done.fields['events']} events, not {total}")
    points = [
        (float(line.fields["t"]), float(line.fields["events"]), line)
        for line in child.lines()
        if line.fields.get("event") == "progress"
    ]
    return figures(points, total, child)


def run_baseline(
    scope: Scope, topic: str, total: int, name: str, *, batch_reader: bool = False
) -> RunFigures:
    args = ["--bootstrap", scope.bootstrap, "--topic", topic] + (["--batch-reader"] if batch_reader else [])
    return run_reader(scope, name, [sys.executable, "-m", "benchmarks.baseline", *args], total)


def run_service(
    scope: Scope, input_topic: str, total: int, label: str, variant: Variant
) -> tuple[RunFigures, dict[str, Any]]:
    """One instance of `variant` over the whole topic, from a fresh group; its figures and last summary."""
    setup = scope.service_config(label, input_topic, variant)
    service = start_service(scope.children, label, setup, instance_id=f"{label}-0")
    last = wait_for_events(service, total, timeout=max(900.0, total / 200))
    service.stop(timeout=60.0)
    points = [(log_time(line), events_of(line) or 0.0, line) for line in service.lines() if is_summary(line)]
    return figures(points, total, service), last.fields
