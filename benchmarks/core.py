"""The core without Kafka: decoding and detection per event, side by side with `orjson.loads` alone.

The events of the throughput measurement (100 models, 8 numeric features, a prediction and a score), except
that a tenth of the traffic goes to ten models whose first feature jumps back and forth, so that drifts,
episodes and the full path of a detection are part of the cost. Every signal on with River's default ADWIN,
as the service runs by default: 19 detector updates per event. Each figure is the least process CPU time of a
few rounds (these machines are shared; the least is the run with the least interference), per event. No
broker involved: quick, and the measurement to watch while changing the core. Two more rows price the
optional per-model work: `multivariate:reconstruction` (a PCA of the 8 features) and estimated performance
(CBPE windows), each on every model, against the same batches without.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.events import EventShape, EventStream, Jumps
from benchmarks.report import Outcome, Row, events_per_s, ratio
from benchmarks.workspace import Workspace
from streamdrift.config import parse_config
from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.event import EventDecoder, InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.core.performance import ReferenceSample
from streamdrift.core.reference import Profile

DEFAULT_EVENTS = 100_000
QUICK_EVENTS = 20_000
ROUNDS = 3
POLL_RECORDS = 2_000  # the service's default processing.max_poll_records
TOPIC = "core-bench"
REFERENCE_EVENTS = 20_000  # the multivariate and performance rows' reference: the stream's first events
PERFORMANCE_WINDOW = 100  # two windows per model in the reference, ten in the measured events


def _with_reference(
    config: StreamdriftConfig, reference: list[InferenceEvent], run_dir: Path, section: dict[str, Any]
) -> StreamdriftConfig:
    """`config` with the `reference:` settings of `section`, its profile built from `reference`; with
    `performance` in them, each model's CBPE reference fitted on labels drawn from its scores."""
    profile = Profile()
    profile.add_all(reference)
    document = profile.document()
    if "performance" in section:
        draw = np.random.default_rng(0)
        samples: dict[str, ReferenceSample] = {}
        for event in reference:
            label = int(draw.uniform() < float(event.score))  # type: ignore[arg-type]
            samples.setdefault(event.model_id, ReferenceSample()).add(replace(event, label=label))
        for model_id, sample in samples.items():
            fitted = sample.fit(PERFORMANCE_WINDOW, threshold=0.5)
            if fitted is not None:
                document["models"][model_id]["performance"] = fitted.to_dict()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "core-profile.json").write_bytes(orjson.dumps(document))
    settings = config.model_dump(mode="json", exclude_none=True)
    settings["reference"] = {"profile": "core-profile.json", **section}
    return parse_config(orjson.dumps(settings), base_dir=run_dir)


def least_cpu_s(work: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """The least process CPU time of `rounds` runs of `work`, and what the last run returned."""
    best, result = float("inf"), None
    for _ in range(rounds):
        started = time.process_time()
        result = work()
        best = min(best, time.process_time() - started)
    return best, result


def measure(workspace: Workspace) -> Outcome:
    options = workspace.options
    total = options.events or (QUICK_EVENTS if options.quick else DEFAULT_EVENTS)
    rounds = 1 if options.quick else ROUNDS
    records = EventStream(EventShape(), seed=options.seed, jumps=Jumps(share=0.1)).batch(total)
    config = StreamdriftConfig.model_validate(
        {
            "kafka": {"bootstrap_servers": workspace.bootstrap, "group_id": "core"},
            "topics": {"input": [TOPIC]},
        }
    )
    decoder = EventDecoder(config.event_fields(), config.event_limits())

    def parse_only() -> None:
        loads = orjson.loads
        for _key, value, _partition in records:
            loads(value)

    def decode() -> None:
        # Each event dropped at once, as the service does: holding 100k of them would time the garbage
        # collector's passes over them instead.
        for key, value, _partition in records:
            decoder.decode(key, value)

    parse_s, _ = least_cpu_s(parse_only, rounds)
    decode_s, _ = least_cpu_s(decode, rounds)
    events = [decoder.decode(key, value) for key, value, _partition in records]

    def detect() -> list[DriftAlert]:
        monitor = Monitor(config.policies(), config_version=config.config_version)
        alerts: list[DriftAlert] = []
        for offset, event in enumerate(events):
            alerts.extend(monitor.process(event, RecordSource(offset, TOPIC, 0, offset)))
        return alerts

    detect_s, alerts = least_cpu_s(detect, rounds)

    def detect_batched(config: StreamdriftConfig = config) -> list[DriftAlert]:
        """As the service runs it: polls of POLL_RECORDS, each partition's events at once
        (Monitor.process_many)."""
        monitor = Monitor(config.policies(), config_version=config.config_version)
        found: list[tuple[int, list[DriftAlert]]] = []
        for start in range(0, total, POLL_RECORDS):
            by_partition: dict[int, list[int]] = {}
            for offset in range(start, min(start + POLL_RECORDS, total)):
                by_partition.setdefault(records[offset][2], []).append(offset)
            for offsets in by_partition.values():
                batch = [events[offset] for offset in offsets]

                def source(index: int, offsets: list[int] = offsets) -> RecordSource:
                    return RecordSource(offsets[index], TOPIC, 0, offsets[index])

                for index, alerts in monitor.process_many(batch, source):
                    found.append((offsets[index], alerts))
        found.sort(key=lambda pair: pair[0])
        return [alert for _, alerts in found for alert in alerts]

    batched_s, batched_alerts = least_cpu_s(detect_batched, rounds)
    # The same batches with multivariate:reconstruction on every model: a PCA of its reference (the first
    # events of the stream, profiled) projects each event, one more ADWIN takes the error.
    reference = events[: min(total, REFERENCE_EVENTS)]
    multivariate = _with_reference(config, reference, workspace.run_dir, {"multivariate": {}})
    multivariate_s, _ = least_cpu_s(lambda: detect_batched(multivariate), rounds)
    # ... and with estimated performance (CBPE) on every model, in windows of PERFORMANCE_WINDOW events.
    performance = {"performance": {"window_events": PERFORMANCE_WINDOW}}
    estimating = _with_reference(config, reference, workspace.run_dir, performance)
    performance_s, _ = least_cpu_s(lambda: detect_batched(estimating), rounds)
    if [a.to_json() for a in batched_alerts] != [a.to_json() for a in alerts]:
        raise AssertionError("batched detection published other alerts than one event at a time")
    us = 1e6 / total
    parsed = f"orjson.loads alone {parse_s * us:.2f} µs"
    outcome = Outcome(name="core")
    outcome.rows = [
        Row(measurement="core: decoding, per event", figure=f"{decode_s * us:.2f} µs", reference=parsed,
            ratio=ratio(decode_s, parse_s)),
        Row(measurement="core: detection (Monitor.process), per event",
            figure=f"{detect_s * us:.2f} µs (19 ADWINs, {len(alerts)} alerts)", reference=parsed,
            ratio=ratio(detect_s, parse_s)),
        Row(measurement=f"core: detection in batches (polls of {POLL_RECORDS:,}), per event",
            figure=f"{batched_s * us:.2f} µs (same alerts)", reference=parsed,
            ratio=ratio(batched_s, parse_s)),
        Row(measurement="core: ... with multivariate:reconstruction on every model, per event",
            figure=f"{multivariate_s * us:.2f} µs (20 detectors, PCA of 8 features)",
            reference=f"without {batched_s * us:.2f} µs", ratio=ratio(multivariate_s, batched_s)),
        Row(measurement="core: ... with estimated performance (CBPE) on every model, per event",
            figure=f"{performance_s * us:.2f} µs (windows of {PERFORMANCE_WINDOW} events)",
            reference=f"without {batched_s * us:.2f} µs", ratio=ratio(performance_s, batched_s)),
        Row(measurement="core: decoding + detection in batches",
            figure=events_per_s(total / (decode_s + batched_s)),
            reference=f"orjson.loads alone {events_per_s(total / parse_s)}",
            ratio=ratio(parse_s, decode_s + batched_s)),
    ]  # fmt: skip
    outcome.details = {
        "events": total,
        "rounds": rounds,
        "parse_us_per_event": round(parse_s * us, 3),
        "decode_us_per_event": round(decode_s * us, 3),
        "detect_us_per_event": round(detect_s * us, 3),
        "detect_batched_us_per_event": round(batched_s * us, 3),
        "alerts": len(alerts),
        "multivariate_us_per_event": round(multivariate_s * us, 3),
        "performance_us_per_event": round(performance_s * us, 3),
    }
    return outcome
