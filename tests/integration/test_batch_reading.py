"""The service's consumers read record batches with `BatchRecords` (streamdrift/kafka/batches.py): from a real
broker, the same records as kafka-python's own reading, transactions and compression included."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from streamdrift.config.model import StreamdriftConfig
from streamdrift.kafka.batches import BatchRecords, read_batches_in_one_pass
from tests.conftest import KafkaClients, TopicFactory, unique_name

DEADLINE_S = 60.0


def read_all(consumer: Any, topic: str, partitions: int) -> list[Any]:
    """Every record a consumer sees, up to the partitions' end offsets."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    records: list[Any] = []
    deadline = time.monotonic() + DEADLINE_S
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        assert time.monotonic() < deadline, "the records were not all read"
        for batch in consumer.poll(timeout_ms=500, max_records=97).values():
            records += batch
    return sorted(records, key=lambda r: (r.partition, r.offset))


def test_the_service_consumer_reads_what_kafka_python_reads(
    bootstrap_servers: str, kafka_clients: KafkaClients, new_topic: TopicFactory
) -> None:
    topic = new_topic(partitions=2)
    plain = kafka_clients.producer(compression_type="gzip", linger_ms=20)
    for i in range(500):
        headers = [("trace", str(i).encode()), ("empty", b"")] if i % 3 == 0 else []
        value = b'{"model_id": "m%d", "features": {"x": %d.5}}' % (i % 9, i)
        if i % 50 == 1 and i % 7:
            value = None  # a tombstone (it has a key)
        plain.send(topic, key=None if i % 7 == 0 else b"m%d" % (i % 9), value=value, headers=headers)
    plain.flush(timeout=DEADLINE_S)
    transactional = kafka_clients.producer(transactional_id=unique_name("tx"))
    transactional.init_transactions()
    for outcome in ("commit", "abort", "commit"):
        transactional.begin_transaction()
        for i in range(40):
            transactional.send(topic, key=b"m%d" % (i % 9), value=f"{outcome}-{i}".encode())
        transactional.flush(timeout=DEADLINE_S)
        if outcome == "commit":
            transactional.commit_transaction()
        else:
            transactional.abort_transaction()

    config = StreamdriftConfig.model_validate(
        {"kafka": {"bootstrap_servers": bootstrap_servers, "group_id": "g"}, "topics": {"input": [topic]}}
    )
    for isolation in ("read_committed", "read_uncommitted"):
        ours = KafkaConsumer(
            bootstrap_servers=config.kafka.bootstrap_servers,
            enable_auto_commit=False,
            isolation_level=isolation,
        )
        read_batches_in_one_pass(ours)
        try:
            assert ours._fetcher.PartitionRecords is BatchRecords
            theirs = kafka_clients.consumer(isolation_level=isolation)
            expected = read_all(theirs, topic, 2)
            assert read_all(ours, topic, 2) == expected
        finally:
            ours.close()
        values = [r.value for r in expected]
        assert len(values) == 500 + 80 + (40 if isolation == "read_uncommitted" else 0)
        assert (b"abort-0" in values) == (isolation == "read_uncommitted")
