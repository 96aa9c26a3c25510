"""/healthz and /readyz: whether the processing loop turns, and whether this member is ready (read from the
HTTP thread; the loop writes what they read into `Counters`)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog

from streamdrift.ports import GroupConsumer, TopicPartition
from streamdrift.service.counters import Counters

HEARTBEAT_SILENCE_S = 10.0  # no heartbeat answered for this long (3 s interval): the broker is away
LOOP_BLOCKED_S = 5.0  # the loop stuck in one call this long (a broker outage, a stall): not ready


class Health:
    def __init__(self, counters: Counters, *, unhealthy_after_s: float) -> None:
        self.counters = counters
        # The loop may legitimately sit in one call this long: a bounded transactional call, a restore.
        self.unhealthy_after_s = unhealthy_after_s
        self.was_ready = False
        self.checked_at = 0.0
        self.log = structlog.get_logger("streamdrift.service")

    def readiness(self) -> tuple[bool, str]:
        """Ready (partitions assigned, every one restored, the broker answering, the loop not stuck in a
        call), or why not."""
        counters = self.counters
        if counters.partitions_waiting:
            return False, f"restoring the state of {counters.partitions_waiting} partitions"
        blocked = time.monotonic() - counters.loop_alive_at
        if blocked > LOOP_BLOCKED_S:
            return False, f"the processing loop has been waiting on the broker for {blocked:.0f} s"
        if not counters.broker_answering:
            return False, "the broker is not answering"
        if not counters.partitions_held:
            return False, "no partitions assigned"
        return True, "ok"

    def liveness(self) -> tuple[bool, str]:
        """The processing loop keeps turning."""
        silent = time.monotonic() - self.counters.loop_alive_at
        if silent > self.unhealthy_after_s:
            return False, f"the processing loop has not turned for {silent:.0f} s"
        return True, "ok"

    def check(self, now: float, consumer: GroupConsumer, *, held: int, waiting: int) -> None:
        """After each turn of the loop: the partitions held and waiting for a restore. Once a second: whether
        the broker answers (heartbeats answered), and a log line when readiness changes."""
        counters = self.counters
        counters.partitions_held, counters.partitions_waiting = held, waiting
        if now - self.checked_at < 1.0:
            return
        self.checked_at = now
        counters.broker_answering = (
            consumer.seconds_since_heartbeat() <= HEARTBEAT_SILENCE_S or not counters.partitions_held
        )
        ready, reason = self.readiness()
        if ready != self.was_ready:
            self.log.info("ready" if ready else "not ready", reason=reason)
            self.was_ready = ready

    def measure_lag(self, held: Iterable[TopicPartition], consumer: GroupConsumer) -> None:
        """Per held partition: records between what was read and the last known high watermark."""
        lag: dict[tuple[str, int], int] = {}
        positions = self.counters.positions
        for tp in held:
            highwater, position = consumer.highwater(tp), positions.get((tp.topic, tp.partition))
            if highwater is not None and position is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        self.counters.lag = lag
