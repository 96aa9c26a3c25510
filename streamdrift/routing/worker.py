"""A route's deliveries, in a thread of its own: its alerts in order, one at a time, each tried until its
receiver takes it (backing off `retry.initial_s`, doubling up to `retry.max_s`) or refuses it for good, at
most `per_minute` a minute. A receiver that is away holds only its own route: the others deliver on, and the
router stops reading the topic only when this route's `max_pending` alerts are waiting."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import NamedTuple

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from streamdrift.config.routes import Route
from streamdrift.ports import TopicPartition
from streamdrift.routing.delivery import Attempt, Outcome, Send
from streamdrift.routing.ledger import OffsetLedger
from streamdrift.subscriber import Alert


class Item(NamedTuple):
    partition: TopicPartition
    offset: int
    alert: Alert


class RouteMetrics:
    """The routes' figures, labelled by route name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter(
            "streamdrift_route_delivered", "Alerts a route's receiver took", ["route"], registry=registry
        )
        self.refused = Counter(
            "streamdrift_route_refused",
            "Alerts a route's receiver refused for good (a 4xx answer): logged and passed over",
            ["route"],
            registry=registry,
        )
        self.failed_attempts = Counter(
            "streamdrift_route_failed_attempts",
            "Delivery attempts that found the receiver away or busy (tried again later)",
            ["route"],
            registry=registry,
        )
        self.pending = Gauge(
            "streamdrift_route_pending", "Alerts waiting for a route", ["route"], registry=registry
        )
        self.retrying = Gauge(
            "streamdrift_route_retrying",
            "1 while a route's receiver is failing (its next attempt is backed off), else 0",
            ["route"],
            registry=registry,
        )


class RouteWorker:
    def __init__(self, route: Route, send: Send, ledger: OffsetLedger, metrics: RouteMetrics) -> None:
        self.route, self.send, self.ledger = route, send, ledger
        self.queue: deque[Item] = deque()
        self.changed = threading.Condition()
        self.stopping = False
        self.failures = 0  # attempts failed in a row
        self.next_at = 0.0  # monotonic time of the next attempt the rate limit allows
        self.log = structlog.get_logger("streamdrift.router").bind(route=route.name)
        self.delivered = metrics.delivered.labels(route.name)
        self.refused = metrics.refused.labels(route.name)
        self.failed_attempts = metrics.failed_attempts.labels(route.name)
        self.pending = metrics.pending.labels(route.name)
        self.retrying = metrics.retrying.labels(route.name)
        self.thread = threading.Thread(target=self._run, name=f"route {route.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def offer(self, item: Item) -> None:
        with self.changed:
            self.queue.append(item)
            self.pending.set(len(self.queue))
            self.changed.notify()

    def full(self) -> bool:
        return len(self.queue) >= self.route.max_pending

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Partitions taken away: their alerts are the next owner's to deliver."""
        with self.changed:
            self.queue = deque(item for item in self.queue if item.partition not in partitions)
            self.pending.set(len(self.queue))

    def stop(self) -> None:
        """Stop after the attempt under way; what is still waiting is delivered again by the next reader."""
        with self.changed:
            self.stopping = True
            self.changed.notify()
        self.thread.join(timeout=30)
        self.pending.set(0)
        self.retrying.set(0)

    def _wait(self, seconds: float) -> None:
        with self.changed:
            if not self.stopping:
                self.changed.wait(seconds)

    def _run(self) -> None:
        while True:
            with self.changed:
                while not self.queue and not self.stopping:
                    self.changed.wait()
                if self.stopping:
                    return
                item = self.queue[0]
            delay = self.next_at - time.monotonic()
            if delay > 0:
                self._wait(delay)
                continue
            try:
                attempt = self.send(item.alert)
            except Exception as exc:  # a receiver's library failing its own way: tried again, the route lives
                attempt = Attempt(Outcome.RETRY, f"unexpected {type(exc).__name__}: {exc}")
            if self.route.per_minute is not None:
                self.next_at = time.monotonic() + 60 / self.route.per_minute
            if attempt.outcome is Outcome.RETRY:
                self.failures += 1
                self.failed_attempts.inc()
                self.retrying.set(1)
                doublings = min(self.failures - 1, 40)  # a receiver away for days must not overflow the float
                backoff = min(self.route.retry.initial_s * 2**doublings, self.route.retry.max_s)
                self.log.warning(
                    "delivery failed; trying again", error=attempt.reason, alert_id=item.alert.alert_id,
                    attempts=self.failures, retry_in_s=round(backoff, 1),
                )  # fmt: skip
                self.next_at = max(self.next_at, time.monotonic() + backoff)
                continue
            if attempt.outcome is Outcome.REFUSED:
                self.refused.inc()
                self.log.error("the receiver refused the alert; passed over", error=attempt.reason,
                               alert_id=item.alert.alert_id)  # fmt: skip
            else:
                self.delivered.inc()
            if self.failures:
                self.log.info("delivering again", after_attempts=self.failures)
            self.failures = 0
            self.retrying.set(0)
            with self.changed:
                if self.queue and self.queue[0] is item:
                    self.queue.popleft()
                self.pending.set(len(self.queue))
            self.ledger.delivered(item.partition, item.offset)
