"""librdkafka's consumer as the ports' `GroupConsumer`: a static member of the group, read_committed, never
committing by itself.

librdkafka runs the rebalance callbacks inside `poll`, on the polling thread. The assignment takes effect
before the handler hears of it, so that the handler can pause and seek the partitions it was given; the
handler always receives the whole new assignment, under eager and cooperative rebalancing alike.

A static member whose session expired (the broker away or frozen past `session.timeout.ms`) can be fenced by
its own rejoin: librdkafka rejoins under a new member id while a request under the old one is still on its
way, the coordinator answers that one FENCED_INSTANCE_ID, and librdkafka makes the consumer unusable
(confluentinc/librdkafka#3437). The consumer is then replaced by a new one that joins again, as other
clients rejoin after such a fence; a second fence soon after is taken for what the error says, another
replica with this instance id, and ends the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as Theirs

from streamdrift.confluent.consumer import ConsumerBase, ours, theirs
from streamdrift.confluent.errors import translate, translated_errors
from streamdrift.errors import Fenced
from streamdrift.ports import Batch, CommitOffset, GroupMetadata, RebalanceHandler, TopicPartition

log = logging.getLogger("streamdrift.confluent")

STATISTICS_INTERVAL_MS = 1000
# librdkafka's clock in its statistics ("ts", microseconds) is the monotonic clock; further apart than this
# from Python's, it is not taken for it.
_CLOCKS_AGREE_S = 60.0
# Fenced again this soon after rejoining: another replica has this instance id (they would fence each other
# in turn for ever), not a stale request of this member's own.
FENCED_AGAIN_S = 600.0


class Heartbeat:
    """When the group coordinator last answered, from librdkafka's statistics (its `stats_cb`): librdkafka
    tells no heartbeat's age, but its statistics say whether this member is in the group ("up") and how long
    ago the coordinator's connection last received anything (heartbeat answers, every few seconds)."""

    def __init__(self) -> None:
        self.answered_at: float | None = None  # time.monotonic()

    def on_statistics(self, text: str) -> None:
        now = time.monotonic()
        try:
            stats = json.loads(text)
            if stats.get("cgrp", {}).get("state") != "up":
                return
            coordinator = stats.get("brokers", {}).get("GroupCoordinator", {})
            idle_us = coordinator.get("rxidle", -1)
            if coordinator.get("state") != "UP" or not isinstance(idle_us, int) or idle_us < 0:
                return
            taken_at = stats.get("ts", 0) / 1e6
        except (ValueError, AttributeError, TypeError):  # not the statistics this was written against
            return
        if not isinstance(taken_at, float) or not 0 <= now - taken_at <= _CLOCKS_AGREE_S:
            taken_at = now
        answered_at = taken_at - idle_us / 1e6
        if self.answered_at is None or answered_at > self.answered_at:
            self.answered_at = answered_at

    def seconds_since(self) -> float:
        return float("inf") if self.answered_at is None else max(0.0, time.monotonic() - self.answered_at)


class ConfluentGroupConsumer(ConsumerBase):
    def __init__(
        self,
        make_consumer: Callable[[], Consumer],
        heartbeat: Heartbeat,
        *,
        max_poll_records: int,
        timeout_s: float,
        cooperative: bool,
        prober: Callable[[], Consumer] | None = None,
    ) -> None:
        super().__init__(
            make_consumer(), max_poll_records=max_poll_records, timeout_s=timeout_s, cooperative=cooperative,
            prober=prober,
        )  # fmt: skip
        self._make_consumer = make_consumer  # the same configuration (and heartbeat) again, after a fence
        self._heartbeat = heartbeat
        self._topics: list[str] = []
        self._handler: RebalanceHandler | None = None
        self._closing = False
        self._rejoined_after_fence_at: float | None = None  # time.monotonic()
        self._rejoined_unassigned = False  # joined again, and no assignment has come since

    def poll(self, timeout_s: float) -> Batch:
        try:
            return super().poll(timeout_s)
        except Fenced as fence:
            last = self._rejoined_after_fence_at
            if not self._topics or (last is not None and time.monotonic() - last < FENCED_AGAIN_S):
                raise
            self._rejoin_after_fence(fence)
            return {}

    def _rejoin_after_fence(self, fence: Fenced) -> None:
        """Replace the consumer librdkafka made unusable; what this member held is lost (nothing of it can be
        committed any more), and the new consumer is assigned afresh."""
        log.warning("%s; taken for this member's own earlier session: rejoining with a new consumer", fence)
        self._rejoined_after_fence_at = time.monotonic()
        self._replace_consumer()

    def _replace_consumer(self) -> None:
        held: set[TopicPartition] = set()
        with contextlib.suppress(KafkaException, RuntimeError):
            held = ours(self._consumer.assignment())
        if held and self._handler is not None:
            self._handler.on_lost(held)
        self._closing = True
        try:
            with contextlib.suppress(KafkaException, RuntimeError):
                self._consumer.close()
        finally:
            self._closing = False
        self._targets.clear()
        self._next.clear()
        self._ends.clear()
        self._paused.clear()
        self._heard.clear()
        self._damaged = None
        self._rejoined_unassigned = False
        self._consumer = self._make_consumer()
        self._subscribe()

    def subscribe(self, topics: Sequence[str], handler: RebalanceHandler) -> None:
        self._topics, self._handler = list(topics), handler
        self._subscribe()

    def _subscribe(self) -> None:
        with translated_errors(f"subscribing to {', '.join(self._topics)}"):
            self._consumer.subscribe(
                self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )

    def rejoin(self) -> None:
        """Leave and subscribe again; when the last rejoin brought no assignment either, librdkafka's group
        state is not trusted any more (seen after its session expired while the broker was frozen: no join
        ever completed) and the consumer is replaced by a new one."""
        if self._rejoined_unassigned:
            log.warning("joining the group again brought no assignment: rejoining with a new consumer")
            self._replace_consumer()
            return
        self._rejoined_unassigned = True
        with translated_errors("leaving the group"):
            self._consumer.unsubscribe()
        self._subscribe()

    # ---- rebalance callbacks (inside poll) -------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[Theirs]) -> None:
        self._rejoined_unassigned = False
        with translated_errors("taking the assigned partitions"):
            if self._cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            if partitions:  # librdkafka keeps a partition's pause across assignments; a new one starts afresh
                consumer.resume(partitions)
        assigned = ours(partitions)
        now = time.monotonic()
        for tp in assigned:
            self._targets.pop(tp, None)
            self._next.pop(tp, None)
            self._ends.pop(tp, None)
            self._heard[tp] = now
        self._paused.difference_update(assigned)
        if self._handler is not None and not self._closing:
            self._handler.on_assigned(self.assignment())

    def _on_revoke(self, consumer: Consumer, partitions: list[Theirs]) -> None:
        try:
            if self._handler is not None and not self._closing:
                self._handler.on_revoked(ours(partitions))
        finally:
            self._let_go(consumer, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[Theirs]) -> None:
        """Evicted from the group (e.g. a stall past max_poll_interval_ms): nothing can be committed."""
        try:
            if self._handler is not None and not self._closing:
                self._handler.on_lost(ours(partitions))
        finally:
            self._let_go(consumer, partitions)

    def _let_go(self, consumer: Consumer, partitions: list[Theirs]) -> None:
        gone = ours(partitions)
        self._paused -= gone
        for tp in gone:
            self._targets.pop(tp, None)
            self._next.pop(tp, None)
            self._ends.pop(tp, None)
            self._heard.pop(tp, None)
        with translated_errors("giving up partitions"):
            if self._cooperative:
                consumer.incremental_unassign(partitions)
            else:
                consumer.unassign()

    # ---- offsets ---------------------------------------------------------------------------------

    def committed(self, partition: TopicPartition) -> CommitOffset | None:
        action = "reading committed offsets"
        with translated_errors(action):
            (found,) = self._consumer.committed([theirs(partition)], timeout=self._timeout_s)
        if found.error is not None:
            raise translate(action, found.error)
        if found.offset < 0:
            return None
        return CommitOffset(found.offset, found.metadata or "")

    def commit(self, offsets: Mapping[TopicPartition, CommitOffset]) -> None:
        if not offsets:
            return
        wanted = [Theirs(tp.topic, tp.partition, c.offset, c.metadata) for tp, c in offsets.items()]
        action = "committing offsets"
        with translated_errors(action):
            done = self._consumer.commit(offsets=wanted, asynchronous=False)
        for tp in done:
            if tp.error is not None:
                raise translate(action, tp.error)

    def group_metadata(self) -> GroupMetadata:
        with translated_errors("reading the group's generation"):
            return cast(GroupMetadata, self._consumer.consumer_group_metadata())

    def seconds_since_heartbeat(self) -> float:
        return self._heartbeat.seconds_since()

    def close(self) -> None:
        """Leaves without committing; the handler hears nothing of the partitions given up on the way."""
        self._closing = True
        super().close()
