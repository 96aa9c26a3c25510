"""The subscriber API (streamdrift/subscriber.py) against the real broker, on both transports: typed alerts,
read_committed (an aborted transaction's alerts never show), each alert_id once, records that are not alerts
skipped, and a group that resumes after what it committed."""

from __future__ import annotations

import time

import orjson
import pytest

from streamdrift.config.model import KafkaSettings
from streamdrift.core.alert import DriftAlert, RecordSource, alert_id
from streamdrift.ports import OutRecord
from streamdrift.subscriber import Alert, AlertSubscriber
from tests.conftest import TopicFactory, unique_name
from tests.integration.test_transport_contract import make_transport

pytestmark = pytest.mark.usefixtures("kafka_client")

WAIT_S = 30.0


def drift_alert(model_id: str, offset: int, level: str = "drift") -> bytes:
    """An alert as the service writes it (the core's own serialisation)."""
    source = RecordSource(offset, "inference-events", 0, 1_767_225_600_000 + offset)
    return DriftAlert(
        alert_id=alert_id(model_id, "score", level, source),
        level=level,  # type: ignore[arg-type]  # one of the levels
        model_id=model_id,
        model_version="v1",
        signal="score",
        detector_type="adwin",
        detector_params={"delta": 0.002},
        source=source,
        observations=offset + 1,
        stats={"width": offset + 1, "mean": 0.25},
        event_time_ms=None,
        config_version="0123456789ab",
        episode_id=None,
    ).to_json()


def write(
    bootstrap_servers: str, client: str, topic: str, transactions: list[tuple[list[bytes], bool]]
) -> None:
    """Each (values, commit) in a transaction of its own, committed or aborted."""
    transport = make_transport(client, bootstrap_servers)
    producer = transport.producer(
        transactional_id=unique_name("alerts-writer"), transaction_timeout_ms=60_000
    )
    try:
        producer.init_transactions()
        for values, commit in transactions:
            producer.begin_transaction()
            for value in values:
                producer.send(OutRecord(topic=topic, key=b"m", value=value, headers=[], partition=0))
            if commit:
                producer.commit_transaction()
            else:
                producer.flush()
                producer.abort_transaction()
    finally:
        producer.close()


def take(subscriber: AlertSubscriber, count: int) -> list[Alert]:
    """The next `count` alerts, one at a time as an application iterates them."""
    alerts: list[Alert] = []
    deadline = time.monotonic() + WAIT_S
    while len(alerts) < count:
        assert time.monotonic() < deadline, f"{len(alerts)} of {count} alerts within {WAIT_S:.0f} s"
        alerts += subscriber.poll(0.5, max_alerts=count - len(alerts))
    return alerts


def test_a_group_reads_committed_alerts_once_each_and_resumes_after_its_commit(
    bootstrap_servers: str, kafka_client: str, new_topic: TopicFactory
) -> None:
    topic = new_topic(1)
    a, b, c, d, e = (drift_alert("m", offset) for offset in (10, 20, 30, 40, 50))
    write(
        bootstrap_servers,
        kafka_client,
        topic,
        [([a, b, b, b"not json", orjson.dumps({"level": "drift"})], True), ([c], False), ([d, e], True)],
    )
    kafka = KafkaSettings(bootstrap_servers=bootstrap_servers, client=kafka_client)
    group = unique_name("subscribers")

    with AlertSubscriber(kafka, topic, group_id=group, from_beginning=True) as first:
        assert take(first, 2) == [Alert.from_json(a), Alert.from_json(b)]
        first.commit()
        assert take(first, 1) == [Alert.from_json(d)]  # handed out, not committed
        assert (first.repeated, first.skipped) == (1, 2)

    with AlertSubscriber(kafka, topic, group_id=group, from_beginning=True) as resumed:
        # Everything after the commit, at least once: the second record of b (the ids a subscriber remembers
        # are its own), d again (handed out, never committed), e; nothing before the commit.
        expected = [orjson.loads(value) for value in (b, d, e)]
        assert [alert.to_dict() for alert in take(resumed, 3)] == expected
        assert (resumed.repeated, resumed.skipped) == (0, 2)


def test_without_a_group_every_partition_is_read_from_the_beginning(
    bootstrap_servers: str, kafka_client: str, new_topic: TopicFactory
) -> None:
    topic = new_topic(1)
    values = [drift_alert(f"m{i}", i, level) for i, level in enumerate(["warning", "drift", "resolved"])]
    write(bootstrap_servers, kafka_client, topic, [(values, True)])
    kafka = KafkaSettings(bootstrap_servers=bootstrap_servers, client=kafka_client)
    with AlertSubscriber(kafka, topic, from_beginning=True) as alerts:
        got = take(alerts, 3)
    assert [(x.level, x.model_id, x.source.offset, x.detector.params) for x in got] == [
        (fields["level"], fields["model_id"], fields["source"]["offset"], fields["detector"]["params"])
        for fields in map(orjson.loads, values)
    ]
