"""Throughput: the service against a bare consumer reading and parsing the same pre-filled topic.

One topic, 2 partitions, 100 models keyed by model id, ~245-byte JSON events with 8 numeric features, a
numeric prediction and a score (seeded). The baseline (`baseline.py`) runs before and after the service; the
service runs with every default detector on every signal — 8 features, 8 missing-value signals, prediction
and score: 18 ADWINs per event — exactly once. Rates are taken over the steady middle of each run (from 20%
to 80% of the events, by the processes' own timestamps); CPU seconds come from /proc and `wait4`.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from typing import Any

from benchmarks import profiling
from benchmarks.broker import BenchError, fill_topic
from benchmarks.events import EventShape, EventStream
from benchmarks.processes import ChildProcess, Line
from benchmarks.rates import SteadyRate, steady_rate
from benchmarks.report import Outcome, Row, events_per_s, ratio
from benchmarks.service import (
    ServiceTopics,
    events_of,
    is_summary,
    log_time,
    start_service,
    wait_for_events,
)
from benchmarks.workspace import Scope, Workspace

DEFAULT_EVENTS = 300_000
QUICK_EVENTS = 30_000
TARGET_RATIO = 0.6
DETECTORS_PER_EVENT = 18


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFigures:
    """One process's pass over the topic."""

    steady: SteadyRate
    window_cpu_s: float | None  # CPU seconds spent inside the steady window
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
            "window_cpu_s": self.window_cpu_s,
            "cpu_s_per_100k_events": None if self.cpu_per_100k is None else round(self.cpu_per_100k, 2),
            "cpu_utilisation_in_window": None
            if self.window_cpu_s is None
            else round(self.window_cpu_s / s.seconds, 2),
            "total_cpu_s": None if self.total_cpu_s is None else round(self.total_cpu_s, 2),
            "wall_s": round(self.wall_s, 2),
        }


def figures(lines: list[tuple[float, float, Line]], total: int, child: ChildProcess) -> RunFigures:
    """From (time, cumulative events, line) progress points and the reaped child."""
    steady = steady_rate([(t, e) for t, e, _ in lines], total)
    cpu_at = {t: line.cpu_s for t, _, line in lines}
    start_cpu, end_cpu = cpu_at.get(steady.start), cpu_at.get(steady.end)
    window = end_cpu - start_cpu if start_cpu is not None and end_cpu is not None else None
    exit_ = child.exit
    return RunFigures(
        steady=steady,
        window_cpu_s=window,
        total_cpu_s=exit_.cpu_s if exit_ else None,
        wall_s=(lines[-1][0] - child.started) if lines else 0.0,
    )


def run_baseline(scope: Scope, topic: str, total: int, name: str) -> RunFigures:
    child = scope.python_child(name, "benchmarks.baseline", "--bootstrap", scope.bootstrap, "--topic", topic)
    child.wait_for(
        lambda line: line.fields.get("event") == "done",
        what="the baseline to read the topic",
        timeout=max(600.0, total / 500),
        progress=lambda line: line.fields.get("events"),
        stall_s=90.0,
    )
    child.wait(timeout=30.0)
    if child.exit is None or child.exit.code != 0:
        raise BenchError(f"{name} failed: {child.tail()}")
    points = [
        (float(line.fields["t"]), float(line.fields["events"]), line)
        for line in child.lines()
        if line.fields.get("event") == "progress"
    ]
    return figures(points, total, child)


def run_service(
    scope: Scope, topics: ServiceTopics, total: int, label: str
) -> tuple[RunFigures, dict[str, Any]]:
    """One instance over the whole topic, from a fresh group; returns its figures and its last summary."""
    config = scope.service_config(label, topics)
    service = start_service(scope.children, label, config, instance_id=f"{label}-0")
    last = wait_for_events(service, total, timeout=max(900.0, total / 200))
    service.stop(timeout=60.0)
    points = [(log_time(line), events_of(line) or 0.0, line) for line in service.lines() if is_summary(line)]
    return figures(points, total, service), last.fields


def measure(workspace: Workspace) -> Outcome:
    options = workspace.options
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    outcome = Outcome(name="throughput")
    with workspace.scope("throughput") as scope:
        topics = scope.service_topics("run")
        scope.create_topic(topics.input, partitions=2)
        stream = EventStream(EventShape(), seed=options.seed)
        fill = fill_topic(scope.bootstrap, topics.input, stream, total)
        print(
            f"throughput: {total:,} events ({fill.mean_value_bytes:.0f} B each) "
            f"produced in {fill.seconds:.1f} s",
            file=sys.stderr,
        )
        baselines = [run_baseline(scope, topics.input, total, "baseline-before")]
        print(f"throughput: baseline {baselines[0].steady.events_per_s:,.0f} ev/s", file=sys.stderr)
        service, summary = run_service(scope, topics, total, "service")
        print(f"throughput: service {service.steady.events_per_s:,.0f} ev/s", file=sys.stderr)
        baselines.append(run_baseline(scope, topics.input, total, "baseline-after"))
        print(f"throughput: baseline {baselines[1].steady.events_per_s:,.0f} ev/s", file=sys.stderr)
        if options.profile:
            outcome.details["profile"] = profiling.profile_service(scope, topics, total)
    base_rate = statistics.mean(b.steady.events_per_s for b in baselines)
    rate = service.steady.events_per_s
    base_cpu = [b.cpu_per_100k for b in baselines if b.cpu_per_100k is not None]
    spread = max(b.steady.events_per_s for b in baselines) - min(b.steady.events_per_s for b in baselines)
    outcome.details.update(
        {
            "events": total,
            "partitions": 2,
            "models": 100,
            "detectors_per_event": DETECTORS_PER_EVENT,
            "mean_value_bytes": round(fill.mean_value_bytes, 1),
            "fill_seconds": round(fill.seconds, 2),
            "baseline_runs": [b.as_dict() for b in baselines],
            "baseline_events_per_s_mean": round(base_rate, 1),
            "baseline_spread_pct": round(100 * spread / base_rate, 1),
            "service": service.as_dict(),
            "service_last_summary": summary,
            "ratio": round(rate / base_rate, 3),
            "commit_interval_ms": options.commit_interval_ms,
        }
    )
    outcome.rows.append(
        Row(
            measurement=f"throughput: service, exactly once, {DETECTORS_PER_EVENT} ADWINs/event",
            figure=events_per_s(rate),
            reference=f"bare consumer {events_per_s(base_rate)} (±{50 * spread / base_rate:.0f}%); "
            f"target ≥ {TARGET_RATIO:.2f}",
            ratio=ratio(rate, base_rate),
            met=rate / base_rate >= TARGET_RATIO,
        )
    )
    if service.cpu_per_100k is not None and base_cpu:
        base = statistics.mean(base_cpu)
        outcome.rows.append(
            Row(
                measurement="throughput: CPU seconds per 100k events",
                figure=f"service {service.cpu_per_100k:.2f} s",
                reference=f"bare consumer {base:.2f} s",
                ratio=ratio(service.cpu_per_100k, base),
            )
        )
    return outcome
