"""Rebalancing: the consumer's callbacks (ports.RebalanceHandler), and joining the group again when a
rebalance does not complete or the group moved on without this member.

The callbacks run inside the consumer's poll (kafka-python: on its network loop, where a blocking consumer
call fails), so the revocation checkpoint uses the producer only, while this member still belongs to the old
generation; at_least_once commits no offsets there. Partitions lost by eviction (a stall past
max_poll_interval_ms) cannot be committed: the interval is rolled back and everything restored.
"""

from __future__ import annotations

import threading
import time

import structlog

from streamdrift.errors import CheckpointRefused, FatalServiceError, Fenced, StreamdriftError
from streamdrift.ports import GroupConsumer, TopicPartition
from streamdrift.service.checkpoint import Checkpoint
from streamdrift.service.counters import Counters
from streamdrift.service.effects import Effects
from streamdrift.service.guarantees import Guarantee
from streamdrift.service.ledger import Ledger

REFUSED_FOR_AT_MOST_S = 120.0  # checkpoints refused in a row for longer than this: give up (exit non-zero)


class Rebalancing:
    def __init__(
        self,
        *,
        ledger: Ledger,
        checkpoint: Checkpoint,
        guarantee: Guarantee,
        effects: Effects,
        counters: Counters,
        lock: threading.RLock,
        commit_offsets_on_revoke: bool,
        stuck_after_s: float,
    ) -> None:
        self.ledger, self.checkpoint, self.guarantee = ledger, checkpoint, guarantee
        self.effects, self.counters, self.lock = effects, counters, lock
        self.commit_offsets_on_revoke = commit_offsets_on_revoke  # at_least_once: a consumer call, not here
        # Both clients have been seen to leave a rejoin waiting for good (kafka-python after a revocation,
        # librdkafka after its session expired while the broker was frozen); past this it joins afresh.
        self.stuck_after_s = stuck_after_s
        # When this member began waiting for an assignment (revoked, lost or rejoined; None: assigned).
        self.started_at: float | None = None
        # An error a callback met that must end the service; raised by the loop (the consumer swallows them).
        self.fatal: FatalServiceError | None = None
        self.consumer: GroupConsumer | None = None
        self.log = structlog.get_logger("streamdrift.service")

    # ---- ports.RebalanceHandler ------------------------------------------------------------------

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """A rebalance starts: finish the interval while this member still owns the partitions."""
        assert self.consumer is not None
        with self.lock:
            try:
                self.checkpoint.run(
                    self.consumer, commit_offsets=self.commit_offsets_on_revoke, all_snapshots=True
                )
            except StreamdriftError as exc:
                if isinstance(exc, FatalServiceError) and not (
                    isinstance(exc, Fenced) and self.guarantee.transaction_timed_out(time.monotonic())
                ):
                    self.fatal = exc
                self.log.warning("could not checkpoint on revocation; rolling back", error=str(exc))
                self.checkpoint.rollback()
            # Partitions not restored yet are no longer ours until the next assignment says so: restoring
            # them now would make blocking consumer calls in the middle of the rejoin.
            self.ledger.revoked(partitions)
            self.started_at = time.monotonic()
        self.log.info("partitions revoked", partitions=sorted(str(tp) for tp in partitions))

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        with self.lock:
            self.started_at = None
            actions = self.ledger.assigned(partitions)
            self.effects.apply(actions)
        self.log.info(
            "partitions assigned",
            partitions=sorted(str(tp) for tp in partitions),
            to_restore=len(actions.pause),
        )

    def on_lost(self, partitions: set[TopicPartition]) -> None:
        with self.lock:
            self.log.warning(
                "partitions lost (evicted from the group); rolling back", partitions=len(partitions)
            )
            self.checkpoint.rollback()
            self.ledger.lost(partitions)
            self.started_at = time.monotonic()  # an assignment is owed now, as after a revocation

    # ---- joining again ---------------------------------------------------------------------------

    def unstick(self, now: float) -> None:
        """Join the group afresh when no assignment has come for `stuck_after_s` since this member's
        partitions were revoked or lost, or since it last joined again."""
        started = self.started_at
        if started is None or now - started < self.stuck_after_s:
            return
        self.log.warning("no assignment has come; joining the group again", waited_s=round(now - started, 1))
        self.counters.totals["rebalances_restarted"] += 1
        assert self.consumer is not None
        with self.lock:
            self.consumer.rejoin()
            self.started_at = now

    def rejoin(self, refused: CheckpointRefused) -> None:
        """The group moved on without us (an eviction after a stall, a rebalance we missed): the interval
        was rolled back; join again and redo it from the last checkpoint."""
        now = time.monotonic()
        checkpoint = self.checkpoint
        if checkpoint.refused_since is None:
            checkpoint.refused_since = now
        elif now - checkpoint.refused_since > REFUSED_FOR_AT_MOST_S:
            raise FatalServiceError(
                f"checkpoints refused for {REFUSED_FOR_AT_MOST_S:.0f} s: {refused}"
            ) from refused
        self.counters.totals["checkpoint_failures"] += 1
        self.log.warning(
            "checkpoint refused; rejoining the group and redoing the interval", error=str(refused)
        )
        assert self.consumer is not None
        with self.lock:
            self.consumer.rejoin()
            # Models were dropped by the rollback; the next assignment restores them.
            self.ledger.left_group()
            self.started_at = now
