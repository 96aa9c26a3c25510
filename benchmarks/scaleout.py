"""Scale-out: two instances of the service against one, over the same pre-filled 2-partition topic.

The topic is filled like the throughput one (100 models, 19 ADWINs per event), its partitions carrying equal
shares of models and events, inside one open transaction. Two instances (distinct STREAMDRIFT_INSTANCE_ID)
start in one consumer group and settle — one partition each — while the events are still invisible to their
read_committed consumers; then the transaction commits and both start reading at once, so neither startup
nor the initial rebalance falls into the measurement. Then one instance reads the same topic alone, in a
group of its own. Each rate is taken over the steady middle (20% to 80% of the events); the pair's from the
sum of both instances' progress. Rounds repeat all of it on a new topic; the figures are medians. In each
round every build (`variants.py`) does all of it in turn, each on a topic of its own.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from functools import partial
from typing import Any

from benchmarks.broker import BenchError, fill_topic_held_back
from benchmarks.events import EventShape, EventStream
from benchmarks.processes import ChildProcess
from benchmarks.rates import combined, steady_rate
from benchmarks.report import Outcome, Row, events_per_s
from benchmarks.service import events_of, log_events, log_time, progress, start_service, wait_for_events
from benchmarks.variants import Variant, compare, succeeded, tagged
from benchmarks.workspace import Scope, Workspace

DEFAULT_EVENTS = 300_000
QUICK_EVENTS = 100_000
TARGET_RATIO = 1.6
SETTLE_TIMEOUT_S = 120.0


def wait_for_total(
    services: list[ChildProcess], target: int, *, timeout: float, stall_s: float = 90.0
) -> None:
    """Until the services' latest summaries add up to `target` events; polls with a deadline."""
    deadline = time.monotonic() + timeout
    best, best_at = -1.0, time.monotonic()
    while True:
        done = sum(max((events_of(line) or 0.0 for line in s.lines()), default=0.0) for s in services)
        now = time.monotonic()
        if done >= target:
            return
        if done > best:
            best, best_at = done, now
        dead = [s.name for s in services if not s.alive]
        if dead:
            raise BenchError(f"{dead} exited before {target:,} events were processed")
        if now > deadline or now - best_at > stall_s:
            raise BenchError(
                f"the pair processed {done:,.0f} of {target:,} events, then stalled or timed out"
            )
        time.sleep(0.5)  # polling the children's progress, bounded by the deadline


def owned_partition(service: ChildProcess) -> str | None:
    """The one partition the service owns and has restored, or None (none, several, or still restoring)."""
    lines = service.lines()
    assigned = [i for i, line in enumerate(lines) if line.fields.get("event") == "partitions assigned"]
    if not assigned:
        return None
    last = lines[assigned[-1]].fields
    partitions = last.get("partitions", [])
    if len(partitions) != 1:
        return None
    restored = any(line.fields.get("event") == "partitions restored" for line in lines[assigned[-1] :])
    return str(partitions[0]) if restored or last.get("to_restore") == 0 else None


def wait_until_settled(services: list[ChildProcess], *, timeout: float) -> None:
    """Until each service owns a different single partition; polls with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        owned = [owned_partition(service) for service in services]
        if None not in owned and len(set(owned)) == len(services):
            return
        dead = [s.name for s in services if not s.alive]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"{s.name}:\n{s.tail()}" for s in services)
            raise BenchError(f"the pair did not settle to one partition each ({owned}):\n{tails}")
        time.sleep(0.2)  # polling the children's logs, bounded by the deadline


def busy_cores(service: ChildProcess, start: float, end: float) -> float | None:
    """Cores the whole machine kept busy between two times, from the busy counters noted with each line."""
    lines = [line for line in service.lines() if line.system_busy_s is not None]
    first = next((line for line in lines if line.received >= start), None)
    last = next((line for line in reversed(lines) if line.received <= end), None)
    if first is None or last is None or last.received <= first.received:
        return None
    assert first.system_busy_s is not None and last.system_busy_s is not None
    return round((last.system_busy_s - first.system_busy_s) / (last.received - first.received), 2)


def one_round(scope: Scope, label: str, total: int, seed: int, variant: Variant) -> dict[str, Any]:
    """A held-back topic; the pair of `variant` over it, then one instance alone: both rates, the details."""
    timeout = max(900.0, total / 200)
    input_topic = scope.input_topic(label)
    held = fill_topic_held_back(scope.bootstrap, input_topic, EventStream(EventShape(), seed=seed), total)
    try:
        pair_setup = scope.service_config(f"{label}-pair", input_topic, variant)
        pair = [
            start_service(scope.children, f"{label}-pair-{name}", pair_setup, instance_id=f"pair-{name}")
            for name in ("a", "b")
        ]
        wait_until_settled(pair, timeout=SETTLE_TIMEOUT_S)
        released = held.release()
    finally:
        held.close()
    wait_for_total(pair, total, timeout=timeout)
    # Nothing was readable before the release: each instance had processed 0 events then.
    per_instance = [
        [(released, 0.0), *(sample for sample in progress(service) if sample[0] > released)]
        for service in pair
    ]
    for service in pair:
        service.stop(timeout=60.0)
    two = steady_rate(combined(per_instance, not_before=released), total)
    late_rebalances = sum(
        1
        for service in pair
        for line in service.lines()
        if line.fields.get("event") == "partitions assigned" and log_time(line) > released
    )
    single_setup = scope.service_config(f"{label}-single", input_topic, variant)
    single = start_service(scope.children, f"{label}-single", single_setup, instance_id="one")
    wait_for_events(single, total, timeout=timeout)
    single.stop(timeout=60.0)
    one = steady_rate(progress(single), total)
    print(
        f"scale-out: {variant.title}: two instances {two.events_per_s:,.0f} ev/s, "
        f"one {one.events_per_s:,.0f} ev/s",
        file=sys.stderr,
    )
    scope.drop_topics(
        [input_topic, *pair_setup.topics.created_by_service(), *single_setup.topics.created_by_service()]
    )
    pair_cpu = [s.exit.cpu_s if s.exit else None for s in pair]
    single_cpu = single.exit.cpu_s if single.exit else None
    return {
        "machine_busy_cores_pair_window": busy_cores(pair[0], two.start, two.end),
        "machine_busy_cores_single_window": busy_cores(single, one.start, one.end),
        "two_instances_events_per_s": round(two.events_per_s, 1),
        "one_instance_events_per_s": round(one.events_per_s, 1),
        "ratio": round(two.events_per_s / one.events_per_s, 3),
        "pair_window": {"from_events": two.from_events, "to_events": two.to_events, "seconds": two.seconds},
        "pair_events_each": [max((e for _, e in samples), default=0) for samples in per_instance],
        "pair_assignments": [len(log_events(s, "partitions assigned")) for s in pair],
        "pair_rebalances_after_release": late_rebalances,
        "pair_cpu_s": pair_cpu,
        "single_cpu_s": single_cpu,
        "cpu_ratio_pair_to_single": None
        if None in pair_cpu or not single_cpu
        else round(sum(c or 0.0 for c in pair_cpu) / single_cpu, 3),
    }


def measure(workspace: Workspace) -> Outcome:
    options, variants = workspace.options, workspace.variants
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    repeats = options.repeat or (1 if options.quick else 2)
    outcome = Outcome(name="scaleout")
    rounds: dict[str, list[dict[str, Any]]] = {variant.name: [] for variant in variants}
    with workspace.scope("scaleout") as scope:
        for i in range(1, repeats + 1):
            for variant in variants:
                label = f"r{i}-{variant.name}"
                found = scope.attempt(
                    variant, partial(one_round, scope, label, total, options.seed + i, variant)
                )
                if found is not None:
                    rounds[variant.name].append(found)
        failed = dict(scope.failed)
    outcome.details.update(
        {
            "events": total,
            "repeats": repeats,
            "run_order_per_round": [variant.name for variant in variants],
            "variants": {},
        }
    )
    medians: dict[str, dict[str, float | None]] = {"two": {}, "one": {}, "ratio": {}}
    for variant in succeeded(outcome, variants, failed):
        done = rounds[variant.name]
        two = medians["two"][variant.name] = statistics.median(r["two_instances_events_per_s"] for r in done)
        one = medians["one"][variant.name] = statistics.median(r["one_instance_events_per_s"] for r in done)
        ratios = [r["ratio"] for r in done]
        median_ratio = medians["ratio"][variant.name] = statistics.median(ratios)
        outcome.details["variants"][variant.name] = {
            **variant.as_dict(),
            "rounds": done,
            "two_instances_events_per_s_median": round(two, 1),
            "one_instance_events_per_s_median": round(one, 1),
            "median_ratio": median_ratio,
        }
        outcome.rows.append(
            Row(
                measurement=tagged("scale-out: 2 instances, 1 partition each", variant),
                figure=f"{events_per_s(two)} (ratios per round {', '.join(f'{r:.2f}' for r in ratios)})",
                reference=f"1 instance {events_per_s(one)}; target ≥ {TARGET_RATIO:.1f}x",
                ratio=f"{median_ratio:.2f}",
                met=median_ratio >= TARGET_RATIO,
            )
        )
        _cpu_row(outcome, variant, done)
    compare(outcome, "scale-out 2 instances", medians["two"], events_per_s)
    compare(outcome, "scale-out 1 instance", medians["one"], events_per_s)
    compare(outcome, "scale-out ratio 2 / 1", medians["ratio"], lambda x: f"{x:.2f}x")
    return outcome


def _cpu_row(outcome: Outcome, variant: Variant, rounds: list[dict[str, Any]]) -> None:
    cpu = [r["cpu_ratio_pair_to_single"] for r in rounds if r["cpu_ratio_pair_to_single"] is not None]
    busy = [
        r["machine_busy_cores_pair_window"] for r in rounds if r["machine_busy_cores_pair_window"] is not None
    ]
    if cpu:
        outcome.rows.append(
            Row(
                measurement=tagged("scale-out: CPU seconds for the topic, pair / one", variant),
                figure=f"{statistics.median(cpu):.2f}x"
                + (
                    f" (machine busy: {statistics.median(busy):.1f} of {os.cpu_count()} cores, pair's window)"
                    if busy
                    else ""
                ),
                reference="1.00x = no coordination overhead",
            )
        )
