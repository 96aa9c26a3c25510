"""Throughput: the service against a bare consumer reading and parsing the same pre-filled topic.

One topic, 2 partitions, 100 models keyed by model id, ~245-byte JSON events with 8 numeric features, a
numeric prediction and a score (seeded). The service runs with every default detector on every signal — 8
features, 8 missing-value signals, the type-mismatch rate, prediction and score: 19 ADWINs per event — exactly
once, each run from a fresh consumer group with fresh alerts and state topics. Baseline and service runs
alternate (B S B S B for two repeats) so that drifting background load hits both; the figures are medians.
Rates are taken over the steady middle of each run (20% to 80% of the events, by the processes' own
timestamps). CPU seconds come from /proc (inside the window) and `wait4` (whole run); "rest of machine" is
what every other process — the broker, and whatever else shares the host — kept busy during the window, in
cores.
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
from benchmarks.service import events_of, is_summary, log_time, start_service, wait_for_events
from benchmarks.workspace import Scope, Workspace

DEFAULT_EVENTS = 300_000
QUICK_EVENTS = 60_000
TARGET_RATIO = 0.6
DETECTORS_PER_EVENT = 19


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


def run_baseline(
    scope: Scope, topic: str, total: int, name: str, *, batch_reader: bool = False
) -> RunFigures:
    args = ["--bootstrap", scope.bootstrap, "--topic", topic] + (["--batch-reader"] if batch_reader else [])
    child = scope.python_child(name, "benchmarks.baseline", *args)
    child.wait_for(
        lambda line: line.fields.get("event") == "done",
        what="the baseline to read the topic",
        timeout=max(600.0, total / 500),
        progress=lambda line: line.fields.get("events"),
        stall_s=90.0,
    )
    exit_ = child.wait(timeout=30.0)
    if exit_.code != 0:
        raise BenchError(f"{name} failed: {child.tail()}")
    points = [
        (float(line.fields["t"]), float(line.fields["events"]), line)
        for line in child.lines()
        if line.fields.get("event") == "progress"
    ]
    return figures(points, total, child)


def run_service(scope: Scope, input_topic: str, total: int, label: str) -> tuple[RunFigures, dict[str, Any]]:
    """One instance over the whole topic, from a fresh group; returns its figures and its last summary."""
    setup = scope.service_config(label, input_topic)
    service = start_service(scope.children, label, setup, instance_id=f"{label}-0")
    last = wait_for_events(service, total, timeout=max(900.0, total / 200))
    service.stop(timeout=60.0)
    points = [(log_time(line), events_of(line) or 0.0, line) for line in service.lines() if is_summary(line)]
    return figures(points, total, service), last.fields


def _rates(runs: list[RunFigures]) -> str:
    return ", ".join(f"{run.steady.events_per_s:,.0f}" for run in runs)


def measure(workspace: Workspace) -> Outcome:
    options = workspace.options
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    repeats = options.repeat or (1 if options.quick else 2)
    outcome = Outcome(name="throughput")
    with workspace.scope("throughput") as scope:
        input_topic = scope.input_topic()
        fill = fill_topic(scope.bootstrap, input_topic, EventStream(EventShape(), seed=options.seed), total)
        print(
            f"throughput: {total:,} events ({fill.mean_value_bytes:.0f} B each) "
            f"produced in {fill.seconds:.1f} s",
            file=sys.stderr,
        )
        baselines = [run_baseline(scope, input_topic, total, "baseline-1")]
        same_reader: list[RunFigures] = []
        services: list[RunFigures] = []
        summaries: list[dict[str, Any]] = []
        for i in range(1, repeats + 1):
            service, summary = run_service(scope, input_topic, total, f"service-{i}")
            services.append(service)
            summaries.append(summary)
            baselines.append(run_baseline(scope, input_topic, total, f"baseline-{i + 1}"))
            same_reader.append(
                run_baseline(scope, input_topic, total, f"baseline-batch-reader-{i}", batch_reader=True)
            )
            print(
                f"throughput: baseline {_rates(baselines)} ev/s; service {_rates(services)} ev/s; "
                f"baseline with the service's batch reader {_rates(same_reader)} ev/s",
                file=sys.stderr,
            )
        if options.profile:
            outcome.details["profile"] = profiling.profile_service(scope, input_topic, total)
    base_rate = statistics.median(b.steady.events_per_s for b in baselines)
    same_reader_rate = statistics.median(b.steady.events_per_s for b in same_reader)
    rate = statistics.median(s.steady.events_per_s for s in services)
    others = [s.others_cores for s in services if s.others_cores is not None]
    outcome.details.update(
        {
            "events": total,
            "partitions": 2,
            "models": 100,
            "detectors_per_event": DETECTORS_PER_EVENT,
            "mean_value_bytes": round(fill.mean_value_bytes, 1),
            "fill_seconds": round(fill.seconds, 2),
            "repeats": repeats,
            "baseline_runs": [b.as_dict() for b in baselines],
            "same_reader_baseline_runs": [b.as_dict() for b in same_reader],
            "same_reader_baseline_events_per_s_median": round(same_reader_rate, 1),
            "same_reader_ratio": round(rate / same_reader_rate, 3),
            "service_runs": [s.as_dict() for s in services],
            "service_last_summaries": summaries,
            "baseline_events_per_s_median": round(base_rate, 1),
            "service_events_per_s": round(rate, 1),
            "ratio": round(rate / base_rate, 3),
            "commit_interval_ms": options.commit_interval_ms,
        }
    )
    busy = f"; rest of machine {statistics.median(others):.1f} cores busy" if others else ""
    outcome.rows.append(
        Row(
            measurement=f"throughput: service, exactly once, {DETECTORS_PER_EVENT} ADWINs/event",
            figure=f"{events_per_s(rate)} (runs {_rates(services)}{busy})",
            reference=f"bare consumer {events_per_s(base_rate)} (runs {_rates(baselines)}); "
            f"target ≥ {TARGET_RATIO:.2f}",
            ratio=ratio(rate, base_rate),
            met=rate / base_rate >= TARGET_RATIO,
        )
    )
    # The service reads batches faster than kafka-python does (streamdrift/kafka/batches.py): next to a bare
    # consumer reading them the same way, the ratio is the share of the service's time that is reading.
    outcome.rows.append(
        Row(
            measurement="throughput: service vs a bare consumer reading batches as the service does",
            figure=f"{events_per_s(rate)}",
            reference=f"bare consumer with the batch reader {events_per_s(same_reader_rate)} "
            f"(runs {_rates(same_reader)})",
            ratio=ratio(rate, same_reader_rate),
        )
    )
    service_cpu = [s.cpu_per_100k for s in services if s.cpu_per_100k is not None]
    base_cpu = [b.cpu_per_100k for b in baselines if b.cpu_per_100k is not None]
    if service_cpu and base_cpu:
        cpu, base = statistics.median(service_cpu), statistics.median(base_cpu)
        outcome.rows.append(
            Row(
                measurement="throughput: CPU seconds per 100k events (in window)",
                figure=f"service {cpu:.2f} s",
                reference=f"bare consumer {base:.2f} s",
                ratio=ratio(cpu, base),
            )
        )
    return outcome
