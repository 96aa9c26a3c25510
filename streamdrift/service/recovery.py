"""Recovering from the faults the service outlives (docs/ARCHITECTURE.md, "Faults"): the broker away, a
transactional call failing, the broker aborting a transaction open too long, the group moving on. Each rolls
the interval back (checkpoint.py); what the service must not outlive is raised to exit with one line."""

from __future__ import annotations

import threading
import time

import structlog

from streamdrift.errors import CheckpointRefused, Fenced, KafkaUnavailable
from streamdrift.ports import Transport
from streamdrift.service.checkpoint import Checkpoint
from streamdrift.service.counters import Counters
from streamdrift.service.guarantees import Guarantee
from streamdrift.service.rebalance import Rebalancing

RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)  # the loop's wait after its 1st, 2nd, 3rd, ... failure in a row


class Recovery:
    def __init__(
        self,
        *,
        transport: Transport,
        checkpoint: Checkpoint,
        guarantee: Guarantee,
        rebalancing: Rebalancing,
        counters: Counters,
        lock: threading.RLock,
    ) -> None:
        self.transport, self.checkpoint, self.guarantee = transport, checkpoint, guarantee
        self.rebalancing, self.counters, self.lock = rebalancing, counters, lock
        self.failures = 0  # in a row
        self.log = structlog.get_logger("streamdrift.service")

    def recover(self, exc: CheckpointRefused | KafkaUnavailable | Fenced) -> float:
        """Undo the open interval; raises what the service does not outlive. Returns how long to wait."""
        self._recover(exc)
        wait = RETRY_BACKOFF_S[min(self.failures, len(RETRY_BACKOFF_S) - 1)]
        self.failures += 1
        return wait

    def succeeded(self) -> None:
        self.failures = 0

    def _recover(self, exc: CheckpointRefused | KafkaUnavailable | Fenced) -> None:
        if isinstance(exc, CheckpointRefused):
            with self.lock:
                self.checkpoint.rollback()
            self.rebalancing.rejoin(exc)
            return
        if isinstance(exc, Fenced):
            if not self.guarantee.transaction_timed_out(time.monotonic()):
                raise exc  # another instance with this id: this one must stop
            # The broker ended our transaction itself (open past transaction_timeout_ms: a long stall, a long
            # broker pause), which fences the producer's epoch: roll back with a new producer.
            message = "the broker aborted the open transaction after processing.transaction_timeout_ms"
        else:
            # The broker is away, or a transactional call failed: processing resumes from the last checkpoint
            # once the broker answers again. Unless it refuses us for good (credentials, TLS).
            self.transport.raise_if_misconfigured()
            message = "broker unavailable or a transactional call failed"
        self.log.warning(f"{message}; rolling back to the last checkpoint", error=str(exc))
        self.counters.totals["checkpoint_failures"] += 1
        with self.lock:
            self.checkpoint.rollback()
