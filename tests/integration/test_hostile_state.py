"""Hostile records on the state topic, against the real service on the real broker: a snapshot whose body
would run a command, snapshots copied under another model's key or into another partition, and an old
snapshot written back. Every one is signed with the service's own state key, so only the decoder's allowlist
and the restore's checks of where a snapshot belongs and how new it is can stop them.

After a restart the service restores each model's newest snapshot, runs nothing, counts and logs each
rejection by reason, and goes on: its alerts and final state equal an uninterrupted offline run's.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.snapshot import SnapshotHeader, decode_snapshot, read_header
from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import (
    assert_alerts_equal_offline,
    committed_total,
    prepare_run,
    read_all,
    stream,
    wait_until,
)
from tests.unit.test_snapshot_security import code_execution, sign

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

PER_MODEL = 1500
BATCHES = ((0, 600), (600, 1100), (1100, PER_MODEL))  # events of each model per batch: before, between, after
HOME = {"ad-0": 0, "ph-1": 0, "ks-2": 1}  # the input partition of each model's events


def latest_by_partition(clients: KafkaClients, topic: str) -> dict[tuple[int, str], Any]:
    """The last record of each (partition, key) of a topic."""
    return {(record.partition, record.key.decode()): record for record in read_all(clients, topic)}


def test_hostile_state_records_are_rejected_counted_and_the_newest_snapshots_restored(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    state_key: str,
) -> None:
    run = prepare_run(bootstrap_servers, new_topic(partitions=2), tmp_path, "hostile", snapshot_interval_ms=0)
    state_topic = f"{run.tag}-state"
    events = stream(models=3, per_model=PER_MODEL, seed=5)
    assert {model for model, _ in events} == set(HOME)
    producer = kafka_clients.producer()
    produced = 0

    def produce_batch(number: int) -> None:
        nonlocal produced
        start, stop = BATCHES[number]
        for model, value in events[start * len(HOME) : stop * len(HOME)]:
            producer.send(run.topic, key=model.encode(), value=value, partition=HOME[model])
        producer.flush()
        produced = stop * len(HOME)
        wait_until(lambda: committed_total(kafka_admin, run.group) == produced, f"batch {number + 1}")

    service = services(run.config_path, "hostile-1")
    service.start()
    produce_batch(0)
    old = latest_by_partition(kafka_clients, state_topic)  # snapshots of the first batch
    produce_batch(1)
    assert service.stop() == 0
    newest = latest_by_partition(kafka_clients, state_topic)
    for model, partition in HOME.items():
        then, now = (read_header(s[(partition, model)].value, state_key.encode()) for s in (old, newest))
        assert then.offset < now.offset, f"{model}: the second batch must have made a newer snapshot"

    # Every forgery signed with the service's key: a command in a body, and real snapshots out of place.
    marker = tmp_path / "ran"
    ghost = SnapshotHeader(
        model_id="ghost", topic=run.topic, partition=0, offset=10**9, river_version=RIVER_VERSION
    )
    forged = [
        (
            0,
            b"ghost",
            sign(code_execution(marker)["random._os.system through a river module"], state_key, ghost),
        ),
        (0, b"ad-0", old[(0, "ad-0")].value),  # ad-0's older snapshot written again: stale
        (0, b"ad-0", old[(0, "ph-1")].value),  # ph-1's under ad-0's key: misplaced
        (0, b"ks-2", old[(1, "ks-2")].value),  # ks-2's of partition 1 in partition 0: misplaced
    ]
    for partition, key, value in forged:
        producer.send(state_topic, key=key, value=value, partition=partition)
    producer.flush()

    first_run = len(service.log_events())
    service.start()
    wait_until(
        lambda: any(e.get("event") == "partitions restored" for e in service.log_events()[first_run:]),
        "the restarted service to restore its partitions",
    )
    produce_batch(2)  # the service goes on with new input
    assert service.stop() == 0
    second_run = service.log_events()[first_run:]

    assert not marker.exists()
    rejected = [e for e in second_run if e.get("event") == "state snapshot rejected"]
    assert sorted((e["model_id"], e["reason"]) for e in rejected) == [
        ("ad-0", "misplaced"), ("ad-0", "stale"), ("ghost", "disallowed_class"), ("ks-2", "misplaced"),
    ]  # fmt: skip
    summaries = {
        e["partition"]: e for e in second_run if str(e.get("event")).startswith("state partition restored")
    }
    assert summaries[0]["rejected_snapshots"] == {"stale": 1, "misplaced": 2, "disallowed_class": 1}
    assert summaries[0]["restored_models"] == 2
    assert summaries[1]["rejected_snapshots"] == {}
    assert summaries[1]["restored_models"] == 1
    stopped = [e for e in second_run if e.get("event") == "stopped"][-1]
    assert stopped["rejected_snapshots"] == {"stale": 1, "misplaced": 2, "disallowed_class": 1}
    # Each model came back at its newest snapshot, which reflects every committed event: none read again.
    assert stopped["replayed_events"] == 0

    monitor = assert_alerts_equal_offline(kafka_clients, run, at_least=3)
    final = latest_by_partition(kafka_clients, state_topic)
    for model, partition in HOME.items():
        _, state = decode_snapshot(final[(partition, model)].value, state_key.encode(), RIVER_VERSION)
        assert pickle.dumps(state) == pickle.dumps(monitor.export_model(model)), model
