"""Latency: from producing an event to its alert being visible to a read_committed reader.

The service runs on a fresh, empty 2-partition topic; once it owns both partitions, `pacer.py` produces a
steady rate — half the service's measured throughput when that ran, else `--rate`, else 2,000 events/s —
where ten models get half the traffic and switch one feature by 100 standard deviations every 100 of their
events, so ADWIN fires shortly after each switch (the pacer produces through kcat when it is installed, as
`make bench` ensures). The harness reads the alerts topic (read_committed) and, for each alert, takes
latency = arrival time - `source.timestamp_ms` (the triggering record's timestamp, set when it was produced;
same host, same clock). The first seconds are warm-up and left out.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from benchmarks.broker import BenchError
from benchmarks.processes import ChildProcess
from benchmarks.rates import percentile
from benchmarks.report import Outcome, Row, events_per_s
from benchmarks.service import events_of, log_time, start_service, wait_until_restored
from benchmarks.workspace import Workspace

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


def measure(workspace: Workspace) -> Outcome:
    options = workspace.options
    throughput = workspace.outcomes.get("throughput")
    measured = throughput.details.get("service_events_per_s") if throughput else None
    if options.rate is not None:
        rate, rate_source = options.rate, "--rate"
    elif measured:
        rate, rate_source = round(measured / 2), "half the measured service throughput"
    else:
        rate, rate_source = DEFAULT_RATE, "default (throughput not measured in this run)"
    seconds = options.latency_seconds or (QUICK_SECONDS if options.quick else DEFAULT_SECONDS)
    warmup = QUICK_WARMUP_S if options.quick else WARMUP_S
    commit_ms = options.commit_interval_ms
    outcome = Outcome(name="latency")
    with workspace.scope("latency") as scope:
        setup = scope.service_config("service", scope.input_topic())
        topics = setup.topics
        service = start_service(scope.children, "service", setup, instance_id="latency-0")
        wait_until_restored(service, 2, timeout=120.0)
        consumer = alerts_reader(scope.bootstrap, topics.alerts)
        try:
            print(f"latency: producing {rate:,.0f} ev/s for {seconds:.0f} s", file=sys.stderr)
            pacer = scope.python_child(
                "pacer", "benchmarks.pacer", "--bootstrap", scope.bootstrap, "--topic", topics.input,
                "--rate", str(rate), "--seconds", str(seconds), "--seed", str(options.seed),
            )  # fmt: skip
            started = pacer.wait_for(
                lambda line: line.fields.get("event") == "started", what="the pacer to start", timeout=60.0
            )
            arrivals = collect(
                consumer, pacer, service,
                drain_s=2 * commit_ms / 1000 + 1.0, deadline=time.monotonic() + seconds + 180.0,
            )  # fmt: skip
        finally:
            consumer.close()
        done = next(line for line in pacer.lines() if line.fields.get("event") == "done")
        drain = _drain_seconds(pacer, service)
        service.stop(timeout=60.0)
    start_ms = float(started.fields["t"]) * 1000
    latencies = [arrived - source for arrived, source in arrivals if source >= start_ms + warmup * 1000]
    if not latencies:
        raise BenchError(f"no alerts after the {warmup:.0f} s warm-up ({len(arrivals)} in all)")
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    target = commit_ms + MARGIN_MS
    achieved = float(done.fields["sent"]) / float(done.fields["sending_seconds"])
    outcome.details.update(
        {
            "rate_requested": rate,
            "rate_source": rate_source,
            "rate_achieved": round(achieved, 1),
            "sender": done.fields.get("sender"),
            "pacer_cpu_s": pacer.exit.cpu_s if pacer.exit else None,
            "seconds": seconds,
            "warmup_s": warmup,
            "commit_interval_ms": commit_ms,
            "alerts": len(arrivals),
            "alerts_measured": len(latencies),
            "p50_ms": round(p50, 1),
            "p90_ms": round(percentile(latencies, 90), 1),
            "p99_ms": round(p99, 1),
            "max_ms": round(max(latencies), 1),
            "min_ms": round(min(latencies), 1),
            "service_caught_up_s_after_production_ended": drain,
        }
    )
    where = f"@ {events_per_s(achieved)}, commit {commit_ms} ms, {len(latencies)} alerts"
    if drain is not None and drain > KEPT_UP_S:
        where += f"; FELL BEHIND (caught up {drain:.0f} s after the last send)"
    outcome.rows.append(Row(measurement=f"latency p50 {where}", figure=f"{p50:,.0f} ms"))
    outcome.rows.append(
        Row(
            measurement=f"latency p99 {where}",
            figure=f"{p99:,.0f} ms",
            reference=f"target ≤ {commit_ms} + {MARGIN_MS:.0f} = {target:.0f} ms",
            ratio=f"{p99 / target:.2f}",
            met=p99 <= target,
        )
    )
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
