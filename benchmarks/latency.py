"""Latency: from producing an event to its alert being visible to a read_committed reader.

The service runs on a fresh, empty 2-partition topic; once it owns both partitions, `pacer.py` produces a
steady rate — `--rate`, else half the slowest build's measured throughput when that ran, else 2,000 events/s —
where ten models get half the traffic and switch one feature by 100 standard deviations every 100 of their
events, so ADWIN fires shortly after each switch (the pacer produces through kcat when it is installed, as
`make bench` ensures). The harness reads the alerts topic (read_committed) and, for each alert, takes
latency = arrival time - `source.timestamp_ms` (the triggering record's timestamp, set when it was produced;
same host, same clock). The first seconds are warm-up and left out. Each build (`variants.py`) runs in turn at
the same rate, on a topic of its own; with --repeat N, N rounds, and the percentiles pool their alerts.
"""

from __future__ import annotations

import sys
import time
from functools import partial
from typing import Any

import orjson
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from benchmarks.broker import BenchError
from benchmarks.processes import ChildProcess
from benchmarks.rates import percentile
from benchmarks.report import Outcome, Row, events_per_s
from benchmarks.service import events_of, log_time, start_service, wait_until_restored
from benchmarks.variants import Variant, compare, succeeded, tagged
from benchmarks.workspace import Scope, Workspace

DEFAULT_RATE = 2_000.0
DEFAULT_SECONDS = 60.0
QUICK_SECONDS = 15.0
WARMUP_S = 5.0
QUICK_WARMUP_S = 3.0
MARGIN_MS = 250.0
KEPT_UP_S = 2.5  # the service counted every event within this long after the last send


def alerts_reader(bootstrap: str, topic: str) -> Any:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="streamdrift-bench-alerts",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=20,  # bounds how late an available alert can be noticed
    )
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        consumer.close()
        raise BenchError(f"the alerts topic {topic} does not exist")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return consumer


def collect(
    consumer: Any, pacer: ChildProcess, service: ChildProcess, *, drain_s: float, deadline: float
) -> list[tuple[float, int]]:
    """(arrival ms, source timestamp ms) of every alert, until the pacer is done and the service drained."""
    arrivals: list[tuple[float, int]] = []
    drained_at: float | None = None
    while True:
        batch = consumer.poll(timeout_ms=50)
        arrived_ms = time.time() * 1000
        for records in batch.values():
            for record in records:
                arrivals.append((arrived_ms, int(orjson.loads(record.value)["source"]["timestamp_ms"])))
        now = time.monotonic()
        if now > deadline:
            raise BenchError("latency: the run did not finish before its deadline")
        if not service.alive:
            raise BenchError(f"the service exited during the latency run:\n{service.tail()}")
        if drained_at is None:
            done = [line for line in pacer.lines() if line.fields.get("event") == "done"]
            if done and not pacer.alive:
                sent = int(done[-1].fields["sent"])
                processed = max((events_of(line) or 0 for line in service.lines()), default=0)
                if processed >= sent:
                    drained_at = now
            elif not pacer.alive:
                raise BenchError(f"the pacer failed:\n{pacer.tail()}")
        elif now - drained_at >= drain_s:
            return arrivals


def pick_rate(workspace: Workspace) -> tuple[float, str]:
    """--rate, else half the slowest build's measured throughput (the same rate for every build)."""
    throughput = workspace.outcomes.get("throughput")
    measured = [
        figures["service_events_per_s"]
        for figures in (throughput.details.get("variants", {}) if throughput else {}).values()
    ]
    if workspace.options.rate is not None:
        return workspace.options.rate, "--rate"
    if measured:
        return round(min(measured) / 2), "half the slowest measured service throughput"
    return DEFAULT_RATE, "default (throughput not measured in this run)"


def one_run(scope: Scope, variant: Variant, label: str, rate: float, seconds: float) -> dict[str, Any]:
    """One service of `variant` on a fresh topic, the pacer feeding it; every alert's latency."""
    options = scope.workspace.options
    setup = scope.service_config(label, scope.input_topic(label), variant)
    service = start_service(scope.children, label, setup, instance_id=f"latency-{label}")
    wait_until_restored(service, 2, timeout=120.0)
    consumer = alerts_reader(scope.bootstrap, setup.topics.alerts)
    try:
        print(f"latency: {variant.title}: producing {rate:,.0f} ev/s for {seconds:.0f} s", file=sys.stderr)
        pacer = scope.python_child(
            f"pacer-{label}", "benchmarks.pacer",
            "--bootstrap", scope.bootstrap, "--topic", setup.topics.input,
            "--rate", str(rate), "--seconds", str(seconds), "--seed", str(options.seed),
        )  # fmt: skip
        started = pacer.wait_for(  # it makes every record first: allow for ~20k records/s on a busy machine
            lambda line: line.fields.get("event") == "started",
            what="the pacer to start",
            timeout=60.0 + rate * seconds / 20_000,
        )
        arrivals = collect(
            consumer, pacer, service,
            drain_s=2 * options.commit_interval_ms / 1000 + 1.0, deadline=time.monotonic() + seconds + 180.0,
        )  # fmt: skip
    finally:
        consumer.close()
    done = next(line for line in pacer.lines() if line.fields.get("event") == "done")
    drain = _drain_seconds(pacer, service)
    service.stop(timeout=60.0)
    warmup = QUICK_WARMUP_S if options.quick else WARMUP_S
    start_ms = float(started.fields["t"]) * 1000
    latencies = [arrived - source for arrived, source in arrivals if source >= start_ms + warmup * 1000]
    if not latencies:
        raise BenchError(f"{label}: no alerts after the {warmup:.0f} s warm-up ({len(arrivals)} in all)")
    return {
        "latencies": latencies,
        "rate_achieved": round(float(done.fields["sent"]) / float(done.fields["sending_seconds"]), 1),
        "sender": done.fields.get("sender"),
        "pacer_cpu_s": pacer.exit.cpu_s if pacer.exit else None,
        "service_cpu_s": service.exit.cpu_s if service.exit else None,
        "alerts": len(arrivals),
        "alerts_measured": len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "service_caught_up_s_after_production_ended": drain,
    }


def measure(workspace: Workspace) -> Outcome:
    options, variants = workspace.options, workspace.variants
    rate, rate_source = pick_rate(workspace)
    seconds = options.latency_seconds or (QUICK_SECONDS if options.quick else DEFAULT_SECONDS)
    repeats = options.repeat or 1
    commit_ms = options.commit_interval_ms
    target = commit_ms + MARGIN_MS
    outcome = Outcome(name="latency")
    runs: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in variants}
    with workspace.scope("latency") as scope:
        for i in range(1, repeats + 1):
            for variant in variants:
                label = f"{variant.name}-{i}"
                run = scope.attempt(variant, partial(one_run, scope, variant, label, rate, seconds))
                if run is not None:
                    runs[variant.name].append(run)
        failed = dict(scope.failed)
    outcome.details.update(
        {
            "rate_requested": rate,
            "rate_source": rate_source,
            "seconds": seconds,
            "warmup_s": QUICK_WARMUP_S if options.quick else WARMUP_S,
            "commit_interval_ms": commit_ms,
            "repeats": repeats,
            "run_order_per_round": [variant.name for variant in variants],
            "variants": {},
        }
    )
    p50s: dict[str, float | None] = {}
    p99s: dict[str, float | None] = {}
    variants = succeeded(outcome, variants, failed)
    for variant in variants:
        done = runs[variant.name]
        latencies = [x for run in done for x in run.pop("latencies")]  # pooled over the repeats
        p50 = p50s[variant.name] = percentile(latencies, 50)
        p99 = p99s[variant.name] = percentile(latencies, 99)
        drains = [run["service_caught_up_s_after_production_ended"] for run in done]
        outcome.details["variants"][variant.name] = {
            **variant.as_dict(),
            "runs": done,
            "alerts_measured": len(latencies),
            "p50_ms": round(p50, 1),
            "p90_ms": round(percentile(latencies, 90), 1),
            "p99_ms": round(p99, 1),
            "max_ms": round(max(latencies), 1),
            "min_ms": round(min(latencies), 1),
        }
        achieved = min(run["rate_achieved"] for run in done)
        where = f"@ {events_per_s(achieved)}, commit {commit_ms} ms, {len(latencies)} alerts"
        behind = [drain for drain in drains if drain is not None and drain > KEPT_UP_S]
        if behind:
            where += f"; FELL BEHIND (caught up {max(behind):.0f} s after the last send)"
        per_run = ", ".join(f"{run['p99_ms']:,.0f}" for run in done)
        each = f" (runs {per_run})" if repeats > 1 else ""
        outcome.rows.append(Row(measurement=tagged(f"latency p50 {where}", variant), figure=f"{p50:,.0f} ms"))
        outcome.rows.append(
            Row(
                measurement=tagged(f"latency p99 {where}", variant),
                figure=f"{p99:,.0f} ms{each}",
                reference=f"target ≤ {commit_ms} + {MARGIN_MS:.0f} = {target:.0f} ms",
                ratio=f"{p99 / target:.2f}",
                met=p99 <= target,
            )
        )
    compare(outcome, "latency p50", p50s, lambda x: f"{x:,.0f} ms", lower_is_better=True)
    compare(outcome, "latency p99", p99s, lambda x: f"{x:,.0f} ms", lower_is_better=True)
    return outcome


def _drain_seconds(pacer: ChildProcess, service: ChildProcess) -> float | None:
    """From the pacer's last send to the first service summary counting every event (summaries are 1 s
    apart, so up to ~1 s of this is the summary period: near 1 s means the service kept up)."""
    done = next((line for line in pacer.lines() if line.fields.get("event") == "done"), None)
    if done is None:
        return None
    sent, at = int(done.fields["sent"]), float(done.fields["t"])
    caught_up = next((line for line in service.lines() if (events_of(line) or 0) >= sent), None)
    return None if caught_up is None else round(log_time(caught_up) - at, 2)
