"""Scale: many models — memory after a million events, snapshot size, and restore time after a kill.

100,000 models x 10 signals by default (`--scale-models`; `--quick`: 1,000 models, 100k events): events carry
9 numeric features and a score, no prediction and no label, and the config disables the missing-value,
type-mismatch, prediction and error signals, so every model has exactly 10 ADWINs (1,000,000 detectors). The
service processes every event of a pre-filled 2-partition topic; as soon as its summary counts them all, its
resident memory is read from /proc/<pid>/status and it is killed (SIGKILL), like a crash at any moment. A
second service with the same group and instance id then restores every model from the state topic: the time
from its start to its `partitions restored` line (the `state restored` lines' `seconds` are the reading of
the state topic alone); then, until it is idle, it reads again the input its models' snapshots had not
reached: the time until then is the figure with a target (restore and catch-up). Last, the harness reads the
state topic: the latest snapshot of each model, in bytes, per detector. Each build (`variants.py`) does all
of this in turn over the same input topic, with its own group and state topic.
"""

from __future__ import annotations

import signal
import sys
from functools import partial
from typing import Any

from benchmarks.broker import fill_topic, read_topic
from benchmarks.events import EventShape, EventStream
from benchmarks.rates import steady_rate
from benchmarks.report import Outcome, Row, events_per_s
from benchmarks.service import (
    TEN_SIGNALS,
    log_events,
    log_time,
    progress,
    start_service,
    wait_for_events,
    wait_until_idle,
    wait_until_restored,
)
from benchmarks.variants import Variant, compare, succeeded, tagged
from benchmarks.workspace import Scope, Workspace

DEFAULT_MODELS, QUICK_MODELS = 100_000, 1_000
DEFAULT_EVENTS, QUICK_EVENTS = 1_000_000, 100_000
SIGNALS_PER_MODEL = 10
TARGET_RSS_BYTES = 3e9  # for 1,000,000 detectors
TARGET_RESTORE_S = 60.0  # from the restart to caught up: state read, and the input since it read again
TARGET_DETECTORS = 1_000_000
MIB = 1024 * 1024


def one_variant(scope: Scope, input_topic: str, total: int, variant: Variant) -> dict[str, Any]:
    """The service of `variant` over the whole topic, killed, restarted and restored; its state topic read."""
    config = scope.service_config(variant.name, input_topic, variant, defaults=TEN_SIGNALS)
    instance = f"scale-{variant.name}"
    first = start_service(scope.children, f"{variant.name}-first", config, instance_id=instance)
    done = wait_for_events(first, total, timeout=4 * 3600.0, stall_s=180.0)
    memory = first.memory_kib()
    rate = steady_rate(progress(first), total)
    print(
        f"scale: {variant.title}: {total:,} events at {rate.events_per_s:,.0f} ev/s; "
        f"RSS {memory.get('VmRSS', 0) / 1024:,.0f} MiB",
        file=sys.stderr,
    )
    killed = first.stop(sig=signal.SIGKILL, timeout=30.0)

    second = start_service(scope.children, f"{variant.name}-restart", config, instance_id=instance)
    restored = wait_until_restored(second, 2, timeout=1800.0)
    restore_s = log_time(restored) - second.started
    state_lines = log_events(second, "state restored")
    after_restore = second.memory_kib()
    # Models whose last snapshot is older than the committed offset are brought up to date by reading
    # the input again from there (snapshot_interval_ms); caught up = idle again after the restore.
    caught_up = wait_until_idle(
        second,
        0,
        timeout=1800.0,
        start=next(i for i, x in enumerate(second.lines()) if x is restored),
        settled=False,  # snapshots within the budget go on after the input is read again
    )
    caught_up_s = log_time(caught_up) - second.started
    replayed = int(caught_up.fields.get("events", 0))
    after_catch_up = second.memory_kib()
    second.stop(timeout=60.0)
    print(
        f"scale: {variant.title}: restored {restored.fields.get('restored_models')} models in "
        f"{restore_s:.1f} s, caught up ({replayed:,} events read again) in {caught_up_s:.1f} s",
        file=sys.stderr,
    )
    contents = read_topic(scope.bootstrap, config.topics.state)
    scope.drop_topics(config.topics.created_by_service())
    detectors = int(done.fields["models"]) * SIGNALS_PER_MODEL
    return {
        **variant.as_dict(),
        "models": int(done.fields["models"]),
        "detectors": detectors,
        "service_events_per_s": round(rate.events_per_s, 1),
        "first_service_memory_kib": memory,
        "rss_mib": round(memory.get("VmRSS", 0) / 1024, 1),
        "first_service_cpu_s": killed.cpu_s,
        "first_service_summary": done.fields,
        "restore_seconds_to_partitions_restored": round(restore_s, 2),
        "restored_models": restored.fields.get("restored_models"),
        "state_restored_lines": state_lines,
        "state_read_seconds": round(sum(float(line.get("seconds", 0.0)) for line in state_lines), 2),
        "state_read_records": sum(int(line.get("records", 0)) for line in state_lines),
        "memory_after_restore_kib": after_restore,
        "caught_up_seconds_after_start": round(caught_up_s, 2),
        "events_read_again_after_restore": replayed,
        "memory_after_catch_up_kib": after_catch_up,
        "state_topic": {
            "records": contents.records,
            "value_bytes": contents.value_bytes,
            "keys": contents.keys,
            "latest_value_bytes": contents.latest_value_bytes,
            "read_seconds": round(contents.seconds, 1),
        },
        "snapshot_bytes_per_detector": round(contents.latest_value_bytes / detectors, 1)
        if detectors
        else 0.0,
    }


def measure(workspace: Workspace) -> Outcome:
    options, variants = workspace.options, workspace.variants
    models = options.scale_models or (QUICK_MODELS if options.quick else DEFAULT_MODELS)
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    outcome = Outcome(name="scale")
    with workspace.scope("scale") as scope:
        input_topic = scope.input_topic()
        shape = EventShape(models=models, features=SIGNALS_PER_MODEL - 1, prediction=False)
        fill = fill_topic(scope.bootstrap, input_topic, EventStream(shape, seed=options.seed), total)
        print(
            f"scale: {total:,} events for {models:,} models produced in {fill.seconds:.0f} s", file=sys.stderr
        )
        found: dict[str, dict[str, Any]] = {}
        for variant in variants:
            done = scope.attempt(variant, partial(one_variant, scope, input_topic, total, variant))
            if done is not None:
                found[variant.name] = done
        failed = dict(scope.failed)
    outcome.details.update(
        {
            "models": models,
            "signals_per_model": SIGNALS_PER_MODEL,
            "events": total,
            "mean_value_bytes": round(fill.mean_value_bytes, 1),
            "fill_seconds": round(fill.seconds, 1),
            "commit_interval_ms": options.commit_interval_ms,
            "run_order": [variant.name for variant in variants],
            "variants": found,
        }
    )
    for variant in succeeded(outcome, variants, failed):
        _rows(outcome, variant, found[variant.name], total)

    def each(key: str) -> dict[str, float | None]:
        return {name: figures[key] for name, figures in found.items()}

    compare(outcome, "scale RSS", each("rss_mib"), lambda x: f"{x:,.0f} MiB", lower_is_better=True)
    compare(
        outcome,
        "scale snapshot bytes per detector",
        each("snapshot_bytes_per_detector"),
        lambda x: f"{x:,.0f} B",
        lower_is_better=True,
    )
    restore = each("restore_seconds_to_partitions_restored")
    compare(outcome, "scale restore", restore, lambda x: f"{x:.1f} s", lower_is_better=True)
    caught_up = each("caught_up_seconds_after_start")
    compare(outcome, "scale restart until caught up", caught_up, lambda x: f"{x:.1f} s", lower_is_better=True)
    compare(outcome, "scale throughput", each("service_events_per_s"), events_per_s)
    return outcome


def _rows(outcome: Outcome, variant: Variant, found: dict[str, Any], total: int) -> None:
    detectors, rss = found["detectors"], found["first_service_memory_kib"].get("VmRSS", 0) * 1024
    full = detectors >= TARGET_DETECTORS
    scale_name = f"{found['models']:,} models x {SIGNALS_PER_MODEL} = {detectors:,} detectors"
    restore_s, state = found["restore_seconds_to_partitions_restored"], found["state_topic"]
    after_restore = found["memory_after_restore_kib"].get("VmRSS", 0)
    outcome.rows.append(
        Row(
            measurement=tagged(f"scale: RSS after {total:,} events, {scale_name}", variant),
            figure=f"{rss / MIB:,.0f} MiB",
            reference=f"target ≤ 3 GB ({TARGET_RSS_BYTES / MIB:,.0f} MiB) at 1M detectors",
            ratio=f"{rss / TARGET_RSS_BYTES:.2f}",
            met=rss <= TARGET_RSS_BYTES if full else None,
        )
    )
    outcome.rows.append(
        Row(
            measurement=tagged("scale: snapshot bytes per detector (latest snapshot per model)", variant),
            figure=f"{found['snapshot_bytes_per_detector']:,.0f} B",
            reference=f"state topic: {state['records']:,} records, {state['value_bytes'] / MIB:,.0f} MiB",
        )
    )
    outcome.rows.append(
        Row(
            measurement=tagged(f"scale: restore after kill -9 ({found['restored_models']} models)", variant),
            figure=f"{restore_s:.1f} s (state read {found['state_read_seconds']:.1f} s, "
            f"{found['state_read_records']:,} records)",
            reference="until its partitions are restored; caught up: next row",
        )
    )
    caught_up_s = found["caught_up_seconds_after_start"]
    outcome.rows.append(
        Row(
            measurement=tagged("scale: restart until caught up (restore + input read again)", variant),
            figure=f"{caught_up_s:.1f} s ({found['events_read_again_after_restore']:,} events read again; "
            "the summary period adds up to 1 s)",
            reference=f"target ≤ {TARGET_RESTORE_S:.0f} s at 1M detectors",
            ratio=f"{caught_up_s / TARGET_RESTORE_S:.2f}",
            met=caught_up_s <= TARGET_RESTORE_S if full else None,
        )
    )
    outcome.rows.append(
        Row(
            measurement=tagged("scale: service throughput / RSS after restore", variant),
            figure=events_per_s(found["service_events_per_s"]),
            reference=f"RSS after restore {after_restore / 1024:,.0f} MiB",
        )
    )
