"""The service itself stalls (SIGSTOP: a long GC pause, a starved container) with a transaction open, for
longer than its transaction timeout: the broker aborts the transaction and bumps the producer's epoch. With a
short group session the group has moved on without it too; with a long one only the transaction is gone. On
waking, whichever call meets that first (a send, the commit, a heartbeat: kafka-python reports it as a fence,
an illegal state or a refused commit), the service must not take it for another instance with its id: it
rolls back to its last checkpoint and goes on, exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import (
    PacedInput,
    assert_alerts_equal_offline,
    committed_total,
    open_transaction,
    prepare_run,
    stream,
    wait_for,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

TRANSACTION_TIMEOUT_MS = 3000
# The broker looks for timed-out transactions every 10 s (transaction.abort.timed.out.transaction.cleanup
# .interval.ms): a stall this long outlives the transaction for certain, and the 6 s session too.
STALL_S = 25
COMMIT_SETTLES_S = 2.0
# The log lines of the rollbacks that do not end in "rolling back to the last checkpoint".
OTHER_ROLLBACKS = (
    "checkpoint refused; rejoining the group and redoing the interval",
    "partitions lost (evicted from the group); rolling back",
)


def stays_open(bootstrap: str, outputs: list[str]) -> bool:
    """With the service stopped: a transaction is open and stays so. A commit the service sent just before it
    was stopped still completes on the broker, within milliseconds; a transaction still open after
    COMMIT_SETTLES_S is the stopped service's own."""
    settled_at = time.monotonic() + COMMIT_SETTLES_S
    while time.monotonic() < settled_at:
        if not open_transaction(bootstrap, outputs):
            return False
    return open_transaction(bootstrap, outputs)


@pytest.mark.parametrize("session_timeout_ms", [6_000, 60_000], ids=["group-moved-on", "transaction-only"])
def test_a_stall_past_the_transaction_timeout_is_rolled_back_not_fatal(
    session_timeout_ms: int,
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    events = stream(models=6, per_model=8_000, seed=21)
    run = prepare_run(
        bootstrap_servers, new_topic(partitions=2), tmp_path, "stall",
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS, snapshot_interval_ms=50,
        session_timeout_ms=session_timeout_ms,
    )  # fmt: skip
    assert run.config.processing.session_timeout_ms == session_timeout_ms
    service = services(run.config_path, "stall-1")
    service.start()
    paced = PacedInput(bootstrap_servers, run.topic, events, per_s=3_000)  # input arrives throughout
    try:
        wait_for(
            service, lambda: committed_total(kafka_admin, run.group) > 3_000, "progress before the stall"
        )
        outputs = [f"{run.tag}-alerts", f"{run.tag}-state"]
        assert service.process is not None

        def in_hand() -> bool:
            return open_transaction(bootstrap_servers, outputs) and (
                committed_total(kafka_admin, run.group) < paced.sent
            )

        for _attempt in range(50):  # stop it with a transaction open: checked while it is stopped
            wait_for(service, in_hand, "an open transaction with input in hand")
            service.process.send_signal(signal.SIGSTOP)
            if stays_open(bootstrap_servers, outputs):
                break
            service.process.send_signal(signal.SIGCONT)  # it committed just before: try again
        else:
            raise AssertionError("never stopped the service with a transaction open")
        try:
            time.sleep(STALL_S)  # the stall itself (a fault's length, not a wait for something)
            assert not open_transaction(bootstrap_servers, outputs), (
                "the broker did not abort the transaction"
            )
            assert paced.sent > committed_total(kafka_admin, run.group), "no input arrived during the stall"
        finally:
            os.kill(service.process.pid, signal.SIGCONT)
    finally:
        assert paced.join() == len(events)
    wait_for(
        service, lambda: committed_total(kafka_admin, run.group) == len(events), "the service to catch up"
    )
    assert service.process.poll() is None, service.log_tail()
    assert service.stop() == 0
    assert_alerts_equal_offline(kafka_clients, run, at_least=10)
    log = service.log_events()
    stopped = [e for e in log if e.get("event") == "stopped"][-1]
    assert stopped["transactions_aborted"] >= 1, "the stalled transaction was not rolled back"
    # Which call meets the aborted transaction first varies (a send, the commit, the group's heartbeat, or
    # with a short session librdkafka's report that the partitions were lost); each path rolls back, and the
    # line says which.
    rollbacks = [
        e
        for e in log
        if str(e.get("event")).endswith("rolling back to the last checkpoint")
        or e.get("event") in OTHER_ROLLBACKS
    ]
    assert rollbacks, "no rollback logged"
    assert not any(e.get("event") == "unexpected error" for e in log)
