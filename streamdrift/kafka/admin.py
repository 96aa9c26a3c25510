"""kafka-python's KafkaAdminClient behind the ports' `Admin` (ports.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient

from streamdrift.kafka.errors import raise_if_refused, translated_errors
from streamdrift.ports import TopicSpec


class KafkaPythonAdmin:
    def __init__(self, admin: KafkaAdminClient) -> None:
        self._admin: Any = admin

    def partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        with translated_errors("describing topics"):
            described = self._admin.describe_topics(list(topics))
        for topic in described:
            raise_if_refused(topic.get("error_code", 0), f"describing topic {topic['name']}")
        return {
            topic["name"]: len(topic["partitions"])
            for topic in described
            if topic.get("error_code", 0) == 0 and topic.get("partitions")
        }

    def ensure_topics(self, wanted: Mapping[str, TopicSpec]) -> list[str]:
        """Create the missing ones; a topic created concurrently by another instance counts as present."""
        existing = set(self.partition_counts(list(wanted)))
        missing = {
            name: {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication_factor,
                **({"configs": spec.configs} if spec.configs else {}),
            }
            for name, spec in wanted.items()
            if name not in existing
        }
        if not missing:
            return []
        with translated_errors("creating topics"):
            self._admin.create_topics(missing, raise_errors=False, wait_for_metadata=True)
        return sorted(missing)

    def close(self) -> None:
        self._admin.close()
