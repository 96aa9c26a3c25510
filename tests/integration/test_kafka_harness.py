"""The Kafka test harness works: the broker named by KAFKA_BOOTSTRAP_SERVERS does what the project needs.

Every test talks to the real broker. Nothing waits by sleeping: each wait polls until a condition holds
or a deadline passes, and a passed deadline fails the test with what was seen so far.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.structs import MemberState

from tests.conftest import KafkaClients, TopicFactory, unique_name

DEADLINE_S = 30.0


def poll_records(consumer: Any, count: int, timeout_s: float = DEADLINE_S) -> list[Any]:
    """Poll until `count` records arrived (in partition order) or fail at the deadline."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count:
        if time.monotonic() >= deadline:
            raise AssertionError(f"got {len(records)} of {count} records in {timeout_s}s: {records!r}")
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    assert len(records) == count, f"expected {count} records, got more: {records!r}"
    return records


def read_until(clients: KafkaClients, topic: str, last_value: bytes, isolation_level: str) -> list[bytes]:
    """Values of partition 0 of `topic`, from the beginning up to and including `last_value`."""
    consumer = clients.consumer(isolation_level=isolation_level)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    values: list[bytes] = []
    deadline = time.monotonic() + DEADLINE_S
    while last_value not in values:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{last_value!r} not seen in {topic} ({isolation_level}): {values!r}")
        for batch in consumer.poll(timeout_ms=200).values():
            values.extend(record.value for record in batch)
    return values


def test_round_trip_keeps_keys_values_and_headers(
    kafka_clients: KafkaClients, new_topic: TopicFactory
) -> None:
    topic = new_topic()
    sent: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (b"model-a", b'{"score": 0.93}', [("trace-id", b"4bf92f35"), ("schema", b"v1")]),
        (None, b"no key", []),
        (b"model-b", b"", [("empty", b"")]),
        ("modèle-ü".encode(), bytes(range(256)), [("binary", b"\x00\xff\x00")]),
        (b"model-a", None, [("tombstone", b"1")]),
    ]
    producer = kafka_clients.producer()
    futures = [producer.send(topic, key=k, value=v, headers=h) for k, v, h in sent]
    producer.flush(timeout=DEADLINE_S)
    offsets = [future.get(timeout=DEADLINE_S).offset for future in futures]
    assert offsets == list(range(len(sent)))

    consumer = kafka_clients.consumer()
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    records = poll_records(consumer, len(sent))

    received = [(r.key, r.value, [(name, value) for name, value in r.headers]) for r in records]
    assert received == sent
    assert [r.offset for r in records] == offsets
    assert {(r.topic, r.partition) for r in records} == {(topic, 0)}


def test_transactions_commit_abort_and_offsets(
    kafka_clients: KafkaClients, kafka_admin: Any, new_topic: TopicFactory
) -> None:
    source, sink = new_topic(), new_topic()
    group = unique_name("tx-group")
    source_partition = TopicPartition(source, 0)

    feeder = kafka_clients.producer()
    for i in range(4):
        feeder.send(source, key=b"k", value=f"input-{i}".encode())
    feeder.flush(timeout=DEADLINE_S)

    # The consume side of consume-transform-produce: a group member that commits only through the producer.
    consumer = kafka_clients.consumer(group_id=group, isolation_level="read_committed")
    consumer.subscribe([source])
    inputs = poll_records(consumer, 4)
    assert [r.value for r in inputs] == [f"input-{i}".encode() for i in range(4)]
    membership = consumer.group_metadata()
    assert membership.group_id == group
    assert membership.generation_id >= 1
    assert membership.member_id

    producer = kafka_clients.producer(transactional_id=unique_name("tx"))
    producer.init_transactions()

    producer.begin_transaction()
    producer.send(sink, value=b"committed-1")
    producer.send(sink, value=b"committed-2")
    producer.send_offsets_to_transaction(
        {source_partition: OffsetAndMetadata(2, "first", -1)}, consumer.group_metadata()
    )
    producer.commit_transaction()

    producer.begin_transaction()
    producer.send(sink, value=b"aborted-1")
    producer.send(sink, value=b"aborted-2")
    producer.send_offsets_to_transaction(
        {source_partition: OffsetAndMetadata(4, "aborted", -1)}, consumer.group_metadata()
    )
    producer.flush(timeout=DEADLINE_S)  # the aborted records do reach the log before the abort
    producer.abort_transaction()

    producer.begin_transaction()
    producer.send(sink, value=b"committed-3")
    producer.send_offsets_to_transaction(
        {source_partition: OffsetAndMetadata(3, "third", -1)}, consumer.group_metadata()
    )
    producer.commit_transaction()

    # committed-3 comes after the aborted records, so reading up to it has passed over them.
    committed_view = read_until(kafka_clients, sink, b"committed-3", "read_committed")
    assert committed_view == [b"committed-1", b"committed-2", b"committed-3"]
    uncommitted_view = read_until(kafka_clients, sink, b"committed-3", "read_uncommitted")
    assert uncommitted_view == [b"committed-1", b"committed-2", b"aborted-1", b"aborted-2", b"committed-3"]

    # The group's offset is the one of the last committed transaction; the aborted one left no trace.
    group_offsets = kafka_admin.list_group_offsets({group: [source_partition]})[group]
    assert group_offsets[source_partition].offset == 3
    assert group_offsets[source_partition].metadata == "third"
    assert consumer.committed(source_partition) == 3


def test_compacted_topic_config(kafka_admin: Any, new_topic: TopicFactory) -> None:
    compacted = new_topic(config={"cleanup.policy": "compact"})
    plain = new_topic()
    described = kafka_admin.describe_configs(
        [
            ConfigResource(ConfigResourceType.TOPIC, compacted, ["cleanup.policy"]),
            ConfigResource(ConfigResourceType.TOPIC, plain, ["cleanup.policy"]),
        ],
        config_filter="all",
    )["topic"]
    assert described[compacted]["cleanup.policy"]["value"] == "compact"
    assert described[compacted]["cleanup.policy"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert described[plain]["cleanup.policy"]["value"] == "delete"


@dataclass
class GroupMember:
    """What one consumer's own polling thread last saw of its group membership."""

    consumer: Any
    partitions: frozenset[int] = frozenset()
    generation: int = -1
    state: str = MemberState.UNJOINED
    errors: list[BaseException] = field(default_factory=list)


def _poll_member(member: GroupMember, stop: threading.Event, lock: threading.Lock) -> None:
    # Only this thread touches member.consumer until it ends; the test reads the snapshot under the lock.
    try:
        while not stop.is_set():
            member.consumer.poll(timeout_ms=100)
            meta = member.consumer.group_metadata()
            partitions = frozenset(tp.partition for tp in member.consumer.assignment())
            with lock:
                member.partitions, member.generation = partitions, meta.generation_id
                member.state = meta.state
    except BaseException as exc:  # handed to the test thread, which fails with it
        member.errors.append(exc)


def test_two_member_group_splits_partitions(kafka_clients: KafkaClients, new_topic: TopicFactory) -> None:
    topic = new_topic(partitions=4)
    group = unique_name("split-group")
    consumers = [kafka_clients.consumer(group_id=group, heartbeat_interval_ms=500) for _ in range(2)]
    for consumer in consumers:
        # Each member knows the topic's partitions before it joins. Otherwise the leader may assign from
        # metadata without the topic (an empty first assignment), and kafka-python was seen to leave the
        # rejoin that follows waiting for good; the service restarts such a rebalance, this test does not.
        deadline = time.monotonic() + DEADLINE_S
        while consumer.partitions_for_topic(topic) != {0, 1, 2, 3}:
            assert time.monotonic() < deadline, f"a consumer never saw the 4 partitions of {topic}"
            time.sleep(0.1)
        consumer.subscribe([topic])
    members = [GroupMember(consumer) for consumer in consumers]
    stop, lock = threading.Event(), threading.Lock()
    threads = [threading.Thread(target=_poll_member, args=(m, stop, lock), daemon=True) for m in members]
    for thread in threads:
        thread.start()

    def snapshot() -> list[tuple[frozenset[int], int, str]]:
        with lock:
            return [(m.partitions, m.generation, m.state) for m in members]

    def settled(seen: list[tuple[frozenset[int], int, str]]) -> bool:
        (first, gen_1, state_1), (second, gen_2, state_2) = seen
        return (
            state_1 == state_2 == MemberState.STABLE
            and gen_1 == gen_2 >= 1
            and bool(first)
            and bool(second)
            and not first & second
            and first | second == {0, 1, 2, 3}
        )

    try:
        deadline = time.monotonic() + 60.0
        seen = snapshot()
        while not settled(seen):
            errors = [exc for m in members for exc in m.errors]
            assert not errors, f"a group member's poll failed: {errors!r}"
            assert time.monotonic() < deadline, f"the group did not settle on a split in 60s: {seen!r}"
            stop.wait(0.1)
            seen = snapshot()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=DEADLINE_S)
    assert not any(thread.is_alive() for thread in threads)
    (first, _, _), (second, _, _) = seen
    assert len(first) >= 1
    assert len(second) >= 1
    assert first.isdisjoint(second)
    assert first | second == {0, 1, 2, 3}


def test_kcat_produces_kafka_python_consumes(
    kafka_clients: KafkaClients, new_topic: TopicFactory, kcat_path: str
) -> None:
    topic = new_topic()
    lines = ["sensor-1:drift=0.12", "sensor-2:a:value:with:colons", "sensor-3:"]
    produced = subprocess.run(
        [kcat_path, "-b", kafka_clients.bootstrap_servers, "-t", topic, "-P", "-K:", "-H", "origin=kcat"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert produced.returncode == 0, f"kcat -P failed: {produced.stderr}"

    consumer = kafka_clients.consumer()
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    records = poll_records(consumer, len(lines))
    assert [(r.key, r.value) for r in records] == [
        (b"sensor-1", b"drift=0.12"),
        (b"sensor-2", b"a:value:with:colons"),
        (b"sensor-3", b""),
    ]
    assert all(list(r.headers) == [("origin", b"kcat")] for r in records)


def test_kafka_python_produces_kcat_consumes(
    kafka_clients: KafkaClients, new_topic: TopicFactory, kcat_path: str
) -> None:
    topic = new_topic()
    producer = kafka_clients.producer()
    producer.send(topic, key=b"model-a", value=b"score=0.5", headers=[("origin", b"kafka-python")])
    producer.send(topic, key=b"model-b", value="überall 2".encode())
    producer.flush(timeout=DEADLINE_S)  # acknowledged by the leader: below the end kcat -e stops at

    consumed = subprocess.run(
        [
            kcat_path,
            "-b",
            kafka_clients.bootstrap_servers,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k:%s|%h\n",
        ],
        capture_output=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert consumed.returncode == 0, f"kcat -C failed: {consumed.stderr.decode(errors='replace')}"
    assert consumed.stdout.decode().splitlines() == [
        "model-a:score=0.5|origin=kafka-python",
        "model-b:überall 2|",
    ]
