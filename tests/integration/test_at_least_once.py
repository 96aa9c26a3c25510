"""`processing.guarantee: at_least_once` across kill -9: every alert of an uninterrupted offline run of the
same input is delivered at least once, and a repeat is always the same alert (the same alert_id, the same
bytes), never another one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import (
    BrokerView,
    committed_total,
    kill_repeatedly,
    offline,
    prepare_run,
    producing,
    read_all,
    stream,
    wait_until,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

KILLS = 6


def test_kill_9_delivers_every_alert_at_least_once_and_repeats_only_identical_ones(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    events = stream(models=12, per_model=3000, seed=31)
    # The default commit interval: alerts sent while their input is not committed yet, for a while.
    run = prepare_run(
        bootstrap_servers, new_topic(partitions=2), tmp_path, "alo",
        guarantee="at_least_once", commit_interval_ms=500,
    )  # fmt: skip
    service = services(run.config_path, "alo-1")
    # Most kills aimed at an alert just delivered: its input offset is not committed yet, so it comes again.
    view = BrokerView(kafka_clients, [run.topic], outputs=[f"{run.tag}-alerts"])
    # Paced to outlast the kills (about 5 s each); the rest, at least the last chunk, after the last one.
    with producing(
        kafka_clients, run.topic, events, seconds=8.0 * KILLS, chunk=100, hold_last=True
    ) as producer:
        service.start()
        kill_repeatedly(
            service,
            lambda: committed_total(kafka_admin, run.group),
            len(events),
            KILLS,
            (0.2, 1.5),
            view,
            transactional=False,
        )
        producer.hurry()
    wait_until(lambda: committed_total(kafka_admin, run.group) == len(events), "the service to catch up")
    assert service.stop() == 0

    expected, _monitor = offline(run.config, read_all(kafka_clients, run.topic))
    delivered = [record.value for record in read_all(kafka_clients, f"{run.tag}-alerts")]
    assert len(expected) >= 20, "the stream must produce alerts for the test to mean anything"
    assert len(set(expected)) == len(expected)
    missing = sorted(set(expected) - set(delivered))
    extra = sorted(set(delivered) - set(expected))
    assert not missing and not extra, (
        f"{len(missing)} alerts never delivered, {len(extra)} not expected; first missing: {missing[:3]}; "
        f"first not expected: {extra[:3]}"
    )
    # A repeat carries the alert_id and the bytes of the first delivery: one value per alert_id.
    values_by_id: defaultdict[str, set[bytes]] = defaultdict(set)
    for value in delivered:
        values_by_id[orjson.loads(value)["alert_id"]].add(value)
    assert len(values_by_id) == len(expected)
    assert all(len(values) == 1 for values in values_by_id.values())
    repeats = len(delivered) - len(set(delivered))
    print(f"{len(expected)} alerts, {len(delivered)} deliveries: {repeats} repeated")
    assert repeats > 0, "no kill landed between an alert's delivery and its commit: no repeat was tested"
