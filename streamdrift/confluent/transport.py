"""The confluent-kafka transport (librdkafka): builds the ports' clients (ports.py) with one set of
connection settings."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from streamdrift.confluent.admin import ConfluentAdmin
from streamdrift.confluent.connection import ConnectionWatch, explain_construction
from streamdrift.confluent.errors import translate_exception
from streamdrift.confluent.group import STATISTICS_INTERVAL_MS, ConfluentGroupConsumer, Heartbeat
from streamdrift.confluent.producer import ConfluentProducer
from streamdrift.confluent.reader import ConfluentReader
from streamdrift.errors import FatalServiceError
from streamdrift.ports import ConnectionSettings

# The group's partition assignment: range (the default) gives partition p of co-partitioned topics to the
# same member, and revokes everything at a rebalance; cooperative-sticky moves only what must move.
ASSIGNORS = {"eager": "range", "cooperative": "cooperative-sticky"}
# librdkafka stops fetching a partition whose local queue holds queued.min.messages (100,000) and then waits
# fetch.queue.backoff.ms (1,000 ms by default) before fetching it again, however soon the queue drains: that
# capped a loop able to take 250k events/s at ~100k, waiting in `consume` for half its time (librdkafka
# issue 2879, for which the setting was made). At 100 ms the queue still holds events after the wait for a
# loop taking up to 1M events/s (docs/ARCHITECTURE.md §9).
FETCH_QUEUE_BACKOFF_MS = 100
LARGE_FETCHES = {"fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024}
CONNECT_POLL_S = 0.1

log = logging.getLogger("streamdrift.confluent")
T = TypeVar("T")


class ConfluentTransport:
    name = "confluent"

    def __init__(
        self, settings: ConnectionSettings, *, call_timeout_s: float, rebalance: str = "eager"
    ) -> None:
        if rebalance not in ASSIGNORS:
            raise ValueError(f"rebalance: {rebalance!r} is not one of {', '.join(ASSIGNORS)}")
        self.settings = settings
        self.call_timeout_s = call_timeout_s
        self.rebalance = rebalance
        self.watch = ConnectionWatch(settings)
        self._timeout_s = settings.request_timeout_ms / 1000
        servers = settings.bootstrap_servers
        self._servers = servers if isinstance(servers, str) else ",".join(servers)

    def _common(self) -> dict[str, Any]:
        """librdkafka's properties of every client; its log goes to Python's logging, its errors to the
        connection watch."""
        common: dict[str, Any] = {
            **self.settings.librdkafka(),
            "client.id": self.settings.client_id,
            "error_cb": self.watch.on_error,
            "logger": log,
        }
        if log.isEnabledFor(logging.DEBUG):  # `logging.level: debug`: connections and authentication too
            common["debug"] = "broker,security"
        return common

    def group_consumer(
        self,
        *,
        group_id: str,
        instance_id: str,
        max_poll_records: int,
        auto_offset_reset: str,
        session_timeout_ms: int,
        max_poll_interval_ms: int,
    ) -> ConfluentGroupConsumer:
        heartbeat = Heartbeat()
        config = {
            **self._consumer_config(auto_offset_reset),
            "group.id": group_id,
            # Static membership: a restarted replica takes its partitions back without a rebalance.
            "group.instance.id": instance_id,
            "session.timeout.ms": session_timeout_ms,
            # librdkafka refuses a poll interval shorter than the session timeout (kafka-python does not): a
            # member silent for the session timeout is evicted anyway.
            "max.poll.interval.ms": max(max_poll_interval_ms, session_timeout_ms),
            "partition.assignment.strategy": ASSIGNORS[self.rebalance],
            "statistics.interval.ms": STATISTICS_INTERVAL_MS,
            "stats_cb": heartbeat.on_statistics,
        }
        return ConfluentGroupConsumer(
            lambda: self._make(Consumer, config, "the consumer"), heartbeat,
            max_poll_records=max_poll_records, timeout_s=self._timeout_s,
            cooperative=self.rebalance == "cooperative", prober=self._prober,
        )  # fmt: skip

    def _prober(self) -> Consumer:
        """A consumer of its own, for finding where a damaged batch ends (damage.py)."""
        config = {**self._consumer_config("earliest"), "group.id": f"streamdrift-probe-{uuid.uuid4().hex}"}
        return self._make(Consumer, config, "a consumer")

    def reader(self, *, max_poll_records: int = 500, large_fetches: bool = False) -> ConfluentReader:
        config = {
            **self._consumer_config("earliest"),
            # librdkafka's consumer needs a group id; a reader never joins it nor commits under it.
            "group.id": f"streamdrift-reader-{uuid.uuid4().hex}",
            **(LARGE_FETCHES if large_fetches else {}),
        }
        consumer = self._make(Consumer, config, "the consumer")
        return ConfluentReader(consumer, max_poll_records=max_poll_records, timeout_s=self._timeout_s)

    def _consumer_config(self, auto_offset_reset: str) -> dict[str, Any]:
        return {
            **self._common(),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": auto_offset_reset,
            "enable.partition.eof": True,  # where each partition reaches its end: `read_to_end`
            "check.crcs": True,  # as kafka-python: a damaged batch is an error, never records
            "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        }

    def producer(
        self, *, transactional_id: str | None = None, transaction_timeout_ms: int | None = None
    ) -> ConfluentProducer:
        config: dict[str, Any] = {
            **self._common(),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            # The Java clients' (and kafka-python's) placement of keyed records: records of a key land on the
            # same partition whichever transport wrote them.
            "partitioner": "murmur2_random",
        }
        if transactional_id is not None:
            config["transactional.id"] = transactional_id
            if transaction_timeout_ms is not None:
                config["transaction.timeout.ms"] = transaction_timeout_ms
                # librdkafka wants no request to outlast the transaction.
                socket_timeout_ms = int(config.get("socket.timeout.ms", 60_000))
                config["socket.timeout.ms"] = min(socket_timeout_ms, transaction_timeout_ms)
        listeners = [self.watch.on_error]

        def on_error(error: KafkaError) -> None:
            for listener in listeners:
                listener(error)

        config["error_cb"] = on_error
        producer = ConfluentProducer(
            self._make(Producer, config, "the producer"),
            transactional=transactional_id is not None,
            call_timeout_s=self.call_timeout_s,
        )
        listeners.append(producer.on_error)
        return producer

    def _make(self, kind: Callable[[dict[str, Any]], T], config: dict[str, Any], what: str) -> T:
        """A client, or `FatalServiceError`: librdkafka refuses at once a configuration that cannot work."""
        try:
            return kind(config)
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            text = str(exc) if error is None else error.str()
            cause = explain_construction(text)
            if cause is None:
                raise FatalServiceError(f"connecting {what} to {self._servers}: {text}") from exc
            self.watch.cause = self.watch.cause or cause
            raise FatalServiceError(f"cannot connect to {self._servers}: {self.watch.cause}") from exc

    def connect(self) -> ConfluentAdmin:
        """The first connection, or `FatalServiceError` as soon as librdkafka reports a failure no retry can
        fix (see `ConnectionWatch`), instead of after the request timeout."""
        admin = self._make(AdminClient, self._common(), "the admin client")
        outcome: list[BaseException | None] = []

        def target() -> None:
            try:
                admin.list_topics(timeout=self._timeout_s)
                outcome.append(None)
            except BaseException as exc:  # handed to the caller below
                outcome.append(exc)

        worker = threading.Thread(target=target, name="confluent: connecting", daemon=True)
        worker.start()
        while worker.is_alive() and self.watch.cause is None:
            admin.poll(CONNECT_POLL_S)  # serves the error callback
        admin.poll(0)  # what was reported as the worker ended
        if outcome and outcome[0] is None:
            self.watch.connecting = False
            return ConfluentAdmin(admin, timeout_s=self._timeout_s)
        self.raise_if_misconfigured()  # the worker may still be waiting: it ends with its timeout
        failure = outcome[0] if outcome else None
        if isinstance(failure, KafkaException):
            raise translate_exception(f"connecting to {self._servers}", failure) from failure
        raise FatalServiceError(f"connecting to {self._servers}: {failure}")

    def raise_if_misconfigured(self) -> None:
        if self.watch.cause is not None:
            raise FatalServiceError(f"cannot connect to {self._servers}: {self.watch.cause}")
