"""Upgrading River: snapshots written by another river version are rejected (River's detector state is tied to
its version), loudly, per partition; `run --rebuild-state-from` rebuilds those models from the input, alerts
muted, so that the alerts topic still equals one uninterrupted run's.

The upgrade is simulated the way it looks to a restore: every snapshot of the first run is written again,
signed with the state key, naming another river version.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.snapshot import SnapshotHeader, decode_snapshot, encode_snapshot
from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import (
    assert_alerts_equal_offline,
    committed_total,
    offline,
    prepare_run,
    produce_paced,
    read_all,
    stream,
    wait_for,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

OLD_RIVER = "0.25.9"


def test_snapshots_of_another_river_version_are_rebuilt_from_the_input(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    state_key: str,
) -> None:
    events = stream(models=6, per_model=3_000, seed=23)
    first, second = events[:9_000], events[9_000:]
    run = prepare_run(bootstrap_servers, new_topic(partitions=2), tmp_path, "upgrade")
    service = services(run.config_path, "upgrade-1")
    service.start()
    produce_paced(kafka_clients, run.topic, first, seconds=0)
    wait_for(service, lambda: committed_total(kafka_admin, run.group) == len(first), "the first part read")
    assert service.stop() == 0
    offsets = kafka_admin.list_group_offsets({run.group: None})[run.group]
    first_end = {tp.partition: meta.offset for tp, meta in offsets.items()}  # where the second part starts

    # The upgrade, as a restore sees it: every model's snapshot names another river version.
    state_topic = f"{run.tag}-state"
    latest = {(r.partition, r.key): r.value for r in read_all(kafka_clients, state_topic)}
    assert len(latest) == 6
    producer = kafka_clients.producer()
    for (partition, model_key), value in latest.items():
        header, state = decode_snapshot(value, state_key.encode(), RIVER_VERSION)
        old = SnapshotHeader(
            model_id=header.model_id, topic=header.topic, partition=header.partition, offset=header.offset,
            river_version=OLD_RIVER,
        )  # fmt: skip
        producer.send(state_topic, key=model_key, value=encode_snapshot(old, state, state_key.encode()),
                      partition=partition)  # fmt: skip
    producer.flush()

    # As an operator starts it after the upgrade.
    upgraded = Service(
        run.config_path, tmp_path / "upgrade-2.log", "upgrade-1", ("--rebuild-state-from", "0")
    )
    try:
        upgraded.start()
        produce_paced(kafka_clients, run.topic, second, seconds=0)
        wait_for(upgraded, lambda: committed_total(kafka_admin, run.group) == len(events), "the second part")
        assert upgraded.stop() == 0
    finally:
        if upgraded.process is not None and upgraded.process.poll() is None:
            upgraded.process.kill()

    # Exactly the alerts of one uninterrupted run: none of the first part again, the second part's as if
    # the detectors had never been lost.
    assert_alerts_equal_offline(kafka_clients, run, at_least=10)
    log = upgraded.log_events()
    per_partition = [e for e in log if str(e.get("event")).startswith("state partition restored")]
    assert sum(e["rejected_snapshots"].get("incompatible_version", 0) for e in per_partition) == 6
    assert [e["river_versions_found"] for e in per_partition] == [{OLD_RIVER: 3}, {OLD_RIVER: 3}]
    assert not any(e.get("event") == "snapshots of another river version rejected" for e in log)
    rebuilt = [e for e in log if e.get("event") == "rebuilding state"]
    assert {e["from_offset"] for e in rebuilt} == {0} and len({e["partition"] for e in rebuilt}) == 2
    replayed = max(e.get("replayed_events", 0) for e in log if e.get("event") in {"summary", "stopped"})
    assert replayed == len(first), "the first part was not read again to rebuild the detectors"

    # Control: fresh detectors from the second part on (what a silent fresh start gives) alert otherwise.
    records = read_all(kafka_clients, run.topic)
    whole, _ = offline(run.config, records)
    later = [r for r in records if r.offset >= first_end[r.partition]]
    fresh, _ = offline(run.config, later)
    in_second = [
        a
        for a in whole
        if orjson.loads(a)["source"]["offset"] >= first_end[orjson.loads(a)["source"]["partition"]]
    ]
    assert in_second and fresh != in_second
