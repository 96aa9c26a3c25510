"""The ports: what the service needs from a Kafka client library, as typed protocols and plain values.

The service is written against these alone; each transport (an adapter package: `streamdrift.kafka` on
kafka-python, `streamdrift.confluent` on librdkafka) implements them. They live in a module of their own,
below both, so that adapters depend on the ports and never on the service (docs/ARCHITECTURE.md §1, §8).

Error contract, for every method: an adapter raises only streamdrift's errors (errors.py), classified by what
the caller must do — `KafkaUnavailable` (the broker is away or a transactional call failed: roll back, retry),
`CheckpointRefused` (the group moved on: rejoin), `Fenced` (another instance holds this id),
`FatalServiceError` (a refusal no retry fixes: one line, exit 1), `UnreadableBatch` (a damaged record batch).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

Headers = list[tuple[str, bytes]]


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}"


class InRecord(Protocol):
    """A record read from Kafka, as every adapter hands it out (kafka-python's ConsumerRecord is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...
    @property
    def timestamp(self) -> int: ...  # epoch milliseconds; -1 when the record has none
    @property
    def serialized_value_size(self) -> int: ...  # -1 for a null value


class FetchedRecord(NamedTuple):
    """An `InRecord` for adapters whose library has no record type with these fields. A tuple: one is made
    per record read, and a tuple is the cheapest thing to make (a frozen dataclass costs about three
    times as much)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] | None
    timestamp: int
    serialized_value_size: int


Batch = Mapping[TopicPartition, Sequence[InRecord]]


@dataclass(frozen=True, slots=True, kw_only=True)
class OutRecord:
    """A record the service writes: an alert, a dead letter, a snapshot, a repartitioned event."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int | None = None  # None: the partitioner chooses by key (murmur2, as Java clients do)
    timestamp_ms: int | None = None  # None: the producer's clock


class CommitOffset(NamedTuple):
    """A committed position: the next offset to read, and the metadata stored with it."""

    offset: int
    metadata: str


@dataclass(frozen=True, slots=True)
class Bound:
    """A position in a partition: an offset, or a time in epoch ms (the first record at or after it)."""

    offset: int | None = None
    time_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


class GroupMetadata(Protocol):
    """The consumer's group generation, opaque: handed from the consumer to the producer's transaction."""


class RebalanceHandler(Protocol):
    """Called by the consumer from inside `poll`; `assigned` always receives the whole new assignment, so
    eager and cooperative rebalancing look the same to the service."""

    def on_revoked(self, partitions: set[TopicPartition]) -> None: ...
    def on_assigned(self, partitions: set[TopicPartition]) -> None: ...
    def on_lost(self, partitions: set[TopicPartition]) -> None: ...


class Reader(Protocol):
    """A consumer without a group: reads assigned partitions (state restore, replay ranges, tail)."""

    def partitions_of(self, topic: str) -> list[int]: ...  # empty: no such topic
    def assign(self, partitions: Sequence[TopicPartition]) -> None: ...
    def beginning_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]: ...
    # read_committed: the last stable offset
    def end_offsets(
        self, partitions: Sequence[TopicPartition], timeout_s: float | None = None
    ) -> dict[TopicPartition, int]: ...
    def offset_at(self, partition: TopicPartition, bound: Bound) -> int: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def position(self, partition: TopicPartition, timeout_s: float | None = None) -> int: ...
    def poll(self, timeout_s: float) -> Batch: ...
    def close(self) -> None: ...


class GroupConsumer(Protocol):
    """The service's consumer: a member of the group (static membership, read_committed, no auto-commit)."""

    def subscribe(self, topics: Sequence[str], handler: RebalanceHandler) -> None: ...
    def rejoin(self) -> None: ...  # forget this member's group identity and join again
    def poll(self, timeout_s: float) -> Batch: ...
    def assignment(self) -> set[TopicPartition]: ...
    def pause(self, partitions: Collection[TopicPartition]) -> None: ...
    def resume(self, partitions: Collection[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def seek_to_beginning(self, partition: TopicPartition) -> None: ...
    def seek_to_end(self, partition: TopicPartition) -> None: ...
    def committed(self, partition: TopicPartition) -> CommitOffset | None: ...
    def commit(self, offsets: Mapping[TopicPartition, CommitOffset]) -> None: ...
    def group_metadata(self) -> GroupMetadata: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...  # None: not known yet
    # Whether every record the broker holds for the partition (up to its last stable offset) was handed out.
    def read_to_end(self, partition: TopicPartition) -> bool: ...
    def offset_at(self, partition: TopicPartition, bound: Bound) -> int: ...
    def seconds_since_heartbeat(self) -> float: ...  # inf before the first answered heartbeat
    def close(self) -> None: ...  # commits nothing


class Producer(Protocol):
    """An idempotent producer; transactional when made with a transactional id. Every blocking call returns
    or raises within the transport's call timeout (else `KafkaUnavailable`: abandon the producer)."""

    def init_transactions(self) -> None: ...
    def begin_transaction(self) -> None: ...
    def send(self, record: OutRecord) -> None: ...
    def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, CommitOffset], group: GroupMetadata
    ) -> None: ...
    def commit_transaction(self) -> None: ...
    def abort_transaction(self) -> None: ...
    # Waits for every send; `FatalServiceError` when one of them failed since the last flush.
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def abandon(self) -> None: ...  # close without waiting: the producer may be wedged


class Admin(Protocol):
    def partition_counts(self, topics: Sequence[str]) -> dict[str, int]: ...  # missing topics left out
    def ensure_topics(self, wanted: Mapping[str, TopicSpec]) -> list[str]: ...  # the names created
    def close(self) -> None: ...


class ConnectionSettings(Protocol):
    """The config's `kafka:` section, as the adapters read it (config/model.py KafkaSettings)."""

    @property
    def bootstrap_servers(self) -> str | list[str]: ...
    @property
    def client_id(self) -> str: ...
    @property
    def security_protocol(self) -> str: ...
    @property
    def sasl_mechanism(self) -> str | None: ...
    @property
    def sasl_plain_username(self) -> str | None: ...
    @property
    def request_timeout_ms(self) -> int: ...
    def security(self) -> dict[str, object]: ...  # kafka-python's keyword arguments (secrets included)
    def librdkafka(self) -> dict[str, str]: ...  # the same as librdkafka properties (secrets included)


class Transport(Protocol):
    """One client library, configured with the connection settings: makes the clients above."""

    name: str

    def group_consumer(
        self,
        *,
        group_id: str,
        instance_id: str,
        max_poll_records: int,
        auto_offset_reset: str,
        session_timeout_ms: int,
        max_poll_interval_ms: int,
    ) -> GroupConsumer: ...
    def reader(self, *, max_poll_records: int = 500, large_fetches: bool = False) -> Reader: ...
    def producer(
        self, *, transactional_id: str | None = None, transaction_timeout_ms: int | None = None
    ) -> Producer: ...
    # The first connection: `FatalServiceError` at once when it fails for a reason no retry can fix.
    def connect(self) -> Admin: ...
    def raise_if_misconfigured(self) -> None: ...
