"""The fleet measurement's Quix Streams peer, run as a child: an idiomatic Quix Streams app doing with River
what streamdrift does, in the peers venv (`peers_venv.py`).

`.cache/bench/peers-venv/bin/python -I benchmarks/peer_quix.py --bootstrap HOST:PORT --topic T --group G
--alerts A --state-dir DIR`: an `Application` (exactly once, from the earliest offset, committing every
0.5 s) whose dataframe over T applies one function to each event: the same 19 River `ADWIN()` updates as
`peer_kafka_python.py` (whose detection code this file repeats: it runs in another venv, and each peer is one
program a user could have written), the detectors held in a plain dict, not in Quix state, so they are lost
on a restart, which is the point of comparison. The function returns the event's alerts, expanded into one
row each and sent to A with `.to_topic`. `-I` keeps the repository off sys.path: nothing of streamdrift (nor
of the harness) can be imported.

It prints what `baseline.py` prints on stdout: `started`, `progress` lines about every 0.25 s, `done`. The
count and the end come from the Application's `on_message_processed` callback, which Quix calls with the
topic, partition and offset of each message once the dataframe has processed it: it counts, prints, and calls
`app.stop()` when every partition has reached the end offset it had at start (read with the app's own
`get_consumer()` before running). `app.run()` then commits the last checkpoint and returns.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson
from confluent_kafka import TopicPartition
from quixstreams import Application  # type: ignore[import-not-found]  # only in the peers venv
from river.drift import ADWIN

COMMIT_INTERVAL_S = 0.5
PROGRESS_INTERVAL_S = 0.25
METADATA_TIMEOUT_S = 30.0


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


class Progress:
    """The `on_message_processed` callback: counts, prints progress, stops the app at the end offsets."""

    def __init__(self) -> None:
        self.to_read: dict[int, int] = {}  # partition -> its end offset at start, while not yet reached
        self.events = 0
        self.last_print = time.monotonic()
        self.app: Any = None  # set once the Application that calls it exists

    def __call__(self, _topic: str, partition: int, offset: int) -> None:
        self.events += 1
        now = time.monotonic()
        if now - self.last_print >= PROGRESS_INTERVAL_S:
            self.print()
            self.last_print = now
        if offset + 1 >= self.to_read.get(partition, sys.maxsize):
            del self.to_read[partition]
            if not self.to_read:
                self.app.stop()  # the loop ends after this message; run() commits the checkpoint

    def print(self) -> None:
        _line({"event": "progress", "events": self.events, "t": time.time()})


def end_offsets(app: Any, topic: str) -> dict[int, int]:
    """Each partition's end offset now, with a consumer of the app's own configuration."""
    with app.get_consumer(auto_commit_enable=False) as consumer:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        partitions = sorted(metadata.topics[topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=METADATA_TIMEOUT_S)[1]
            for p in partitions
        }


def main() -> int:
    parser = argparse.ArgumentParser(prog="peer_quix.py")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--alerts", required=True, help="the topic the alerts go to")
    parser.add_argument("--state-dir", required=True, help="Quix's state directory (unused: no Quix state)")
    args = parser.parse_args()
    progress = Progress()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        processing_guarantee="exactly-once",
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL_S,
        state_dir=args.state_dir,
        on_message_processed=progress,
    )
    progress.app = app
    end = end_offsets(app, args.topic)
    progress.to_read = {partition: offset for partition, offset in end.items() if offset > 0}
    _line({"event": "started", "t": time.time(), "end_offsets": sum(end.values())})
    fleet = FleetDetectors()
    events = app.topic(args.topic, value_deserializer="json", key_deserializer="bytes")
    alerts = app.topic(args.alerts, value_serializer="json", key_serializer="bytes")
    sdf = app.dataframe(events)
    # One row per alert (none for most events), keyed by the event's key: the model id.
    sdf.apply(fleet.update, expand=True).to_topic(alerts)
    if progress.to_read:
        app.run()
    progress.print()
    if progress.to_read:  # stopped by a signal before the end
        _line({"event": "stopped", "events": progress.events, "t": time.time()})
        return 1
    _line({"event": "done", "events": progress.events, "alerts": fleet.alerts, "t": time.time()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
