"""Repartition mode: unkeyed input, a model's events spread over partitions, is forwarded keyed by model_id
through the internal topic and yields the alerts that the same events keyed by model_id yield, even with
the service killed mid-run.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import (
    Run,
    committed_total,
    kill_repeatedly,
    prepare_run,
    read_all,
    stream,
    wait_until,
)

FIRST_TIMESTAMP_MS = 1_780_000_000_000
BAD_RECORD = b'{"model_id": "ad-0", "features": '  # cut off: a dead letter in both runs


def produce(clients: KafkaClients, topic: str, events: list[tuple[str, bytes]], *, keyed: bool) -> None:
    """Each event stamped 1 ms after the one before; unkeyed: each to a random one of the 3 partitions."""
    rng = random.Random(5)
    producer = clients.producer(linger_ms=5)
    for i, (model, value) in enumerate(events):
        timestamp = FIRST_TIMESTAMP_MS + i
        if keyed:
            producer.send(topic, key=model.encode(), value=value, timestamp_ms=timestamp)
        else:
            producer.send(topic, value=value, partition=rng.randrange(3), timestamp_ms=timestamp)
    producer.flush()


def comparable(alert: bytes) -> bytes:
    """An alert without what names its input record (topic, partition, offset; episode_id is the opening
    drift's alert_id, which names it too) or its config file."""
    fields = orjson.loads(alert)
    del fields["alert_id"], fields["episode_id"], fields["config_version"]
    fields["source"] = {"timestamp_ms": fields["source"]["timestamp_ms"]}
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def wait_for_everything_processed(admin: Any, clients: KafkaClients, run: Run, events: int) -> None:
    """Input fully forwarded (its offsets commit with the forwarded records), then the internal topic read."""
    wait_until(lambda: committed_total(admin, run.group, run.topic) == events, "the input to be forwarded")
    internal = f"{run.group}-repartition"
    ends: defaultdict[int, int] = defaultdict(int)
    for record in read_all(clients, internal):
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    wait_until(lambda: committed_total(admin, run.group, internal) == sum(ends.values()), "detection")


def test_repartition_mode_gives_unkeyed_input_the_alerts_keyed_input_gets(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    events = stream(models=6, per_model=2500, seed=23)
    events.insert(len(events) // 2, ("ad-0", BAD_RECORD))
    keyed_topic, unkeyed_topic = new_topic(partitions=2), new_topic(partitions=3)
    produce(kafka_clients, keyed_topic, events, keyed=True)
    produce(kafka_clients, unkeyed_topic, events, keyed=False)
    (tmp_path / "keyed").mkdir()
    (tmp_path / "unkeyed").mkdir()
    keyed = prepare_run(bootstrap_servers, keyed_topic, tmp_path / "keyed", "keyed")
    # A long merge wait: the input is all there, so the merge never has to go on without a partition.
    unkeyed = prepare_run(
        bootstrap_servers, unkeyed_topic, tmp_path / "unkeyed", "repart",
        repartition="true", repartition_wait_ms=60_000,
    )  # fmt: skip
    keyed_service = services(keyed.config_path, "keyed-1")
    unkeyed_service = services(unkeyed.config_path, "repart-1")
    keyed_service.start()
    unkeyed_service.start()

    def forwarded_so_far() -> int:
        return committed_total(kafka_admin, unkeyed.group, unkeyed_topic)

    kill_repeatedly(unkeyed_service, forwarded_so_far, len(events), kills=2, pause=(0.5, 1.5))

    wait_for_everything_processed(kafka_admin, kafka_clients, unkeyed, len(events))
    wait_until(lambda: committed_total(kafka_admin, keyed.group) == len(events), "the keyed run")
    assert keyed_service.stop() == 0
    assert unkeyed_service.stop() == 0

    keyed_alerts = [record.value for record in read_all(kafka_clients, f"{keyed.tag}-alerts")]
    unkeyed_alerts = [record.value for record in read_all(kafka_clients, f"{unkeyed.tag}-alerts")]
    assert len(keyed_alerts) >= 10, "the stream must produce alerts for the test to mean anything"
    assert sorted(map(comparable, unkeyed_alerts)) == sorted(map(comparable, keyed_alerts))

    # The internal topic holds every good event once (the kill duplicated nothing), each model in one place.
    forwarded = read_all(kafka_clients, f"{unkeyed.group}-repartition")
    assert len(forwarded) == len(events) - 1
    homes = defaultdict(set)
    for record in forwarded:
        homes[record.key].add(record.partition)
    assert all(len(partitions) == 1 for partitions in homes.values()), homes

    # Alerts point at the original unkeyed record, which is an event of that model.
    inputs = {(r.partition, r.offset): r.value for r in read_all(kafka_clients, unkeyed_topic)}
    for alert in map(orjson.loads, unkeyed_alerts):
        assert alert["source"]["topic"] == unkeyed_topic
        original = orjson.loads(inputs[(alert["source"]["partition"], alert["source"]["offset"])])
        assert original["model_id"] == alert["model_id"]

    dead = read_all(kafka_clients, f"{unkeyed.tag}-dead-letter")
    assert [record.value for record in dead] == [BAD_RECORD]
    assert dict(dead[0].headers)["streamdrift.source.topic"] == unkeyed_topic.encode()
    log = unkeyed_service.log_events()
    assert not [e for e in log if str(e.get("event")).startswith("a model arrives on two partitions")]
    assert len([e for e in log if e.get("event") == "state restored"]) >= 2
