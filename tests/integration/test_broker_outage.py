"""A broker outage mid-run: the service stays up, reports not ready, resumes, and loses or duplicates nothing.

It runs on a private broker (tools/kafka/kafka.sh on free ports) so that stopping it leaves the suite's broker
alone. No client of the test is open while the broker is down: kafka-python leaks the sockets of failed
connection attempts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient

from tests.conftest import KafkaClients, unique_name
from tests.integration.conftest import Service
from tests.integration.runs import (
    assert_alerts_equal_offline,
    committed_total,
    prepare_run,
    producing,
    stream,
    wait_until,
)
from tests.integration.test_kafka_script import ScriptBroker

OUTAGE_S = 60


def test_broker_down_for_60_s_mid_run_loses_and_duplicates_nothing(
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    broker = ScriptBroker(tmp_path / "kafka")
    broker.up()
    try:
        events = stream(models=6, per_model=10_000, seed=4)
        topic = unique_name("outage-in")
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True)
        run = prepare_run(broker.bootstrap, topic, tmp_path, "outage")
        service = services(run.config_path, "outage-1")
        service.start()
        clients = KafkaClients(broker.bootstrap)
        with producing(clients, topic, events, seconds=12.0):
            wait_until(lambda: committed_total(admin, run.group) > 10_000, "progress before the outage")
        clients.close()
        admin.close()
        wait_until(lambda: service.http_get("/readyz")[0] == 200, "/readyz to report ready")
        broker.down()  # mid-run: the service has work in hand and a transaction open
        down_since = time.monotonic()
        readiness = []
        while time.monotonic() - down_since < OUTAGE_S:  # the outage itself
            readiness.append(service.http_get("/readyz")[0])
            assert service.http_get("/healthz")[0] == 200
            time.sleep(0.5)  # probing interval
        assert service.process is not None and service.process.poll() is None, "the service exited"
        assert 503 in readiness, "/readyz never reported the outage"
        broker.up()

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            wait_until(lambda: committed_total(admin, run.group) == len(events), "the service to catch up")
            wait_until(lambda: service.http_get("/readyz")[0] == 200, "/readyz to report ready again")
        finally:
            admin.close()
        assert service.stop() == 0
        clients = KafkaClients(broker.bootstrap)
        try:
            assert_alerts_equal_offline(clients, run, at_least=10)
        finally:
            clients.close()
        readiness = [e["event"] for e in service.log_events() if e.get("event") in {"ready", "not ready"}]
        assert "not ready" in readiness, "the outage was not reported"
        assert readiness[-1] == "ready"
    finally:
        broker.cleanup()
