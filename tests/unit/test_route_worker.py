"""A route's worker (streamdrift/routing/worker.py) with a recording receiver: order, backoff after failures,
the rate limit, refusals passed over, and the ledger told once per alert. Times are only bounded from below
(a busy machine makes them longer, never shorter)."""

from __future__ import annotations

import itertools
import threading
import time

from prometheus_client import CollectorRegistry

from streamdrift.config.routes import Route
from streamdrift.core.alert import DriftAlert, RecordSource, alert_id
from streamdrift.ports import CommitOffset, TopicPartition
from streamdrift.routing.delivery import Attempt, Outcome
from streamdrift.routing.ledger import OffsetLedger
from streamdrift.routing.worker import Item, RouteMetrics, RouteWorker
from streamdrift.subscriber import Alert

TP = TopicPartition("alerts", 0)


def alert(offset: int) -> Alert:
    source = RecordSource(offset, "events", 0, 1_767_225_600_000 + offset)
    made = DriftAlert(
        alert_id=alert_id("m", "score", "drift", source), level="drift", model_id="m", model_version=None,
        signal="score", detector_type="adwin", detector_params={}, source=source, observations=1, stats={},
        event_time_ms=None, config_version="c" * 12,
    )  # fmt: skip
    return Alert.from_json(made.to_json())


class Receiver:
    """Answers from a script (then `DELIVERED`), noting when each attempt came."""

    def __init__(self, script: list[Outcome], expected_attempts: int) -> None:
        self.script = script
        self.attempts: list[tuple[float, int]] = []
        self.expected = expected_attempts
        self.done = threading.Event()

    def __call__(self, alert: Alert) -> Attempt:
        self.attempts.append((time.monotonic(), alert.source.offset))
        if len(self.attempts) >= self.expected:
            self.done.set()
        outcome = self.script.pop(0) if self.script else Outcome.DELIVERED
        return Attempt(outcome, "scripted")


def run(route: Route, receiver: Receiver, offsets: list[int]) -> tuple[OffsetLedger, CollectorRegistry]:
    ledger = OffsetLedger()
    registry = CollectorRegistry()
    worker = RouteWorker(route, receiver, ledger, RouteMetrics(registry))
    for offset in offsets:
        ledger.add(TP, offset, 1)
        worker.offer(Item(TP, offset, alert(offset)))
    worker.start()
    assert receiver.done.wait(30), receiver.attempts
    worker.stop()
    return ledger, registry


def test_failures_back_off_doubling_and_the_alerts_go_in_order_once_each() -> None:
    route = Route.model_validate(
        {"name": "r", "webhook": {"url": "http://h"}, "retry": {"initial_s": 0.2, "max_s": 0.3}}
    )
    receiver = Receiver([Outcome.RETRY, Outcome.RETRY, Outcome.RETRY, Outcome.REFUSED], expected_attempts=6)
    ledger, registry = run(route, receiver, [0, 1, 2])
    times = [at for at, _ in receiver.attempts]
    # Offset 0 fails three times and is refused at its fourth attempt: passed over.
    assert [offset for _, offset in receiver.attempts] == [0, 0, 0, 0, 1, 2]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.3 and gaps[2] >= 0.3  # 0.2, then doubled and capped at max_s
    assert ledger.to_commit() == {TP: CommitOffset(3, "")}
    counted = {
        name: registry.get_sample_value(f"streamdrift_route_{name}_total", {"route": "r"})
        for name in ("delivered", "refused", "failed_attempts")
    }
    assert counted == {"delivered": 2, "refused": 1, "failed_attempts": 3}


def test_the_rate_limit_spaces_the_deliveries() -> None:
    route = Route.model_validate({"name": "r", "webhook": {"url": "http://h"}, "per_minute": 300})
    receiver = Receiver([], expected_attempts=4)
    run(route, receiver, [0, 1, 2, 3])
    times = [at for at, _ in receiver.attempts]
    assert all(later - earlier >= 0.2 for earlier, later in itertools.pairwise(times))  # 60 / 300


def test_a_receiver_that_raises_is_tried_again_and_the_route_lives_on() -> None:
    route = Route.model_validate(
        {"name": "r", "webhook": {"url": "http://h"}, "retry": {"initial_s": 0.05, "max_s": 0.05}}
    )

    class Raising(Receiver):
        def __call__(self, alert: Alert) -> Attempt:
            answer = super().__call__(alert)
            if len(self.attempts) == 1:
                raise RuntimeError("a library failing its own way")
            return answer

    receiver = Raising([], expected_attempts=3)
    ledger, registry = run(route, receiver, [0, 1])
    assert [offset for _, offset in receiver.attempts] == [0, 0, 1]
    assert ledger.to_commit() == {TP: CommitOffset(2, "")}
    assert registry.get_sample_value("streamdrift_route_failed_attempts_total", {"route": "r"}) == 1
