"""The kafka-python transport: builds the ports' clients (ports.py) with one set of connection settings."""

from __future__ import annotations

import logging
import threading
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor

from streamdrift.errors import FatalServiceError
from streamdrift.kafka.admin import KafkaPythonAdmin
from streamdrift.kafka.batches import read_batches_in_one_pass
from streamdrift.kafka.connection import ConnectionWatch
from streamdrift.kafka.consumer import KafkaPythonConsumer
from streamdrift.kafka.errors import translated_errors
from streamdrift.kafka.producer import KafkaPythonProducer
from streamdrift.kafka.sockets import read_sockets_in_large_chunks
from streamdrift.ports import ConnectionSettings

ASSIGNORS = {"eager": "range", "cooperative": "cooperative-sticky"}
MAX_REQUEST_BYTES = 1_048_576  # kafka-python's default request size; the brokers' message.max.bytes


class KafkaPythonTransport:
    name = "kafka-python"

    def __init__(
        self, settings: ConnectionSettings, *, call_timeout_s: float, rebalance: str = "eager"
    ) -> None:
        self.settings = settings
        self.call_timeout_s = call_timeout_s
        self.rebalance = rebalance
        self.watch = ConnectionWatch(settings)
        logging.getLogger("kafka").addHandler(self.watch)
        read_sockets_in_large_chunks()
        self._common: dict[str, Any] = {**settings.security(), "client_id": settings.client_id}
        servers = settings.bootstrap_servers
        self._servers = servers if isinstance(servers, str) else ",".join(servers)

    def group_consumer(
        self,
        *,
        group_id: str,
        instance_id: str,
        max_poll_records: int,
        auto_offset_reset: str,
        session_timeout_ms: int,
        max_poll_interval_ms: int,
    ) -> KafkaPythonConsumer:
        assignor = CooperativeStickyAssignor if self.rebalance == "cooperative" else RangePartitionAssignor
        return self._consumer(
            cooperative=self.rebalance == "cooperative",
            group_id=group_id,
            # Static membership: a restarted replica takes its partitions back without a rebalance.
            group_instance_id=instance_id,
            max_poll_records=max_poll_records,
            auto_offset_reset=auto_offset_reset,
            session_timeout_ms=session_timeout_ms,
            max_poll_interval_ms=max_poll_interval_ms,
            partition_assignment_strategy=(assignor,),
        )

    def reader(self, *, max_poll_records: int = 500, large_fetches: bool = False) -> KafkaPythonConsumer:
        fetches: dict[str, Any] = (
            {"fetch_max_bytes": 64 * 1024 * 1024, "max_partition_fetch_bytes": 16 * 1024 * 1024}
            if large_fetches
            else {}
        )
        return self._consumer(group_id=None, max_poll_records=max_poll_records, **fetches)

    def _consumer(self, *, cooperative: bool = False, **overrides: Any) -> KafkaPythonConsumer:
        config: dict[str, Any] = {
            **self._common,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            "auto_offset_reset": "earliest",
            **overrides,
        }
        with translated_errors(f"connecting the consumer to {self._servers}"):
            consumer = KafkaConsumer(**config)
        read_batches_in_one_pass(consumer)
        return KafkaPythonConsumer(consumer, cooperative=cooperative)

    def producer(
        self, *, transactional_id: str | None = None, transaction_timeout_ms: int | None = None
    ) -> KafkaPythonProducer:
        config: dict[str, Any] = {
            **self._common, "acks": "all", "linger_ms": 5, "enable_idempotence": True,
            # Batches up to the largest request (librdkafka's default too): at kafka-python's 16 KiB a
            # snapshot record (~14 KiB with 19 signals) fills a batch alone, and each costs ~0.7 ms of CPU
            # instead of ~0.08 ms.
            "batch_size": MAX_REQUEST_BYTES, "max_request_size": MAX_REQUEST_BYTES,
        }  # fmt: skip
        if transactional_id is not None:
            # init_transactions gives up after max_block_ms, before `bounded` would abandon it.
            config.update(
                transactional_id=transactional_id,
                max_block_ms=self.settings.request_timeout_ms,
                **(
                    {}
                    if transaction_timeout_ms is None
                    else {"transaction_timeout_ms": transaction_timeout_ms}
                ),
            )
        with translated_errors(f"connecting the producer to {self._servers}"):
            producer = KafkaProducer(**config)
        if transactional_id is not None:
            _without_epoch_bump(producer)
        return KafkaPythonProducer(
            producer, transactional=transactional_id is not None, call_timeout_s=self.call_timeout_s
        )

    def admin(self) -> KafkaPythonAdmin:
        with translated_errors(f"connecting to {self._servers}"):
            return KafkaPythonAdmin(KafkaAdminClient(**self._common))

    def connect(self) -> KafkaPythonAdmin:
        """The first connection, or `FatalServiceError` as soon as kafka-python's log shows a failure no
        retry can fix (see `ConnectionWatch`), instead of after its bootstrap timeout."""
        outcome: list[tuple[bool, Any]] = []

        def target() -> None:
            try:
                outcome.append((True, self.admin()))
            except BaseException as exc:  # handed to the caller below
                outcome.append((False, exc))

        worker = threading.Thread(target=target, name="kafka: connecting", daemon=True)
        worker.start()
        while worker.is_alive() and self.watch.cause is None:
            worker.join(0.1)
        if outcome and outcome[0][0]:
            self.watch.connecting = False
            admin: KafkaPythonAdmin = outcome[0][1]
            return admin
        self.raise_if_misconfigured()  # the worker may still be retrying: it is abandoned with the process
        raise outcome[0][1]

    def raise_if_misconfigured(self) -> None:
        if self.watch.cause is not None:
            raise FatalServiceError(f"cannot connect to {self._servers}: {self.watch.cause}")


def _without_epoch_bump(producer: Any) -> None:
    """A write answered INVALID_PRODUCER_EPOCH (a newer instance with this transactional id initialised)
    is a fence, as the Java client takes it. kafka-python 3.0 instead bumps the epoch by itself (KIP-360,
    InitProducerId with the stale epoch) and carries on: the fenced instance goes on writing, its next
    call fails as "Cannot call send in state READY", and its rollback with a new producer fences the newer
    instance in turn (both then stop). Without the bump, kafka-python makes the error fatal; it names
    InvalidProducerEpochError and translates to `Fenced`. The other errors the bump was for (unknown
    producer id, out-of-order sequence) become fatal too, which the service answers by rolling back with a
    new producer: the same recovery, through the same path as a broker outage."""
    manager = producer._transaction_manager  # kafka-python has no public switch for it
    manager._supports_epoch_bump = lambda: False
