"""`streamdrift replay` over a topic range and over a file gives the alerts the service gave on that data."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import STREAMDRIFT, Service
from tests.integration.runs import committed_total, offline, prepare_run, read_all, stream, wait_until

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

FIRST_TIMESTAMP_MS = 1_790_000_000_000


def replay(*args: str) -> list[bytes]:
    return replay_and_summary(*args)[0]


def replay_and_summary(*args: str) -> tuple[list[bytes], str]:
    """The alerts, and the replay's stderr (its summary line counts what it read and wrote)."""
    done = subprocess.run([STREAMDRIFT, "replay", *args], capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.splitlines(), done.stderr.decode()[-2000:]


def without_source(alert: bytes) -> bytes:
    """What a replay of a file (no topic, no record times) shares with the service's alert (episode_id is
    the opening drift's alert_id, which names its source too)."""
    fields = orjson.loads(alert)
    for name in ("alert_id", "episode_id", "source", "detected_at"):
        del fields[name]
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def test_replay_of_a_topic_range_and_of_a_file_equals_the_service(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    events = stream(models=6, per_model=1500, seed=17)
    run = prepare_run(bootstrap_servers, new_topic(partitions=2), tmp_path, "replay")
    producer = kafka_clients.producer()
    for i, (model, value) in enumerate(events):
        producer.send(run.topic, key=model.encode(), value=value, timestamp_ms=FIRST_TIMESTAMP_MS + i)
    producer.flush()
    service = services(run.config_path, "replay-1")
    service.start()
    wait_until(lambda: committed_total(kafka_admin, run.group) == len(events), "the service to catch up")
    assert service.stop() == 0
    served = sorted(record.value for record in read_all(kafka_clients, f"{run.tag}-alerts"))
    assert len(served) >= 10

    config = str(run.config_path)
    # The whole topic: the very same alerts, byte for byte.
    whole, said = replay_and_summary("--config", config, "--topic", run.topic)
    assert sorted(whole) == served, f"{len(whole)} alerts; the replay said: {said}"
    # Up to an offset: detection is causal, so exactly the service's alerts on records before it.
    cut = 2000
    expected = [a for a in served if orjson.loads(a)["source"]["offset"] < cut]
    assert 0 < len(expected) < len(served)
    assert sorted(replay("--config", config, "--topic", run.topic, "--to", str(cut))) == expected
    # From a later offset: fresh detectors there (the README says so), not the service's alerts after it.
    records = read_all(kafka_clients, run.topic)
    fresh, _monitor = offline(run.config, [r for r in records if r.offset >= cut])
    served_after = [a for a in served if orjson.loads(a)["source"]["offset"] >= cut]
    assert sorted(replay("--config", config, "--topic", run.topic, "--from", str(cut))) == sorted(fresh)
    assert sorted(fresh) != sorted(served_after)
    # A time window: the production core over exactly the records stamped inside it.
    start_ms, stop_ms = FIRST_TIMESTAMP_MS + 3000, FIRST_TIMESTAMP_MS + 7000
    window = [r for r in read_all(kafka_clients, run.topic) if start_ms <= r.timestamp < stop_ms]
    in_window, _monitor = offline(run.config, window)
    assert in_window
    timed = replay("--config", config, "--topic", run.topic, "--from", iso(start_ms), "--to", iso(stop_ms))
    assert sorted(timed) == sorted(in_window)

    # A file of the same events: each model's events in the same order, so the same detections.
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(b"".join(value + b"\n" for _model, value in events))
    from_file = replay("--config", config, "--input", str(lines))
    assert sorted(map(without_source, from_file)) == sorted(map(without_source, served))
