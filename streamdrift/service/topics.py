"""The topics the service writes, created at start, co-partitioned with the topic models live on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from streamdrift.config.model import StreamdriftConfig
from streamdrift.errors import FatalServiceError
from streamdrift.ports import Admin, TopicSpec

# Compaction never touches the active segment: small segments let the cleaner keep the state topic near
# one snapshot per model, so a restore reads little more than the latest state.
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.2",
}


def create_topics(
    config: StreamdriftConfig, admin: Admin, stop: threading.Event, *, alive: Callable[[], None]
) -> None:
    """Create the alerts, dead-letter, state (and labels, repartition) topics that are missing, once every
    input topic exists; refuse topics whose partition counts break co-partitioning."""
    topics = config.topics
    counts = _input_partition_counts(config, admin, stop, alive)
    wanted: dict[str, TopicSpec] = {}
    if config.processing.repartition:
        # State is co-partitioned with the internal topic, which has the largest input's count.
        internal = config.repartition_topic()
        partitions = admin.partition_counts([internal]).get(internal) or max(counts.values())
        wanted[internal] = TopicSpec(partitions=partitions, replication_factor=topics.replication_factor)
        stateful = f"the repartition topic {internal}"
    else:
        if len(set(counts.values())) > 1:
            raise FatalServiceError(
                f"input topics have different partition counts ({counts}); the state topic is "
                "co-partitioned with the input, so they must all have the same count "
                "(or set processing.repartition: true)"
            )
        partitions = next(iter(counts.values()))
        stateful = "the input"
    existing = admin.partition_counts([topics.state]).get(topics.state)
    if existing is not None and existing != partitions:
        raise FatalServiceError(
            f"state topic {topics.state} has {existing} partitions but {stateful} has {partitions}; "
            "it must be co-partitioned: delete it (state restarts fresh) or name another topics.state"
        )
    if topics.labels is not None:
        labels = admin.partition_counts([topics.labels]).get(topics.labels)
        if labels is not None and labels != partitions:
            raise FatalServiceError(
                f"labels topic {topics.labels} has {labels} partitions but {stateful} has "
                f"{partitions}; labels meet their model's state only when both are co-partitioned "
                "(same partition count, keyed by model_id)"
            )
    spec = TopicSpec(partitions=partitions, replication_factor=topics.replication_factor)
    wanted[topics.alerts] = spec
    wanted[topics.dead_letter] = spec
    wanted[topics.state] = TopicSpec(
        partitions=partitions, replication_factor=topics.replication_factor, configs=STATE_TOPIC_CONFIG
    )
    if topics.labels is not None:
        wanted[topics.labels] = spec
    created = admin.ensure_topics(wanted)
    if created:
        structlog.get_logger("streamdrift.service").info(
            "created topics", topics=created, partitions=partitions
        )


def _input_partition_counts(
    config: StreamdriftConfig, admin: Admin, stop: threading.Event, alive: Callable[[], None]
) -> dict[str, int]:
    """Wait for every input topic to exist; the state topic's partition count comes from them."""
    inputs = config.topics.input
    last_log = 0.0
    while True:
        counts = admin.partition_counts(inputs)
        missing = [topic for topic in inputs if topic not in counts]
        if not missing:
            return counts
        if stop.is_set():
            raise FatalServiceError(f"stopped while waiting for input topics {missing}")
        alive()  # waiting for topics is alive, not stuck
        if time.monotonic() - last_log > 30:
            structlog.get_logger("streamdrift.service").warning(
                "waiting for input topics to exist", missing=missing
            )
            last_log = time.monotonic()
        stop.wait(1.0)
