"""Throughput: the service against a bare consumer reading and parsing the same pre-filled topic.

One topic, 2 partitions, 100 models keyed by model id, ~245-byte JSON events with 8 numeric features, a
numeric prediction and a score (seeded). The service runs with every default detector on every signal — 8
features, 8 missing-value signals, the type-mismatch rate, prediction and score: 19 ADWINs per event — exactly
once, each run from a fresh consumer group with fresh alerts and state topics, once per build in each round
(`variants.py`: the old code first with --before, then each transport). Baseline and service runs alternate
(B S.. B S.. B for two repeats) so that drifting background load hits all of them; the figures are medians.
Rates are taken over the steady middle of each run (`passes.py`).
"""

from __future__ import annotations

import statistics
import sys
from functools import partial
from typing import Any

from benchmarks import profiling
from benchmarks.broker import fill_topic
from benchmarks.events import EventShape, EventStream
from benchmarks.passes import RunFigures, run_baseline, run_service
from benchmarks.report import Outcome, Row, events_per_s, ratio
from benchmarks.variants import Variant, compare, succeeded, tagged
from benchmarks.workspace import Workspace

DEFAULT_EVENTS = 300_000
QUICK_EVENTS = 60_000
TARGET_RATIO = 0.6
DETECTORS_PER_EVENT = 19


def _rates(runs: list[RunFigures]) -> str:
    return ", ".join(f"{run.steady.events_per_s:,.0f}" for run in runs)


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def measure(workspace: Workspace) -> Outcome:
    options, variants = workspace.options, workspace.variants
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    repeats = options.repeat or (1 if options.quick else 2)
    outcome = Outcome(name="throughput")
    services: dict[str, list[RunFigures]] = {variant.name: [] for variant in variants}
    summaries: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in variants}
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
        for i in range(1, repeats + 1):
            for variant in variants:
                label = f"{variant.name}-{i}"
                done = scope.attempt(variant, partial(run_service, scope, input_topic, total, label, variant))
                if done is not None:
                    services[variant.name].append(done[0])
                    summaries[variant.name].append(done[1])
            baselines.append(run_baseline(scope, input_topic, total, f"baseline-{i + 1}"))
            same_reader.append(
                run_baseline(scope, input_topic, total, f"baseline-batch-reader-{i}", batch_reader=True)
            )
            each = "; ".join(f"{v.title} {_rates(services[v.name]) or 'failed'}" for v in variants)
            print(
                f"throughput: baseline {_rates(baselines)} ev/s; service {each} ev/s; "
                f"baseline with the service's batch reader {_rates(same_reader)} ev/s",
                file=sys.stderr,
            )
        if options.profile:
            profiled = next(v for v in variants if v.ref is None)
            outcome.details["profile"] = profiling.profile_service(scope, input_topic, total, profiled)
        failed = dict(scope.failed)
    base_rate = statistics.median(b.steady.events_per_s for b in baselines)
    same_reader_rate = statistics.median(b.steady.events_per_s for b in same_reader)
    base_cpu = _median([b.cpu_per_100k for b in baselines])
    outcome.details.update(
        {
            "events": total,
            "partitions": 2,
            "models": 100,
            "detectors_per_event": DETECTORS_PER_EVENT,
            "mean_value_bytes": round(fill.mean_value_bytes, 1),
            "fill_seconds": round(fill.seconds, 2),
            "repeats": repeats,
            "run_order_per_round": [v.name for v in variants] + ["baseline", "baseline-batch-reader"],
            "baseline_runs": [b.as_dict() for b in baselines],
            "same_reader_baseline_runs": [b.as_dict() for b in same_reader],
            "same_reader_baseline_events_per_s_median": round(same_reader_rate, 1),
            "baseline_events_per_s_median": round(base_rate, 1),
            "baseline_cpu_s_per_100k_events_median": None if base_cpu is None else round(base_cpu, 2),
            "commit_interval_ms": options.commit_interval_ms,
            "variants": {},
        }
    )
    rates: dict[str, float | None] = {}
    cpus: dict[str, float | None] = {}
    variants = succeeded(outcome, variants, failed)
    for variant in variants:
        runs = services[variant.name]
        rate = rates[variant.name] = statistics.median(s.steady.events_per_s for s in runs)
        cpu = cpus[variant.name] = _median([s.cpu_per_100k for s in runs])
        outcome.details["variants"][variant.name] = {
            **variant.as_dict(),
            "service_runs": [s.as_dict() for s in runs],
            "service_last_summaries": summaries[variant.name],
            "service_events_per_s": round(rate, 1),
            "ratio": round(rate / base_rate, 3),
            "same_reader_ratio": round(rate / same_reader_rate, 3),
            "cpu_s_per_100k_events_median": None if cpu is None else round(cpu, 2),
        }
        _rows(outcome, variant, runs, rate, base_rate, _rates(baselines))
    compare(outcome, "throughput", rates, events_per_s)
    # The service reads batches faster than kafka-python does (streamdrift/kafka/batches.py): next to a bare
    # consumer reading them the same way, the ratio is the share of the service's time that is reading.
    for variant in variants:
        outcome.rows.append(
            Row(
                measurement=tagged(
                    "throughput: service vs a bare consumer reading batches as it does", variant
                ),
                figure=events_per_s(rates[variant.name] or 0.0),
                reference=f"bare kafka-python consumer with the service's batch reader "
                f"{events_per_s(same_reader_rate)} (runs {_rates(same_reader)})",
                ratio=ratio(rates[variant.name] or 0.0, same_reader_rate),
            )
        )
    if base_cpu is not None:
        for variant in variants:
            cpu = cpus[variant.name]
            if cpu is not None:
                outcome.rows.append(
                    Row(
                        measurement=tagged("throughput: CPU seconds per 100k events (in window)", variant),
                        figure=f"service {cpu:.2f} s",
                        reference=f"bare consumer {base_cpu:.2f} s",
                        ratio=ratio(cpu, base_cpu),
                    )
                )
        compare(
            outcome, "throughput CPU s per 100k events", cpus, lambda x: f"{x:.2f} s", lower_is_better=True
        )
    return outcome


def _rows(
    outcome: Outcome, variant: Variant, runs: list[RunFigures], rate: float, base_rate: float, base_runs: str
) -> None:
    others = [s.others_cores for s in runs if s.others_cores is not None]
    busy = f"; rest of machine {statistics.median(others):.1f} cores busy" if others else ""
    outcome.rows.append(
        Row(
            measurement=tagged(
                f"throughput: service, exactly once, {DETECTORS_PER_EVENT} ADWINs/event", variant
            ),
            figure=f"{events_per_s(rate)} (runs {_rates(runs)}{busy})",
            reference=f"bare consumer {events_per_s(base_rate)} (runs {base_runs}); "
            f"target ≥ {TARGET_RATIO:.2f}",
            ratio=ratio(rate, base_rate),
            met=rate / base_rate >= TARGET_RATIO,
        )
    )
