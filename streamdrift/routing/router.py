"""`streamdrift alerts route --config ROUTES`: delivers the alerts topic to Alertmanager and webhooks.

A member of its own consumer group (`group_id`; more instances share the partitions), reading with the
subscriber API (read_committed, each alert_id once). Each alert goes to every route whose `match` takes it,
each route delivering in a thread of its own (worker.py). Offsets are committed only for alerts every
matching route has delivered (ledger.py), so a crash or restart delivers again what was in flight: at least
once, and receivers de-duplicate (Alertmanager by labels, webhooks by the X-Streamdrift-Alert-Id header).
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from types import FrameType

import structlog
from prometheus_client import CollectorRegistry

from streamdrift.config.loader import load_routes
from streamdrift.config.routes import RoutesConfig
from streamdrift.errors import ConfigError
from streamdrift.ports import TopicPartition
from streamdrift.routing.delivery import Send, sender
from streamdrift.routing.ledger import OffsetLedger
from streamdrift.routing.worker import Item, RouteMetrics, RouteWorker
from streamdrift.service.endpoints import serve
from streamdrift.service.logs import configure_logging
from streamdrift.subscriber import AlertSubscriber, Read

POLL_S = 0.5
COMMIT_EVERY_S = 1.0
STALLED_AFTER_S = 60.0  # /healthz: the reading loop has not come round for this long


class Router:
    """One set of routes at work: their workers, the offsets they hold, and the loop's heartbeat."""

    def __init__(self, workers: list[RouteWorker], ledger: OffsetLedger) -> None:
        self.workers, self.ledger = workers, ledger
        self.beat = time.monotonic()

    def revoked(self, partitions: set[TopicPartition]) -> None:
        self.ledger.forget(partitions)
        for worker in self.workers:
            worker.forget(partitions)

    def dispatch(self, reads: list[Read]) -> None:
        """Each record to the routes that take its alert; one that is not an alert, or an alert handed out
        before, is done at once."""
        for read in reads:
            alert = read.alert
            if alert is None:
                self.ledger.add(read.partition, read.offset, 0)
                continue
            takers = [
                w for w in self.workers if w.route.match.takes(alert.model_id, alert.signal, alert.level)
            ]
            self.ledger.add(read.partition, read.offset, len(takers))
            for worker in takers:
                worker.offer(Item(read.partition, read.offset, alert))

    def liveness(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.beat
        if idle > STALLED_AFTER_S:
            return False, f"the reading loop has not come round for {idle:.0f} s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        failing = [w.route.name for w in self.workers if w.failures]
        if failing:
            return False, f"receivers failing: {', '.join(failing)}"
        return True, "ok"


class Current:
    """What lasts across reloads: the group member's id, and the endpoints' probes, answered by the router
    in force."""

    def __init__(self, instance_id: str) -> None:
        self.router: Router | None = None
        self.instance_id = instance_id  # the process's group member, the same across reloads

    def liveness(self) -> tuple[bool, str]:
        return (True, "starting") if self.router is None else self.router.liveness()

    def readiness(self) -> tuple[bool, str]:
        return (False, "starting") if self.router is None else self.router.readiness()


def route_alerts(config_path: str) -> int:
    """Route until SIGTERM or SIGINT. SIGHUP reads the routes file again: a valid one replaces the routes
    (what was in flight is committed as far as it was delivered, and the rest is read again under the new
    routes); an invalid one is logged, and the routes in force stay."""
    config = load_routes(config_path)
    configure_logging(config.logging.level, config.logging.format)
    log = structlog.get_logger("streamdrift.router")
    registry = CollectorRegistry()
    metrics = RouteMetrics(registry)
    stop, reload = threading.Event(), threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        reload.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    senders = [sender(route) for route in config.routes]  # a receiver that cannot be made: exit 2
    current = Current(f"{config.group_id}-{uuid.uuid4().hex[:12]}")
    endpoints = serve(config.http, registry, current)  # the first file's http section stays in force
    try:
        while True:
            route_until(config, senders, metrics, current, stop, reload)
            if stop.is_set():
                break
            reload.clear()
            try:
                config, senders = reloaded(config_path)
            except ConfigError as exc:
                log.error("routes file not reloaded: the routes in force stay", problems=exc.problems)
                continue
            log.info("routes reloaded", routes=[route.name for route in config.routes])
    finally:
        if endpoints is not None:
            endpoints.close()
    log.info("stopped")
    return 0


def reloaded(config_path: str) -> tuple[RoutesConfig, list[Send]]:
    """The routes file read again, with its receivers made (`ConfigError` when either cannot be)."""
    config = load_routes(config_path)
    return config, [sender(route) for route in config.routes]


def route_until(
    config: RoutesConfig,
    senders: list[Send],
    metrics: RouteMetrics,
    current: Current,
    stop: threading.Event,
    reload: threading.Event,
) -> None:
    """Route with these routes until `stop` or `reload` is set; then commit what was delivered."""
    log = structlog.get_logger("streamdrift.router")
    ledger = OffsetLedger()
    workers = [
        RouteWorker(route, send, ledger, metrics) for route, send in zip(config.routes, senders, strict=True)
    ]
    router = current.router = Router(workers, ledger)
    subscriber = AlertSubscriber(
        config.kafka,
        config.alerts_topic,
        group_id=config.group_id,
        from_beginning=config.from_beginning,
        on_revoked=router.revoked,
        instance_id=current.instance_id,
    )
    for worker in workers:
        worker.start()
    log.info(
        "routing", topic=config.alerts_topic, group_id=config.group_id, routes=[r.name for r in config.routes]
    )
    committed_at = time.monotonic()
    paused = False
    try:
        while not stop.is_set() and not reload.is_set():
            router.beat = time.monotonic()
            full = [worker.route.name for worker in workers if worker.full()]
            if full:
                # Polls go on (the group keeps us) and nothing new is handed out; paused at every turn,
                # since a rebalance hands over partitions unpaused.
                subscriber.pause()
                if not paused:
                    log.warning("reading paused: routes with max_pending alerts waiting", routes=full)
                paused = True
            elif paused:
                subscriber.resume()
                log.info("reading resumed")
                paused = False
            router.dispatch(subscriber.read(POLL_S))
            if time.monotonic() - committed_at >= COMMIT_EVERY_S:
                subscriber.commit_offsets(ledger.to_commit())
                committed_at = time.monotonic()
        log.info("committing what was delivered", in_flight=ledger.in_flight())
        for worker in workers:
            worker.stop()
        subscriber.commit_offsets(ledger.to_commit())
    finally:
        subscriber.close()
