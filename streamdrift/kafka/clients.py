"""Building kafka-python clients from the config, and translating their errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kafka_errors

from streamdrift.config.model import KafkaSettings
from streamdrift.errors import FatalServiceError, KafkaUnavailable


@contextlib.contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Re-raise kafka-python's errors as streamdrift's, classified by what the caller must do."""
    try:
        yield
    except (kafka_errors.ProducerFencedError, kafka_errors.InvalidProducerEpochError) as exc:
        raise FatalServiceError(
            f"{action}: fenced by a newer instance with the same transactional id"
        ) from exc
    except (kafka_errors.NoBrokersAvailable, kafka_errors.KafkaTimeoutError) as exc:
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

    def consumer(self, *, group_id: str | None, **overrides: Any) -> Any:
        config: dict[str, Any] = {
            **self._common,
            "group_id": group_id,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "auto_offset_reset": "earliest",
        }
        config.update(overrides)
        with translated_errors("connecting the consumer"):
            return KafkaConsumer(**config)

    def producer(self, **overrides: Any) -> Any:
        config: dict[str, Any] = {**self._common, "acks": "all", "linger_ms": 5}
        config.update(overrides)
        with translated_errors("connecting the producer"):
            return KafkaProducer(**config)

    def admin(self) -> Any:
        with translated_errors("connecting the admin client"):
            return KafkaAdminClient(**self._common)


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
