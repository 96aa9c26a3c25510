"""The deployments the exactly-once tests run: an input stream with changes in it, the service's config, an
offline uninterrupted run to compare with, and ways to disturb the service (kill -9) while it works.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kafka import TopicPartition
from kafka.errors import KafkaError

from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.core.alert import RecordSource
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.core.snapshot import decode_snapshot
from tests.conftest import KafkaClients, unique_name
from tests.integration.conftest import Service

DEADLINE_S = 120.0
# `make soak` raises these: more kills over more events.
SOAK_KILLS = int(os.environ.get("STREAMDRIFT_SOAK_KILLS", "10"))
SOAK_EVENTS = int(os.environ.get("STREAMDRIFT_SOAK_EVENTS", "100800"))


def config_yaml(bootstrap: str, input_topic: str, tag: str, **processing: Any) -> str:
    extra = "".join(f"\n  {key}: {value}" for key, value in processing.items())
    return f"""
kafka: {{bootstrap_servers: "{bootstrap}", group_id: "{tag}-group"}}
http: {{port: 0}}
topics:
  input: ["{input_topic}"]
  alerts: "{tag}-alerts"
  dead_letter: "{tag}-dead-letter"
  state: "{tag}-state"
processing:
  commit_interval_ms: 100
  session_timeout_ms: 6000{extra}
models:
  - match: "ph-*"
    features:
      x: {{detector: {{type: page_hinkley, threshold: 20}}}}
  - match: "ks-*"
    features:
      x: {{detector: {{type: kswin, alpha: 0.001, seed: 5}}}}
logging: {{summary_interval_s: 1}}
"""


def stream(models: int, per_model: int, seed: int) -> list[tuple[str, bytes]]:
    """Interleaved events of several models, each with two mean shifts and a missing-value burst."""
    rng = np.random.default_rng(seed)
    kinds = ("ad", "ph", "ks")
    names = [f"{kinds[i % 3]}-{i}" for i in range(models)]
    shifts = {name: sorted(rng.choice(np.arange(500, per_model - 500), 2, replace=False)) for name in names}
    out = []
    for i in range(per_model):
        for name in names:
            first, second = shifts[name]
            level = 0.0 + (i >= first) * 1.5 - (i >= second) * 1.5
            features: dict[str, Any] = {
                "x": round(float(rng.normal(level, 1.0)), 4),
                "y": round(float(rng.uniform()), 4),
            }
            if first <= i < first + 300 and rng.uniform() < 0.4:
                features["y"] = None
            event = {"model_id": name, "features": features, "score": round(float(rng.beta(2, 5)), 4)}
            out.append((name, orjson.dumps(event)))
    return out


def read_all(clients: KafkaClients, topic: str) -> list[Any]:
    consumer = clients.consumer(isolation_level="read_committed", enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    if not partitions:
        return []  # the topic does not exist (yet)
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    records: list[Any] = []
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        assert time.monotonic() < deadline, f"could not read {topic} to its end"
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def offline(config: StreamdriftConfig, records: list[Any]) -> tuple[list[bytes], Monitor]:
    """The uninterrupted run: the production core over the input records, partition by partition."""
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    monitor = Monitor(config.policies(), config_version=config.config_version, limits=config.monitor_limits())
    alerts = []
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = decoder.decode(record.key, record.value)
        source = RecordSource(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
        )
        alerts.extend(alert.to_json() for alert in monitor.process(event, source))
    return alerts, monitor


@dataclass(frozen=True, slots=True)
class Run:
    """One service deployment under test: its input topic, its own topic and group names, its config."""

    topic: str
    tag: str
    config_path: Path
    config: StreamdriftConfig

    @property
    def group(self) -> str:
        return f"{self.tag}-group"


def prepare_run(bootstrap: str, topic: str, tmp_path: Path, prefix: str, **processing: Any) -> Run:
    tag = unique_name(prefix)
    text = config_yaml(bootstrap, topic, tag, **processing)
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(text)
    return Run(topic=topic, tag=tag, config_path=config_path, config=parse_config(text.encode()))


def assert_alerts_equal_offline(clients: KafkaClients, run: Run, at_least: int) -> Monitor:
    """The read_committed alerts topic equals the uninterrupted offline run: no duplicate, none missing."""
    expected, monitor = offline(run.config, read_all(clients, run.topic))
    alerts = [record.value for record in read_all(clients, f"{run.tag}-alerts")]
    assert len(expected) >= at_least, "the stream must produce alerts for the test to mean anything"
    assert len(alerts) == len(set(alerts)), "duplicate alerts"
    missing = sorted(set(expected) - set(alerts))
    extra = sorted(set(alerts) - set(expected))
    assert not missing and not extra, (
        f"{len(missing)} alerts missing, {len(extra)} not expected; first missing: {missing[:3]}; "
        f"first not expected: {extra[:3]}"
    )
    return monitor


def kill_repeatedly(
    service: Service, committed: Callable[[], int], total: int, kills: int, pause: tuple[float, float]
) -> None:
    """`kill -9` the service `kills` times, each a random moment after it has made progress, restarting it.

    Progress: `committed()` (a sum of committed offsets) grew, or reached `total` (nothing left to do).
    """
    rng = random.Random(kills)
    for kill in range(kills):
        before = committed()

        def progressed(before: int = before) -> bool:
            now = committed()
            return now > before or now == total

        wait_for(service, progressed, f"progress before kill {kill + 1}")
        time.sleep(rng.uniform(*pause))  # a random moment to crash at, not a synchronisation
        service.kill()
        service.start()


def committed_total(admin: Any, group: str, topic: str | None = None) -> int:
    """The sum of the group's committed offsets (of one topic, when given)."""
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError:  # e.g. the group's coordinator is still loading on a fresh broker: not yet
        return 0
    return sum(meta.offset for tp, meta in offsets.items() if meta.offset >= 0 and topic in (None, tp.topic))


def wait_for(service: Service, condition: Callable[[], bool], what: str) -> None:
    """`wait_until`, with the service's last log lines in the failure message."""
    try:
        wait_until(condition, what)
    except AssertionError as error:
        raise AssertionError(f"{error}; the service's last log lines:\n{service.log_tail()}") from None


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling interval of a deadline-bounded wait


def final_state(clients: KafkaClients, topic: str, key: str) -> dict[str, bytes]:
    latest: dict[str, bytes] = {}
    for record in read_all(clients, topic):
        latest[record.key.decode()] = record.value
    return {
        model: pickle.dumps(decode_snapshot(value, key.encode(), RIVER_VERSION)[1])
        for model, value in latest.items()
    }


def produce_paced(clients: KafkaClients, topic: str, events: list[tuple[str, bytes]], seconds: float) -> None:
    producer = clients.producer(linger_ms=5)
    started = time.monotonic()
    for i, (model, value) in enumerate(events):
        producer.send(topic, key=model.encode(), value=value)
        if i % 1000 == 999:
            producer.flush()
            ahead = (i + 1) / len(events) * seconds - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # pacing the input so that kills land mid-run
    producer.flush()


@contextlib.contextmanager
def producing(
    clients: KafkaClients, topic: str, events: list[tuple[str, bytes]], seconds: float
) -> Iterator[None]:
    """Produce `events` over about `seconds` in the background; always waits for the producer at exit."""
    failures: list[BaseException] = []

    def target() -> None:
        try:
            produce_paced(clients, topic, events, seconds)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failures:
        raise failures[0]
