"""Building kafka-python clients from the config, and translating their errors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata
from kafka import errors as kafka_errors
from kafka.structs import TopicPartition

from streamdrift.config.model import KafkaSettings
from streamdrift.errors import CheckpointRefused, FatalServiceError, Fenced, KafkaUnavailable


@contextlib.contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Re-raise kafka-python's errors as streamdrift's, classified by what the caller must do."""
    try:
        yield
    except (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError) as exc:
        raise Fenced(
            f"{action}: fenced by a newer instance with the same transactional id "
            "(give every replica its own processing.instance_id / STREAMDRIFT_INSTANCE_ID)"
        ) from exc
    except (
        kafka_errors.CommitFailedError,
        kafka_errors.IllegalGenerationError,
        kafka_errors.UnknownMemberIdError,
        kafka_errors.RebalanceInProgressError,
    ) as exc:
        raise CheckpointRefused(f"{action}: {exc}") from exc
    except (kafka_errors.KafkaConnectionError, kafka_errors.KafkaTimeoutError) as exc:
        raise KafkaUnavailable(f"{action}: the broker is unreachable ({type(exc).__name__})") from exc
    except kafka_errors.KafkaError as exc:
        if getattr(exc, "retriable", False):
            raise KafkaUnavailable(f"{action}: {exc}") from exc
        raise FatalServiceError(f"{action}: {exc}") from exc


class KafkaClients:
    """Creates the consumer, producer and admin client with the same connection settings."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._common: dict[str, Any] = settings.security()
        self._common["client_id"] = settings.client_id
        servers = settings.bootstrap_servers
        self._servers = servers if isinstance(servers, str) else ",".join(servers)

    def consumer(self, *, group_id: str | None, **overrides: Any) -> Any:
        config: dict[str, Any] = {
            **self._common,
            "group_id": group_id,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "auto_offset_reset": "earliest",
        }
        config.update(overrides)
        with translated_errors(f"connecting the consumer to {self._servers}"):
            return KafkaConsumer(**config)

    def producer(self, **overrides: Any) -> Any:
        config: dict[str, Any] = {**self._common, "acks": "all", "linger_ms": 5}
        config.update(overrides)
        with translated_errors(f"connecting the producer to {self._servers}"):
            return KafkaProducer(**config)

    def admin(self) -> Any:
        with translated_errors(f"connecting to {self._servers}"):
            return KafkaAdminClient(**self._common)


def bounded(action: str, timeout_s: float, call: Callable[[], Any]) -> Any:
    """Run a blocking kafka-python call with a deadline (its transactional calls wait without one).

    Past the deadline the call is abandoned in its thread and `KafkaUnavailable` is raised; the caller must
    then stop using the client it was calling.
    """
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name=f"kafka: {action}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        raise KafkaUnavailable(f"{action}: no answer within {timeout_s:.0f} s")
    succeeded, value = outcome[0]
    if succeeded:
        return value
    with translated_errors(action):
        raise value


def partition_counts(admin: Any, topics: list[str]) -> dict[str, int]:
    """Partition count of each topic that exists (missing topics are left out)."""
    with translated_errors("describing topics"):
        described = admin.describe_topics(topics)
    return {
        topic["name"]: len(topic["partitions"])
        for topic in described
        if topic.get("error_code", 0) == 0 and topic.get("partitions")
    }


def ensure_topics(admin: Any, wanted: dict[str, dict[str, Any]]) -> list[str]:
    """Create the topics in `wanted` (name -> {num_partitions, replication_factor, configs}) that are missing.

    Returns the names created. A topic created concurrently by another instance counts as present.
    """
    existing = set(partition_counts(admin, list(wanted)))
    missing = {name: spec for name, spec in wanted.items() if name not in existing}
    if not missing:
        return []
    with translated_errors("creating topics"):
        admin.create_topics(missing, raise_errors=False, wait_for_metadata=True)
    return sorted(missing)


def topic_partition(topic: str, partition: int) -> Any:
    return TopicPartition(topic, partition)


REPLAY_FROM_PREFIX = "streamdrift.replay_from="


def offsets_to_commit(
    pending: Mapping[TopicPartition, int], replay_from: Mapping[TopicPartition, int]
) -> dict[TopicPartition, Any]:
    """Offsets to commit, each carrying in its metadata where a restore must start reading again."""
    return {
        tp: OffsetAndMetadata(offset, f"{REPLAY_FROM_PREFIX}{replay_from.get(tp, offset)}", -1)
        for tp, offset in pending.items()
    }


def committed_position(consumer: Any, tp: TopicPartition) -> tuple[int, int | None] | None:
    """The committed offset of a partition and where a restore must read from (None: not recorded).

    None when nothing is committed.
    """
    with translated_errors("reading committed offsets"):
        committed = consumer.committed(tp, metadata=True)
    if committed is None or committed.offset is None or committed.offset < 0:
        return None
    metadata = committed.metadata or ""
    if not metadata.startswith(REPLAY_FROM_PREFIX):
        return committed.offset, None
    return committed.offset, min(committed.offset, int(metadata.removeprefix(REPLAY_FROM_PREFIX)))


def read_to_end(consumer: Any, tp: TopicPartition) -> bool:
    """Whether the consumer has fetched everything up to the partition's last known high watermark."""
    highwater = consumer.highwater(tp)
    if highwater is None:  # not fetched yet: unknown
        return False
    with translated_errors("reading a position"):
        position = consumer.position(tp, timeout_ms=0)
    return position is not None and position >= highwater


class RebalanceCallbacks(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards kafka-python's rebalance notifications. They run on the consumer's network loop."""

    def __init__(
        self,
        on_revoked: Callable[[set[TopicPartition]], None],
        on_assigned: Callable[[set[TopicPartition]], None],
        on_lost: Callable[[set[TopicPartition]], None],
    ) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned
        self._on_lost = on_lost

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_assigned(set(assigned))

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """Evicted from the group (e.g. a stall past max_poll_interval_ms): nothing can be committed."""
        self._on_lost(set(lost))


def seconds_since_heartbeat(consumer: Any) -> float:
    """How long ago the group coordinator last answered a heartbeat (inf before the first one)."""
    metrics = consumer.metrics() or {}
    age = metrics.get("consumer-coordinator-metrics", {}).get("last-heartbeat-seconds-ago")
    return float("inf") if age is None else float(age)


def rejoin_group(consumer: Any, topics: list[str], listener: RebalanceCallbacks) -> None:
    """Forget this member's group identity and join again (after an eviction the broker forgot it)."""
    consumer.unsubscribe()
    consumer.subscribe(topics, listener=listener)
