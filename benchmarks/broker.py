"""Topics on the benchmark's broker: create, fill, read, delete. The harness's only Kafka admin code."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import MemberToRemove
from kafka.structs import TopicPartition

from benchmarks.events import EventStream

CLIENT_ID = "streamdrift-bench"


class BenchError(Exception):
    """A measurement could not be completed (the table shows it as FAILED)."""


class Broker:
    """Admin operations; remembers the topics and groups it was told about so `cleanup` can delete them."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin: Any = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=CLIENT_ID)
        self.topics: set[str] = set()
        self.groups: set[str] = set()

    def create_topic(self, name: str, partitions: int, configs: dict[str, str] | None = None) -> None:
        self.topics.add(name)
        spec: dict[str, Any] = {"num_partitions": partitions, "replication_factor": 1}
        if configs:
            spec["configs"] = configs
        self.admin.create_topics({name: spec}, wait_for_metadata=True)

    def own(self, topics: Iterable[str] = (), groups: Iterable[str] = ()) -> None:
        """Topics and groups someone else (the service) creates, to delete at cleanup."""
        self.topics.update(topics)
        self.groups.update(groups)

    def existing(self, names: Iterable[str]) -> list[str]:
        described = self.admin.describe_topics(sorted(names))
        return [t["name"] for t in described if t.get("error_code", 0) == 0 and t.get("partitions")]

    def cleanup(self, topics: Iterable[str] | None = None) -> list[str]:
        """Delete the given (default: all remembered) topics and the remembered groups; returns problems."""
        problems: list[str] = []
        wanted = set(self.topics if topics is None else topics)
        try:
            present = self.existing(wanted) if wanted else []
            if present:
                self.admin.delete_topics(present, raise_errors=False)
            self.topics -= wanted
        except Exception as exc:  # cleanup reports, it never hides the measurement's own error
            problems.append(f"deleting topics {sorted(wanted)}: {exc}")
        if topics is None and self.groups:
            try:
                self._delete_groups(sorted(self.groups))
            except Exception as exc:
                problems.append(f"deleting groups {sorted(self.groups)}: {exc}")
            self.groups.clear()
        return problems

    def _delete_groups(self, groups: list[str]) -> None:
        """Static members (the service's group.instance.id) outlive their process by a session timeout:
        remove them first, then the groups and their committed offsets."""
        for group, description in self.admin.describe_groups(groups).items():
            static = [
                MemberToRemove(group_instance_id=member["group_instance_id"])
                for member in description.get("members", [])
                if member.get("group_instance_id")
            ]
            if static:
                self.admin.remove_group_members(group, static)
        self.admin.delete_groups(groups)

    def close(self) -> None:
        self.admin.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class FillStats:
    events: int
    value_bytes: int
    seconds: float

    @property
    def mean_value_bytes(self) -> float:
        return self.value_bytes / self.events if self.events else 0.0


def _producer(bootstrap: str, **extra: Any) -> Any:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        **extra,
    )


def _produce(
    producer: Any, topic: str, stream: EventStream, total: int, progress: Callable[[int], None] | None
) -> FillStats:
    failures: list[BaseException] = []
    started = time.monotonic()
    sent = value_bytes = 0
    for size in stream.batches(total):
        for key, value, partition in stream.batch(size):
            producer.send(topic, key=key, value=value, partition=partition).add_errback(failures.append)
            value_bytes += len(value)
        sent += size
        if progress is not None:
            progress(sent)
    producer.flush(timeout=300)
    if failures:
        raise BenchError(f"{len(failures)} of {total} events could not be produced: {failures[0]!r}")
    return FillStats(events=sent, value_bytes=value_bytes, seconds=time.monotonic() - started)


def fill_topic(
    bootstrap: str,
    topic: str,
    stream: EventStream,
    total: int,
    *,
    progress: Callable[[int], None] | None = None,
) -> FillStats:
    """Produce `total` events of `stream` to `topic` (uncompressed, acks=all); raises when any send failed."""
    producer = _producer(bootstrap)
    try:
        return _produce(producer, topic, stream, total, progress)
    finally:
        producer.close(timeout=30)


class HeldBack:
    """Events written inside one open transaction: read_committed readers see none of them until `release`.

    This is how a group of consumers can be started, settled and ready on a full topic before any of them
    reads a record of it.
    """

    def __init__(self, producer: Any, stats: FillStats) -> None:
        self.producer = producer
        self.stats = stats
        self.released_at: float | None = None

    def release(self) -> float:
        """Commit the transaction: everything becomes visible at once. Returns the wall-clock time."""
        self.producer.commit_transaction()
        self.released_at = time.time()
        return self.released_at

    def close(self) -> None:
        try:
            if self.released_at is None:
                self.producer.abort_transaction()
        finally:
            self.producer.close(timeout=30)


def fill_topic_held_back(bootstrap: str, topic: str, stream: EventStream, total: int) -> HeldBack:
    producer = _producer(bootstrap, transactional_id=f"{CLIENT_ID}-{topic}", transaction_timeout_ms=600_000)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        stats = _produce(producer, topic, stream, total, None)
    except BaseException:
        producer.close(timeout=5)
        raise
    return HeldBack(producer, stats)


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicContents:
    records: int
    value_bytes: int
    keys: int  # distinct keys
    latest_value_bytes: int  # the latest value of each key: what compaction keeps, what a restore uses
    seconds: float


def read_topic(bootstrap: str, topic: str, *, stall_s: float = 60.0) -> TopicContents:
    """Read a topic to its end (read_committed), keeping only sizes; raises when reading stalls."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=10_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    started = last_progress = time.monotonic()
    records = value_bytes = 0
    latest: dict[tuple[int, bytes | None], int] = {}
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=500)
            now = time.monotonic()
            if batch:
                last_progress = now
            elif now - last_progress > stall_s:
                raise BenchError(f"reading {topic} made no progress for {stall_s:.0f} s ({records} read)")
            for chunk in batch.values():
                for record in chunk:
                    size = len(record.value or b"")
                    records += 1
                    value_bytes += size
                    latest[(record.partition, record.key)] = size
    finally:
        consumer.close()
    return TopicContents(
        records=records,
        value_bytes=value_bytes,
        keys=len(latest),
        latest_value_bytes=sum(latest.values()),
        seconds=time.monotonic() - started,
    )
