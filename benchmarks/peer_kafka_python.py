"""The fleet measurement's hand-written peer, run as a child: what a user would write instead of streamdrift
with kafka-python and River.

`python -m benchmarks.peer_kafka_python --bootstrap HOST:PORT --topic T --group G --alerts A` is a member
of consumer group G (read_committed, no auto-commit, otherwise kafka-python's defaults, as a user leaves
them) reading T from the beginning. Each value is parsed with `orjson.loads`; each model has a dict of River
`ADWIN()`s (default parameters) per signal, made at the signal's first value, and every event makes the same
19 updates as the service's default signals do for these events: each feature's value, each feature's
missing flag (1.0 when a feature the model has sent before is absent or null, else 0.0), the type-mismatch
rate (1.0 when a feature value is not a number, else 0.0), the prediction and the score. A detector that
reports drift sends a small JSON alert to A with a KafkaProducer (kafka-python's defaults: idempotent,
acks=all). Every 500 ms it flushes the producer, then commits the offsets synchronously: at least once, the
detectors in memory only (a restart begins them again from nothing), which is the point of comparison.

It prints what `baseline.py` prints on stdout: `{"event": "started", ...}`, then about every 0.25 s
`{"event": "progress", "events": <cumulative>, "t": <epoch s>}`, then `{"event": "done", ...}` once it has
read up to the end offsets the topic had when it started. `peer_quix.py` repeats the detection code below
(it runs in another venv, and each peer is meant to be one program a user could have written).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from river.drift import ADWIN

COMMIT_INTERVAL_S = 0.5
PROGRESS_INTERVAL_S = 0.25
STALL_S = 60.0


class FleetDetectors:
    """Per model: a River ADWIN per signal, made at the signal's first value, and the features seen."""

    def __init__(self) -> None:
        self.detectors: dict[str, dict[str, Any]] = {}
        self.features: dict[str, list[str]] = {}
        self.alerts = 0  # alerts made so far

    def update(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Feed one event to its model's detectors; the alerts of the detectors that report drift."""
        model_id = event["model_id"]
        detectors = self.detectors.get(model_id)
        if detectors is None:
            detectors = self.detectors[model_id] = {}
            self.features[model_id] = []
        seen = self.features[model_id]
        values = event.get("features") or {}
        for name in values:
            if name not in seen:
                seen.append(name)
        alerts: list[dict[str, Any]] = []
        mismatch = 0.0
        for name in seen:
            value = values.get(name)
            self._update(detectors, f"missing:{name}", 1.0 if value is None else 0.0, event, alerts)
            if value is None:
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                self._update(detectors, f"feature:{name}", value, event, alerts)
            else:
                mismatch = 1.0
        self._update(detectors, "type_mismatch", mismatch, event, alerts)
        for signal in ("prediction", "score"):
            value = event.get(signal)
            if isinstance(value, int | float) and not isinstance(value, bool):
                self._update(detectors, signal, value, event, alerts)
        self.alerts += len(alerts)
        return alerts

    @staticmethod
    def _update(
        detectors: dict[str, Any],
        signal: str,
        value: float,
        event: dict[str, Any],
        alerts: list[dict[str, Any]],
    ) -> None:
        detector = detectors.get(signal)
        if detector is None:
            detector = detectors[signal] = ADWIN()  # type: ignore[no-untyped-call]  # River is untyped
        detector.update(value)
        if detector.drift_detected:
            alerts.append(
                {
                    "model_id": event["model_id"],
                    "signal": signal,
                    "value": value,
                    "event_id": event.get("event_id"),
                    "detected_at": time.time(),
                }
            )


def _line(fields: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(fields).decode() + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_kafka_python")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--alerts", required=True, help="the topic the alerts go to")
    args = parser.parse_args()
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id="streamdrift-bench-peer-kafka-python",
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap, client_id="streamdrift-bench-peer-kafka-python"
    )
    fleet = FleetDetectors()
    loads, dumps = orjson.loads, orjson.dumps
    events = 0
    try:
        tps = [TopicPartition(args.topic, p) for p in sorted(consumer.partitions_for_topic(args.topic) or ())]
        end = consumer.end_offsets(tps)
        # Partitions still to read up to their end offset at start: one read to the end is the run.
        to_read = {tp.partition: offset for tp, offset in end.items() if offset > 0}
        _line({"event": "started", "t": time.time(), "end_offsets": sum(end.values())})
        consumer.subscribe([args.topic])
        last_commit = last_progress = last_record = time.monotonic()
        while to_read:
            batch = consumer.poll(timeout_ms=500)
            if not batch and time.monotonic() - last_record > STALL_S:
                _line({"event": "stalled", "events": events})
                return 1
            for tp, records in batch.items():
                for record in records:
                    for alert in fleet.update(loads(record.value)):
                        producer.send(args.alerts, key=record.key, value=dumps(alert))
                events += len(records)
                if records and records[-1].offset + 1 >= to_read.get(tp.partition, sys.maxsize):
                    del to_read[tp.partition]
            now = time.monotonic()
            if batch:
                last_record = now
            if now - last_commit >= COMMIT_INTERVAL_S:
                producer.flush()
                consumer.commit()
                last_commit = now
            if now - last_progress >= PROGRESS_INTERVAL_S:
                _line({"event": "progress", "events": events, "t": time.time()})
                last_progress = now
        producer.flush()
        consumer.commit()
        _line({"event": "progress", "events": events, "t": time.time()})
        _line({"event": "done", "events": events, "alerts": fleet.alerts, "t": time.time()})
    finally:
        producer.close(timeout=30)
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
