"""Broker faults. Away mid-run, stopped or frozen: the service stays up, reports not ready, resumes, and loses
or duplicates nothing. A record batch damaged on disk: one line and exit 1, or skipped when asked.

All run on one private broker (tools/kafka/kafka.sh on free ports) so that stopping, freezing or damaging
it leaves the suite's broker alone. Each outage lands with work in flight (input read but not committed) and
more input arrives after it. No client of the test is open while the broker is stopped: kafka-python leaks
the sockets of failed connection attempts.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streamdrift.errors import UnreadableBatch
from streamdrift.ports import InRecord
from streamdrift.ports import TopicPartition as Partition
from streamdrift.service.fetching import FETCH_ATTEMPTS
from tests.conftest import KafkaClients, unique_name
from tests.integration.conftest import Service
from tests.integration.runs import (
    PacedInput,
    Run,
    assert_alerts_equal_offline,
    committed_total,
    offline,
    open_transaction,
    prepare_run,
    read_all,
    stream,
    wait_for,
)
from tests.integration.test_kafka_script import ScriptBroker
from tests.integration.test_transport_contract import make_transport

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

AWAY_S = 60


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptBroker]:
    broker = ScriptBroker(tmp_path_factory.mktemp("faults") / "kafka")
    broker.up()
    try:
        yield broker
    finally:
        broker.cleanup()


def produce(bootstrap: str, topic: str, events: list[tuple[str, bytes]]) -> None:
    clients = KafkaClients(bootstrap)
    try:
        producer = clients.producer(linger_ms=5)
        for model, value in events:
            producer.send(topic, key=model.encode(), value=value)
        producer.flush()
    finally:
        clients.close()


def start_mid_run(
    broker: ScriptBroker, services: Callable[[Path, str], Service], tmp_path: Path, name: str
) -> tuple[Run, Service, list[tuple[str, bytes]], PacedInput]:
    """A service that has started on input that is still arriving."""
    events = stream(models=6, per_model=10_000, seed=4)
    topic = unique_name(f"{name}-in")
    admin: Any = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True)
        run = prepare_run(broker.bootstrap, topic, tmp_path, name, snapshot_interval_ms=50)
        service = services(run.config_path, f"{name}-1")
        service.start()
        paced = PacedInput(broker.bootstrap, topic, events, per_s=4_000)
        wait_for(service, lambda: committed_total(admin, run.group) > 4_000, "progress before the fault")
        wait_for(
            service, lambda: any(e.get("event") == "ready" for e in service.log_events()), "ready logged"
        )
    finally:
        admin.close()
    return run, service, events, paced


def finish(
    broker: ScriptBroker,
    run: Run,
    service: Service,
    events: list[tuple[str, bytes]],
    sent: int,
    before_stop: Callable[[], None] = lambda: None,
) -> None:
    """More input after the fault; the service catches up (`before_stop` then looks at it), and its alerts
    equal the uninterrupted run's."""
    produce(broker.bootstrap, run.topic, events[sent:])
    admin: Any = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        wait_for(service, lambda: committed_total(admin, run.group) == len(events), "the service to catch up")
        wait_for(service, lambda: service.http_get("/readyz")[0] == 200, "/readyz to report ready again")
    finally:
        admin.close()
    before_stop()
    assert service.stop() == 0
    clients = KafkaClients(broker.bootstrap)
    try:
        assert_alerts_equal_offline(clients, run, at_least=10)
    finally:
        clients.close()
    readiness = [e["event"] for e in service.log_events() if e.get("event") in {"ready", "not ready"}]
    assert "not ready" in readiness, "the fault was not reported"
    assert readiness[-1] == "ready"


def probe_while_away(service: Service) -> list[int]:
    """/readyz every half second for the length of the fault; /healthz stays 200 and the process up."""
    readiness = []
    away_since = time.monotonic()
    while time.monotonic() - away_since < AWAY_S:  # the fault itself
        readiness.append(service.http_get("/readyz")[0])
        assert service.http_get("/healthz")[0] == 200
        assert service.process is not None and service.process.poll() is None, service.log_tail()
        time.sleep(0.5)  # probing interval
    return readiness


def in_flight(broker: ScriptBroker, run: Run, sent: int) -> bool:
    """Input written and not yet committed: work in hand at the fault."""
    admin: Any = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        return committed_total(admin, run.group) < sent
    finally:
        admin.close()


def test_broker_down_for_60_s_mid_run_loses_and_duplicates_nothing(
    private_broker: ScriptBroker, services: Callable[[Path, str], Service], tmp_path: Path
) -> None:
    run, service, events, paced = start_mid_run(private_broker, services, tmp_path, "outage")
    # Input in hand while it still arrives; then the broker goes down at once. (Looking again after the
    # producer stopped gave the service the time to commit all of it before the fault.)
    wait_for(service, lambda: in_flight(private_broker, run, paced.sent), "input written and not committed")
    sent = paced.stop()
    private_broker.down()
    assert sent < len(events)
    readiness = probe_while_away(service)
    assert 503 in readiness, "/readyz never reported the outage"
    private_broker.up()
    finish(private_broker, run, service, events, sent)


def test_broker_frozen_for_60_s_mid_transaction_loses_and_duplicates_nothing(
    private_broker: ScriptBroker, services: Callable[[Path, str], Service], tmp_path: Path
) -> None:
    """SIGSTOP: connections stay open and nothing answers, as in a network partition or a long pause."""
    run, service, events, paced = start_mid_run(private_broker, services, tmp_path, "frozen")
    outputs = [f"{run.tag}-alerts", f"{run.tag}-state"]
    wait_for(
        service,
        lambda: (
            open_transaction(private_broker.bootstrap, outputs) and in_flight(private_broker, run, paced.sent)
        ),
        "an open transaction with input in hand",
    )
    os.kill(private_broker.pid_in_file(), signal.SIGSTOP)  # input goes on arriving: the producer waits it out
    try:
        readiness = probe_while_away(service)
    finally:
        os.kill(private_broker.pid_in_file(), signal.SIGCONT)
    assert 503 in readiness, "/readyz never reported the frozen broker"
    assert paced.join() == len(events)
    slow: list[float] = []
    finish(
        private_broker, run, service, events, len(events),
        before_stop=lambda: slow.append(checkpoints_over(service, SLOW_CHECKPOINT_S)),
    )  # fmt: skip
    log = service.log_events()
    aborted = sum(e.get("transactions_aborted", 0) for e in log if e.get("event") == "stopped")
    # The transaction open at the freeze ended after it, either way the broker allows: rolled back, or its
    # commit waited the freeze out and went through (the group evicting the member only afterwards).
    assert aborted > 0 or slow[0] > 0, "no transaction was open across the freeze"


SLOW_CHECKPOINT_S = 10.0


def checkpoints_over(service: Service, seconds: float) -> float:
    """How many checkpoints took longer than `seconds` (a bucket bound of the service's histogram)."""
    status, body = service.http_get("/metrics")
    assert status == 200
    buckets = {
        sample.labels["le"]: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "streamdrift_checkpoint_seconds_bucket"
    }
    return buckets["+Inf"] - buckets[str(seconds)]


def damage_batch_holding(log_dir: Path, offset: int) -> tuple[int, int]:
    """Flip one byte inside the records of the on-disk batch holding `offset`, as a disk or a broker bug
    would; returns the batch's offsets [first, end). The broker serves the damaged bytes as they are."""
    segment = log_dir / f"{0:020d}.log"
    data = bytearray(segment.read_bytes())
    pos = 0
    while pos < len(data):
        base = int.from_bytes(data[pos : pos + 8], "big")
        length = int.from_bytes(data[pos + 8 : pos + 12], "big")
        last_delta = int.from_bytes(data[pos + 23 : pos + 27], "big")
        if base <= offset <= base + last_delta:
            at = pos + 12 + length - 5  # inside the last record's value
            with segment.open("r+b") as file:
                file.seek(at)
                file.write(bytes([data[at] ^ 0xFF]))
            return base, base + last_delta + 1
        pos += 12 + length
    raise AssertionError(f"no batch holds offset {offset} in {segment}")


def damaged_topic(broker: ScriptBroker, events: list[tuple[str, bytes]], at: int) -> tuple[str, int, int]:
    """A one-partition topic of `events` written in batches of 500, the batch holding offset `at` damaged:
    the topic, and the damaged batch's offsets [first, end)."""
    topic = unique_name("damaged-in")
    admin: Any = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        admin.close()
    for start in range(0, len(events), 500):  # several batches
        produce(broker.bootstrap, topic, events[start : start + 500])
    first, end = damage_batch_holding(broker.data_dir / "logs" / f"{topic}-0", at)
    return topic, first, end


class TakesWhatItIsGiven:
    def on_revoked(self, partitions: set[Partition]) -> None:
        pass

    def on_assigned(self, partitions: set[Partition]) -> None:
        pass

    def on_lost(self, partitions: set[Partition]) -> None:
        pass


def test_a_damaged_batch_once_passed_is_not_reported_again(
    private_broker: ScriptBroker, kafka_client: str
) -> None:
    """The service's reading of a damaged batch, many times over: fetched again (a seek back onto it), then
    a seek past it. Reading goes on from the batch's end each time; the damage is reported only when reading
    reaches it, never from a fetch made before the seek past it (librdkafka can still hand one out)."""
    events = stream(models=3, per_model=2_000, seed=32)
    topic, first, end = damaged_topic(private_broker, events, 1_500)
    tp = Partition(topic, 0)
    transport = make_transport(kafka_client, private_broker.bootstrap)
    group = unique_name("passing")
    consumer = transport.group_consumer(
        group_id=group, instance_id=f"{group}-1", max_poll_records=100, auto_offset_reset="earliest",
        session_timeout_ms=10_000, max_poll_interval_ms=60_000,
    )  # fmt: skip
    try:
        consumer.subscribe([topic], TakesWhatItIsGiven())
        for _ in range(10):
            read: list[InRecord] = []
            reports: list[UnreadableBatch] = []
            deadline = time.monotonic() + 60
            # As service/fetching.py reads it: fetched again, then passed.
            while len(reports) < FETCH_ATTEMPTS:
                assert time.monotonic() < deadline, "the damaged batch was not reported"
                try:
                    read += consumer.poll(0.2).get(tp, [])
                except UnreadableBatch as exc:
                    reports.append(exc)
                    consumer.seek(tp, exc.offset)
            assert {(exc.offset, exc.end) for exc in reports} == {(first, end)}
            assert read and read[-1].offset == first - 1
            consumer.seek(tp, end)
            after: list[InRecord] = []
            while not after or after[-1].offset < len(events) - 1:  # to the partition's end
                assert time.monotonic() < deadline, "the records after the damaged batch were not read"
                after += consumer.poll(0.2).get(tp, [])
            assert [r.offset for r in after] == list(range(end, len(events)))
            consumer.seek(tp, first - 200)
    finally:
        consumer.close()


def read_unchecked(clients: KafkaClients, topic: str) -> list[Any]:
    """Every record of a one-partition topic, CRCs unchecked: the damaged batch reads as whatever it holds."""
    consumer = clients.consumer(check_crcs=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    end = consumer.end_offsets([tp])[tp]
    records: list[Any] = []
    while consumer.position(tp) < end:
        records += consumer.poll(timeout_ms=500).get(tp, [])
    return records


def unversioned(alert: bytes) -> bytes:
    fields = orjson.loads(alert)
    del fields["config_version"]
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def test_a_damaged_batch_ends_the_run_with_one_line_and_is_skipped_when_asked(
    private_broker: ScriptBroker, services: Callable[[Path, str], Service], tmp_path: Path
) -> None:
    events = stream(models=3, per_model=2_000, seed=31)
    topic, first, end = damaged_topic(private_broker, events, 3_500)

    run = prepare_run(private_broker.bootstrap, topic, tmp_path, "damaged")
    service = services(run.config_path, "damaged-1")
    service.start()
    assert service.process is not None
    code = service.process.wait(timeout=120)
    last = service.log_path.read_text().splitlines()[-1]
    assert code == 1, service.log_tail()
    assert last.startswith(f"streamdrift: cannot read {topic} partition 0 at offset {first}: "), last
    assert f"offsets {first} to {end - 1}" in last and "fetched 3 times" in last
    assert "processing.skip_unreadable_batches: true" in last
    assert "Traceback" not in service.log_path.read_text()
    admin = KafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    try:
        assert committed_total(admin, run.group) == first, "the records before the damaged batch were done"
    finally:
        admin.close()

    # The operator's way past it: skip it into the dead-letter topic; everything else is processed.
    run.config_path.write_text(
        run.config_path.read_text().replace("processing:\n", "processing:\n  skip_unreadable_batches: true\n")
    )
    skipping = services(run.config_path, "damaged-1")
    skipping.start()
    admin = KafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    try:
        wait_for(skipping, lambda: committed_total(admin, run.group) == len(events), "the rest processed")
    finally:
        admin.close()
    assert skipping.stop() == 0
    clients = KafkaClients(private_broker.bootstrap)
    try:
        # The oracle reads the topic without CRC checks and leaves out the damaged batch's offsets.
        records = [r for r in read_unchecked(clients, topic) if not first <= r.offset < end]
        assert len(records) == len(events) - (end - first)
        expected, _ = offline(run.config, records)
        alerts = [r.value for r in read_all(clients, f"{run.tag}-alerts")]
        # The second run's file differs by the skip setting, so its alerts name another config version.
        assert len(expected) >= 3 and sorted(map(unversioned, alerts)) == sorted(map(unversioned, expected))
        dead = read_all(clients, f"{run.tag}-dead-letter")
    finally:
        clients.close()
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["streamdrift.error.kind"] == b"unreadable_batch"
    assert headers["streamdrift.source.offset"] == str(first).encode()
    assert headers["streamdrift.error.message"].startswith(f"offsets {first} to {end - 1} skipped".encode())
