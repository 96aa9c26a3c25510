"""Scale-out: two instances of the service against one, over the same pre-filled 2-partition topic.

The topic is the throughput one (100 models, 18 ADWINs per event), its partitions carrying equal shares of
models and events. One instance reads it all in one consumer group; then two instances (distinct
STREAMDRIFT_INSTANCE_ID) read it in another, one partition each. The pair's rate is that of the sum of their
progress over the steady middle (20% to 80% of the events), counted only once the group has settled (each
instance assigned one partition) so the initial rebalance stays out of the window.
"""

from __future__ import annotations

import sys
import time

from benchmarks.broker import BenchError, fill_topic
from benchmarks.events import EventShape, EventStream
from benchmarks.processes import ChildProcess
from benchmarks.rates import STEADY_FROM, STEADY_TO, combined, interpolate, steady_rate
from benchmarks.report import Outcome, Row, events_per_s, ratio
from benchmarks.service import events_of, log_events, log_time, progress, start_service, wait_for_events
from benchmarks.workspace import Workspace

DEFAULT_EVENTS = 300_000
QUICK_EVENTS = 30_000
TARGET_RATIO = 1.6


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


def settled_at(service: ChildProcess) -> float:
    """When the service was last assigned exactly one partition."""
    lines = [line for line in service.lines() if line.fields.get("event") == "partitions assigned"]
    ones = [line for line in lines if len(line.fields.get("partitions", [])) == 1]
    if not ones:
        raise BenchError(
            f"{service.name} never owned exactly one partition: {[line.fields for line in lines]}"
        )
    return log_time(ones[-1])


def measure(workspace: Workspace) -> Outcome:
    options = workspace.options
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    outcome = Outcome(name="scaleout")
    timeout = max(900.0, total / 200)
    with workspace.scope("scaleout") as scope:
        topics = scope.service_topics("run")
        scope.create_topic(topics.input, partitions=2)
        fill_topic(scope.bootstrap, topics.input, EventStream(EventShape(), seed=options.seed), total)

        single = start_service(
            scope.children, "single", scope.service_config("single", topics), instance_id="one"
        )
        wait_for_events(single, total, timeout=timeout)
        single.stop(timeout=60.0)
        one = steady_rate(progress(single), total)
        print(f"scale-out: one instance {one.events_per_s:,.0f} ev/s", file=sys.stderr)

        pair_config = scope.service_config("pair", topics)
        pair = [
            start_service(scope.children, f"pair-{name}", pair_config, instance_id=f"pair-{name}")
            for name in ("a", "b")
        ]
        wait_for_total(pair, total, timeout=timeout)
        settled = max(settled_at(service) for service in pair)
        per_instance = [progress(service) for service in pair]
        for service in pair:
            service.stop(timeout=60.0)
        merged = combined(per_instance, not_before=settled)
        at_settle = sum(interpolate(samples, settled) for samples in per_instance)
        lo = max(STEADY_FROM, at_settle / total + 0.01)
        if lo >= STEADY_TO - 0.2:
            raise BenchError(
                f"the pair settled only after {at_settle:,.0f} of {total:,} events: use more --events"
            )
        two = steady_rate(merged, total, lo=lo)
        print(f"scale-out: two instances {two.events_per_s:,.0f} ev/s", file=sys.stderr)
    outcome.details.update(
        {
            "events": total,
            "one_instance_events_per_s": round(one.events_per_s, 1),
            "two_instances_events_per_s": round(two.events_per_s, 1),
            "ratio": round(two.events_per_s / one.events_per_s, 3),
            "pair_window": {
                "from_events": two.from_events,
                "to_events": two.to_events,
                "seconds": two.seconds,
            },
            "pair_settled_after_events": round(at_settle),
            "pair_events_each": [max((e for _, e in samples), default=0) for samples in per_instance],
            "pair_rebalances": [len(log_events(s, "partitions assigned")) for s in pair],
        }
    )
    outcome.rows.append(
        Row(
            measurement="scale-out: 2 instances, 1 partition each",
            figure=events_per_s(two.events_per_s),
            reference=f"1 instance {events_per_s(one.events_per_s)}; target ≥ {TARGET_RATIO:.1f}x",
            ratio=ratio(two.events_per_s, one.events_per_s),
            met=two.events_per_s / one.events_per_s >= TARGET_RATIO,
        )
    )
    return outcome
