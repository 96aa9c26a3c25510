"""librdkafka's admin client as the ports' `Admin`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamdrift.confluent.errors import AUTHORIZATION, refusal, translate, translate_exception
from streamdrift.errors import FatalServiceError
from streamdrift.ports import TopicSpec

METADATA_WAIT_S = 0.1


class ConfluentAdmin:
    def __init__(self, admin: AdminClient, *, timeout_s: float) -> None:
        self._admin = admin
        self._timeout_s = timeout_s

    def partition_counts(self, topics: Sequence[str]) -> dict[str, int]:
        """Missing topics are left out; a topic this principal may not describe is a refusal, not missing
        (nothing would ever change)."""
        if not topics:
            return {}
        self._admin.poll(0)  # the error callback, for what no retry fixes
        try:
            futures = self._admin.describe_topics(
                TopicCollection(list(topics)), request_timeout=self._timeout_s
            )
        except KafkaException as exc:
            raise translate_exception("describing topics", exc) from exc
        counts: dict[str, int] = {}
        for name, future in futures.items():
            error = _error_of(future, self._timeout_s)
            if error is None:
                counts[name] = len(future.result().partitions)
            elif error.code() in AUTHORIZATION:
                raise FatalServiceError(f"describing topic {name}: {refusal(error)}")
            elif error.code() not in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                raise translate("describing topics", error)
        return counts

    def ensure_topics(self, wanted: Mapping[str, TopicSpec]) -> list[str]:
        """Create the missing ones; a topic created concurrently by another instance counts as present.
        Returns the names created, once the cluster's metadata shows them."""
        existing = set(self.partition_counts(list(wanted)))
        missing = [
            NewTopic(
                name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                config=dict(spec.configs),
            )
            for name, spec in wanted.items()
            if name not in existing
        ]
        if not missing:
            return []
        try:
            futures = self._admin.create_topics(missing, request_timeout=self._timeout_s)
        except KafkaException as exc:
            raise translate_exception("creating topics", exc) from exc
        created: list[str] = []
        for name, future in futures.items():
            error = _error_of(future, self._timeout_s)
            if error is None:
                created.append(name)
            elif error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise translate(f"creating topic {name}", error)
        self._wait_for_metadata(created)
        return sorted(created)

    def _wait_for_metadata(self, topics: list[str]) -> None:
        deadline = time.monotonic() + self._timeout_s
        while topics and len(self.partition_counts(topics)) < len(topics) and time.monotonic() < deadline:
            time.sleep(METADATA_WAIT_S)

    def close(self) -> None:
        self._admin.poll(0)  # nothing to close: librdkafka destroys the client with its last reference


def _error_of(future: Future[object], timeout_s: float) -> KafkaError | None:
    """The KafkaError a future of the admin client failed with, or None when it succeeded."""
    try:
        future.result(timeout=timeout_s + 5)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError):
            return error
        return KafkaError(KafkaError._FAIL, str(exc))
    except TimeoutError:
        return KafkaError(KafkaError._TIMED_OUT, "no answer")
    return None
