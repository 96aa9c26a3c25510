"""Repartition mode: unkeyed input, a model's events spread over partitions, is forwarded keyed by model_id
through the internal topic and yields the alerts that the same events keyed by model_id yield, even with
the service killed -9 again and again while the input arrives.
"""

from __future__ import annotations

import itertools
import random
import time
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
    Outgoing,
    PacedProducer,
    Run,
    committed_total,
    kill_repeatedly,
    output_topics,
    prepare_run,
    read_all,
    stream,
    wait_for,
    wait_until,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

BAD_RECORD = b'{"model_id": "ad-0", "features": '  # cut off: a dead letter in both runs
KILLS = 6


def produce_keyed(clients: KafkaClients, topic: str, events: list[tuple[str, bytes]], first_ms: int) -> None:
    """Each event stamped 1 ms after the one before, keyed by model id."""
    producer = clients.producer(linger_ms=5)
    for i, (model, value) in enumerate(events):
        producer.send(topic, key=model.encode(), value=value, timestamp_ms=first_ms + i)
    producer.flush()


def unkeyed_chunks(topic: str, events: list[tuple[str, bytes]], first_ms: int) -> list[list[Outgoing]]:
    """The same events and timestamps without a key, as a sticky partitioner sends them: runs of 20 to 200
    to one of the 3 partitions at random. Each run is acknowledged before the next is sent, so what has
    arrived is always the oldest input: the timestamp merge can then forward it in time order."""
    rng = random.Random(5)
    chunks, start = [], 0
    while start < len(events):
        size, partition = rng.randint(20, 200), rng.randrange(3)
        chunks.append([
            (topic, None, value, partition, first_ms + i)
            for i, (_model, value) in enumerate(events[start : start + size], start=start)
        ])  # fmt: skip
        start += size
    return chunks


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
    # Recent record times: the broker deletes records older than the topic's retention (7 days) at once.
    first_ms = int(time.time() * 1000) - 60_000
    keyed_topic, unkeyed_topic = new_topic(partitions=2), new_topic(partitions=3)
    produce_keyed(kafka_clients, keyed_topic, events, first_ms)
    (tmp_path / "keyed").mkdir()
    (tmp_path / "unkeyed").mkdir()
    keyed = prepare_run(bootstrap_servers, keyed_topic, tmp_path / "keyed", "keyed")
    # A long merge wait: the merge never goes on without a partition that may still hold older input. The
    # default commit interval: transactions long enough for kills to land in most of them.
    unkeyed = prepare_run(
        bootstrap_servers, unkeyed_topic, tmp_path / "unkeyed", "repart",
        repartition="true", repartition_wait_ms=60_000, commit_interval_ms=500,
    )  # fmt: skip
    keyed_service = services(keyed.config_path, "keyed-1")
    unkeyed_service = services(unkeyed.config_path, "repart-1")
    keyed_service.start()

    def forwarded_so_far() -> int:
        return committed_total(kafka_admin, unkeyed.group, unkeyed_topic)

    view = BrokerView(kafka_clients, [unkeyed_topic], output_topics(unkeyed.config))
    chunks = unkeyed_chunks(unkeyed_topic, events, first_ms)
    # The unkeyed input arrives while the service runs and is killed (about 5 s a kill, more when restores
    # are slow: the pace leaves room, since input must still be arriving at the last kill); the last run of
    # it after the last kill, at once (a burst: test_a_burst_of_live_input_... checks that alone).
    with PacedProducer(kafka_clients, chunks, seconds=12.0 * KILLS, hold_last=True) as producer:
        unkeyed_service.start()
        # A third, not half: a forwarding interval's transaction is short and often holds no alert, so an
        # aimed kill finds it committed between the look that saw it open and the kill more often than
        # elsewhere (2 of 6 landed in one clean-clone run on librdkafka).
        kill_repeatedly(
            unkeyed_service, forwarded_so_far, len(events), KILLS, (0.2, 1.5), view, landed_share=1 / 3
        )
        producer.hurry()

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
    assert len([e for e in log if e.get("event") == "state restored"]) >= KILLS


def test_a_burst_of_live_input_is_forwarded_in_timestamp_order(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    events = stream(models=6, per_model=2500, seed=23)
    first_ms = int(time.time() * 1000) - 60_000
    run = prepare_run(
        bootstrap_servers, new_topic(partitions=3), tmp_path, "burst",
        repartition="true", repartition_wait_ms=60_000,
    )  # fmt: skip
    service = services(run.config_path, "burst-1")
    service.start()
    wait_for(
        service,
        lambda: any(
            e.get("event") == "partitions restored" and e["partitions"] for e in service.log_events()
        ),
        "the service to be ready",
    )
    # While it runs, the runs of unkeyed input one after the other as fast as they go, each acknowledged
    # before the next is sent: what has arrived is always the oldest input, no fault anywhere.
    PacedProducer(kafka_clients, unkeyed_chunks(run.topic, events, first_ms), seconds=0).produce()
    wait_until(lambda: committed_total(kafka_admin, run.group, run.topic) == len(events), "the forwarding")
    assert service.stop() == 0

    timestamps = defaultdict(list)
    for record in sorted(
        read_all(kafka_clients, run.config.repartition_topic()), key=lambda r: (r.partition, r.offset)
    ):
        timestamps[record.key.decode()].append(record.timestamp)
    assert sum(map(len, timestamps.values())) == len(events)
    inversions = {model: sum(b < a for a, b in itertools.pairwise(t)) for model, t in timestamps.items()}
    assert not any(inversions.values()), f"records forwarded before older ones, per model: {inversions}"
