"""The service against the real broker: River parity through Kafka, dead letters, shutdown, `alerts tail`.

Expected alert offsets always come from River run offline in the test on the same values. Every wait polls a
condition until a deadline; nothing sleeps in place of synchronisation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import TopicPartition
from river.drift import ADWIN, KSWIN, PageHinkley
from river.drift.binary import DDM

from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.replay import replay
from streamdrift.service.records import (
    DEAD_LETTER_MAX_VALUE_BYTES,
    ERROR_KIND,
    ERROR_MESSAGE,
    ORIGINAL_SIZE,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TOPIC,
)
from streamdrift.service.runner import DriftService
from streamdrift.transports import open_transport
from tests.conftest import KAFKA_CLIENT_ENV, KafkaClients, TopicFactory, unique_name
from tests.integration.test_subscriber import drift_alert
from tests.unit.test_detectors_parity import binary_stream, numeric_stream, run_river

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

DEADLINE_S = 60.0
STREAMDRIFT = str(Path(sys.executable).parent / "streamdrift")

Record = tuple[bytes | None, bytes | None]  # key, value


# ---- helpers ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Topics:
    input: str
    alerts: str
    dead_letter: str
    state: str
    group: str


def make_topics(new_topic: TopicFactory, input_config: dict[str, str] | None = None) -> Topics:
    return Topics(
        input=new_topic(1, input_config),
        alerts=new_topic(),
        dead_letter=new_topic(),
        state=new_topic(1, {"cleanup.policy": "compact"}),
        group=unique_name("group"),
    )


def config_text(
    bootstrap_servers: str,
    topics: Topics,
    *,
    guarantee: str = "exactly_once",
    extra: dict[str, Any] | None = None,
) -> str:
    document: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap_servers,
            "group_id": topics.group,
            "client": os.environ[KAFKA_CLIENT_ENV],
        },
        "topics": {
            "input": [topics.input],
            "alerts": topics.alerts,
            "dead_letter": topics.dead_letter,
            "state": topics.state,
        },
        "processing": {"guarantee": guarantee, "commit_interval_ms": 200},
        "http": {"port": 0},  # several services may run at once
        "logging": {"summary_interval_s": 60},
    }
    for section, values in (extra or {}).items():
        if isinstance(values, dict) and isinstance(document.get(section), dict):
            document[section] = {**document[section], **values}
        else:
            document[section] = values
    return yaml.safe_dump(document, sort_keys=False)


def produce(clients: KafkaClients, topic: str, records: Sequence[Record], **config: Any) -> None:
    producer = clients.producer(linger_ms=5, **config)
    futures = [producer.send(topic, key=key, value=value) for key, value in records]
    producer.flush(timeout=30)
    for future in futures:
        future.get(timeout=30)


def end_offset(clients: KafkaClients, topic: str) -> int:
    consumer = clients.consumer(group_id=None)
    partition = TopicPartition(topic, 0)
    offset: int = consumer.end_offsets([partition])[partition]
    return offset


def committed_offset(kafka_admin: Any, group: str, topic: str) -> int | None:
    partition = TopicPartition(topic, 0)
    committed = kafka_admin.list_group_offsets({group: [partition]})[group].get(partition)
    return None if committed is None or committed.offset < 0 else int(committed.offset)


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting until {what}")
        time.sleep(0.1)


def wait_committed(kafka_admin: Any, group: str, topic: str, offset: int, check: Callable[[], None]) -> None:
    """Poll the group's committed offset until it reaches `offset`; `check` raises if the service died."""

    def reached() -> bool:
        check()
        return committed_offset(kafka_admin, group, topic) == offset

    wait_until(reached, f"group {group} committed offset {offset} of {topic}")


def read_all(clients: KafkaClients, topic: str, isolation_level: str = "read_committed") -> list[Any]:
    """Every record of partition 0 of `topic` (visible at this isolation level) up to its end."""
    consumer = clients.consumer(group_id=None, isolation_level=isolation_level)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    end = consumer.end_offsets([partition])[partition]
    records: list[Any] = []
    deadline = time.monotonic() + DEADLINE_S
    while consumer.position(partition) < end:
        if time.monotonic() >= deadline:
            raise AssertionError(f"read {len(records)} records of {topic}, not up to offset {end}")
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    return records


@contextlib.contextmanager
def service_thread(config: StreamdriftConfig) -> Iterator[Callable[[], None]]:
    """Run DriftService in a thread; yields a `check` that raises the service's error if it stopped."""
    stop = threading.Event()
    service = DriftService(config, open_transport(config.kafka), stop=stop)
    failure: list[BaseException] = []

    def target() -> None:
        try:
            service.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="drift-service", daemon=True)
    thread.start()

    def check() -> None:
        if failure:
            raise AssertionError(f"the service failed: {failure[0]!r}") from failure[0]
        if not thread.is_alive():
            raise AssertionError("the service stopped before it was asked to")

    try:
        yield check
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the service did not stop within 30s"
    if failure:
        raise AssertionError(f"the service failed: {failure[0]!r}") from failure[0]


def headers_of(record: Any) -> dict[str, bytes]:
    return dict(record.headers or [])


def comparable(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert without the record timestamp, which only the broker assigns."""
    return {
        **{k: v for k, v in alert.items() if k != "detected_at"},
        "source": {k: v for k, v in alert["source"].items() if k != "timestamp_ms"},
    }


# ---- a. River parity through Kafka --------------------------------------------------------------------

PH_PARAMS: dict[str, Any] = {"threshold": 30.0, "min_instances": 300}
PARITY_RULES: dict[str, Any] = {
    "defaults": {
        "features": {"detector": {"type": "adwin"}},
        "missing": {"enabled": False},
        "prediction": {"enabled": False},
        "score": {"enabled": False},
        "error": {"enabled": False},
    },
    "models": [
        {"match": "ph-*", "features": {"*": {"detector": {"type": "page_hinkley", **PH_PARAMS}}}},
        {"match": "kswin-*", "features": {"*": {"detector": {"type": "kswin", "seed": 5}}}},
        {"match": "ddm-*", "error": {"enabled": True, "detector": {"type": "ddm"}}},
    ],
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParityModel:
    model_id: str
    river: Callable[[], Any]
    values: list[float]
    binary: bool

    def event(self, value: float) -> bytes:
        if self.binary:
            return orjson.dumps(
                {"model_id": self.model_id, "prediction": "a", "label": "b" if value else "a"}
            )
        return orjson.dumps({"model_id": self.model_id, "features": {"x": value}})


def parity_models() -> list[ParityModel]:
    return [
        ParityModel("adwin-1", ADWIN, numeric_stream(1), binary=False),
        ParityModel("ph-1", lambda: PageHinkley(**PH_PARAMS), numeric_stream(2), binary=False),
        ParityModel("kswin-1", lambda: KSWIN(seed=5), numeric_stream(3), binary=False),
        ParityModel("ddm-1", DDM, binary_stream(4), binary=True),
    ]


def interleave(models: Sequence[ParityModel]) -> list[tuple[str, bytes]]:
    """Round robin: value j of model k is record len(models) * j + k."""
    length = len(models[0].values)
    assert all(len(model.values) == length for model in models)
    return [(model.model_id, model.event(model.values[j])) for j in range(length) for model in models]


def expected_offsets(models: Sequence[ParityModel]) -> dict[tuple[str, str], list[int]]:
    """River offline, per model and level, mapped to the records' offsets in the interleaved topic."""
    expected: dict[tuple[str, str], list[int]] = {}
    for k, model in enumerate(models):
        run = run_river(model.river(), model.values)
        assert run.drifts, f"River detected nothing for {model.model_id}: the stream tests nothing"
        expected[(model.model_id, "drift")] = [len(models) * j + k for j in run.drifts]
        if model.binary:
            assert run.warnings, f"River's {model.model_id} never warned"
            expected[(model.model_id, "warning")] = [len(models) * j + k for j in run.warnings]
    return expected


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_alerts_through_kafka_equal_river_offline(
    guarantee: str,
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
) -> None:
    models = parity_models()
    records = interleave(models)
    expected = expected_offsets(models)
    topics = make_topics(new_topic)
    config = parse_config(config_text(bootstrap_servers, topics, guarantee=guarantee, extra=PARITY_RULES))
    produce(kafka_clients, topics.input, [(model_id.encode(), value) for model_id, value in records])
    end = end_offset(kafka_clients, topics.input)
    assert end == len(records)

    with service_thread(config) as check:
        wait_committed(kafka_admin, topics.group, topics.input, end, check)

    alerts = [orjson.loads(record.value) for record in read_all(kafka_clients, topics.alerts)]
    got: dict[tuple[str, str], list[int]] = {}
    for alert in alerts:
        got.setdefault((alert["model_id"], alert["level"]), []).append(alert["source"]["offset"])
    assert got == expected
    assert all(
        alert["source"]["topic"] == topics.input and alert["source"]["partition"] == 0 for alert in alerts
    )
    assert all(alert["source"]["timestamp_ms"] is not None for alert in alerts)

    # The same alerts, id for id and field for field, as the offline replay of the same values.
    offline = [
        alert.to_dict() for alert in replay(config, [value for _, value in records], topic=topics.input)
    ]
    assert [a["alert_id"] for a in alerts] == [a["alert_id"] for a in offline]
    assert [comparable(a) for a in alerts] == [comparable(a) for a in offline]
    assert read_all(kafka_clients, topics.dead_letter) == []


# ---- b. bad input -------------------------------------------------------------------------------------

BAD_INPUT_LIMITS = {"processing": {"limits": {"max_record_bytes": 2000, "max_json_depth": 8}}}

# (key, value, kind): every bad-input kind the service must route to the dead-letter topic.
BAD_RECORDS: list[tuple[bytes | None, bytes | None, str]] = [
    (b"m", b"{not json", "invalid_json"),
    (b"m", b'{"model_id": "m", "features": {"x": "\xff\xfe"}}', "invalid_utf8"),
    (b"m", b"", "empty"),
    (b"m", None, "empty"),  # a tombstone
    (b"m", b"[1, 2, 3]", "not_an_object"),
    (b"m", b'"just a string"', "not_an_object"),
    (None, b'{"features": {"x": 1.0}}', "missing_model_id"),
    (b"m", b'{"model_id": 42, "features": {"x": 1.0}}', "bad_model_id"),
    (b"m", b'{"model_id": "m", "features": [1.0, 2.0]}', "bad_features"),
    (b"m", b'{"model_id": "m", "features": {"x": 1.0}, "deep": ' + b"[" * 20 + b"]" * 20 + b"}", "too_deep"),
    (b"m", b'{"model_id": "m", "pad": "' + b"x" * 2500 + b'"}', "too_large"),
    (b"m", b'{"model_id": "m", "features": {"x": 1.0', "invalid_json"),  # truncated
    (b"m", b'{"model_id": "m", "features": {"x": 1.0}} trailing', "invalid_json"),
    (b"m", b'{"model_id": "m", "features": {"x": NaN}}', "invalid_json"),  # orjson rejects the NaN token
    (b"m", b'{"model_id": "m", "features": {"x": 1e999}}', "invalid_json"),  # orjson: "number is infinity"
    (b"m", b'{"model_id": "m", "prediction": [0.2, 0.8]}', "bad_field"),
]


def test_bad_input_goes_to_the_dead_letter_topic_and_detection_goes_on(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
) -> None:
    values = numeric_stream(9)
    drifts = run_river(ADWIN(), values).drifts
    assert drifts

    # Bad records spread over the stream, before and after the change; record headers must survive.
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    bad_at: dict[int, tuple[bytes | None, bytes | None, str]] = {}
    valid_offsets: list[int] = []
    every = len(values) // len(BAD_RECORDS)
    bad_iter = iter(BAD_RECORDS)
    for i, value in enumerate(values):
        if i % every == every // 2 and (bad := next(bad_iter, None)) is not None:
            bad_at[len(records)] = bad
            records.append((bad[0], bad[1], [("trace-id", f"t{len(records)}".encode())]))
        valid_offsets.append(len(records))
        records.append((b"m", orjson.dumps({"model_id": "m", "features": {"x": value}}), []))
    assert len(bad_at) == len(BAD_RECORDS)

    topics = make_topics(new_topic)
    config = parse_config(config_text(bootstrap_servers, topics, extra=BAD_INPUT_LIMITS))
    producer = kafka_clients.producer(linger_ms=5)
    futures = [producer.send(topics.input, key=k, value=v, headers=h) for k, v, h in records]
    producer.flush(timeout=30)
    assert [future.get(timeout=30).offset for future in futures] == list(range(len(records)))

    with service_thread(config) as check:
        wait_committed(kafka_admin, topics.group, topics.input, len(records), check)

    dead = read_all(kafka_clients, topics.dead_letter)
    assert [int(headers_of(r)[SOURCE_OFFSET]) for r in dead] == sorted(bad_at)
    for record in dead:
        offset = int(headers_of(record)[SOURCE_OFFSET])
        key, original, kind = bad_at[offset]
        headers = headers_of(record)
        assert (record.key, record.value) == (key, original), kind
        assert headers[ERROR_KIND] == kind.encode(), (offset, headers)
        assert headers[ERROR_MESSAGE], kind
        assert headers[SOURCE_TOPIC] == topics.input.encode()
        assert headers[SOURCE_PARTITION] == b"0"
        assert headers["trace-id"] == f"t{offset}".encode()  # the original headers come first
        assert record.headers[0] == ("trace-id", f"t{offset}".encode())
        assert ORIGINAL_SIZE not in headers
    messages = {int(headers_of(r)[SOURCE_OFFSET]): headers_of(r)[ERROR_MESSAGE].decode() for r in dead}
    nan_offset, huge_offset = sorted(bad_at)[-3:-1]
    assert b"NaN" in (bad_at[nan_offset][1] or b"")
    assert "unexpected character" in messages[nan_offset]
    assert b"1e999" in (bad_at[huge_offset][1] or b"")
    assert "number is infinity" in messages[huge_offset]
    assert messages[sorted(bad_at)[1]] == "the value is not valid UTF-8"

    alerts = [orjson.loads(record.value) for record in read_all(kafka_clients, topics.alerts)]
    assert [alert["source"]["offset"] for alert in alerts] == [valid_offsets[i] for i in drifts]
    assert {(alert["signal"], alert["level"]) for alert in alerts} == {("feature:x", "drift")}


def test_a_record_over_the_dead_letter_limit_is_truncated(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
) -> None:
    topics = make_topics(new_topic, {"max.message.bytes": str(3 * 1024 * 1024)})
    config = parse_config(config_text(bootstrap_servers, topics))
    assert config.processing.limits.max_record_bytes == 1_048_576
    huge = b'{"model_id": "m", "pad": "' + b"y" * (1_500_000 - 28) + b'"}'
    assert len(huge) == 1_500_000
    records: list[Record] = [
        (b"m", b'{"model_id": "m", "features": {"x": 1.0}}'),
        (b"m", huge),
        (b"m", b'{"model_id": "m", "features": {"x": 2.0}}'),
    ]
    produce(kafka_clients, topics.input, records, max_request_size=4 * 1024 * 1024)

    with service_thread(config) as check:
        wait_committed(kafka_admin, topics.group, topics.input, len(records), check)

    (dead,) = read_all(kafka_clients, topics.dead_letter)
    headers = headers_of(dead)
    assert headers[ERROR_KIND] == b"too_large"
    assert headers[SOURCE_OFFSET] == b"1"
    assert headers[ORIGINAL_SIZE] == str(len(huge)).encode()
    assert len(dead.value) == DEAD_LETTER_MAX_VALUE_BYTES < len(huge)
    assert dead.value == huge[:DEAD_LETTER_MAX_VALUE_BYTES]
    assert dead.key == b"m"


# ---- c. graceful shutdown of the process --------------------------------------------------------------


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"streamdrift exited with {self.process.returncode}:\n{self.log.read_text()}"
            )

    def terminate(self, timeout_s: float = 15.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"no exit within {timeout_s}s of SIGTERM:\n{self.log.read_text()}") from None


@contextlib.contextmanager
def service_process(config_path: Path, log: Path) -> Iterator[ServiceProcess]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [STREAMDRIFT, "run", "--config", str(config_path)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield ServiceProcess(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def dead_letter_seen(clients: KafkaClients, topic: str, source_offset: int) -> Callable[[], bool]:
    """True once a dead letter of `source_offset` is written, even inside a still open transaction."""
    consumer = clients.consumer(topic, group_id=None, isolation_level="read_uncommitted")
    seen: set[int] = set()

    def check() -> bool:
        for batch in consumer.poll(timeout_ms=100).values():
            seen.update(int(headers_of(record)[SOURCE_OFFSET]) for record in batch)
        return source_offset in seen

    return check


def test_sigterm_finishes_the_batch_and_commits(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    tmp_path: Path,
) -> None:
    """With a 60 s commit interval, only the shutdown checkpoint can commit within the test.

    Each phase ends with a bad record as a sentinel: its dead letter, visible to a read_uncommitted reader,
    shows the service has processed the whole phase (its transaction still open). Then SIGTERM: exit 0, and
    the group's offset is the end of the topic, and the phase's alerts are committed. The second phase
    restarts the service and checks it resumes at the committed offset, re-reading nothing.
    """
    topics = make_topics(new_topic)
    config_path = tmp_path / "streamdrift.yaml"
    extra = {"processing": {"commit_interval_ms": 60_000}, "logging": {"format": "json"}}
    config_path.write_text(config_text(bootstrap_servers, topics, extra=extra))
    config = parse_config(config_path.read_bytes())
    log = tmp_path / "streamdrift.log"
    sentinel = b"sentinel: not json"  # ends each phase; invalid_json

    phases = [("m1", numeric_stream(21)), ("m2", numeric_stream(22))]
    all_values: list[bytes] = []
    for phase, (model_id, values) in enumerate(phases):
        before = end_offset(kafka_clients, topics.input)
        events = [orjson.dumps({"model_id": model_id, "features": {"x": v}}) for v in values]
        produce(kafka_clients, topics.input, [*[(model_id.encode(), e) for e in events], (b"m", sentinel)])
        all_values.extend([*events, sentinel])
        end = end_offset(kafka_clients, topics.input)
        assert end == before + len(events) + 1

        processed = dead_letter_seen(kafka_clients, topics.dead_letter, end - 1)
        started = time.monotonic()
        with service_process(config_path, log) as service:

            def done(service: ServiceProcess = service, processed: Callable[[], bool] = processed) -> bool:
                service.check()
                return processed()

            wait_until(done, f"phase {phase}: the service processed offsets up to {end - 1}")
            # Nothing committed the phase yet: the interval is far off.
            assert committed_offset(kafka_admin, topics.group, topics.input) == (before or None)
            assert time.monotonic() - started < 50, "too slow for the 60 s commit interval to be out of play"
            assert service.terminate(timeout_s=15) == 0, log.read_text()
        assert committed_offset(kafka_admin, topics.group, topics.input) == end

    dead = read_all(kafka_clients, topics.dead_letter)
    assert [int(headers_of(r)[SOURCE_OFFSET]) for r in dead] == [len(phases[0][1]), len(all_values) - 1]
    alerts = [orjson.loads(record.value) for record in read_all(kafka_clients, topics.alerts)]
    # Each phase has its own model, so the alerts are those of one uninterrupted replay.
    expected = [alert.to_dict()["alert_id"] for alert in replay(config, all_values, topic=topics.input)]
    assert expected
    assert [alert["alert_id"] for alert in alerts] == expected
    assert {alert["model_id"] for alert in alerts} == {"m1", "m2"}
    for model_id, values in phases:
        first = 0 if model_id == "m1" else len(phases[0][1]) + 1
        river = [first + i for i in run_river(ADWIN(), values).drifts]
        assert [a["source"]["offset"] for a in alerts if a["model_id"] == model_id] == river
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines() if line.startswith(b"{")]
    assert [line["event"] for line in lines].count("stopping: finishing the batch and committing") == 2
    assert [line["event"] for line in lines].count("stopped") == 2


# ---- alerts tail ---------------------------------------------------------------------------------------


def test_alerts_tail_shows_the_services_alerts(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    tmp_path: Path,
) -> None:
    values = binary_stream(31)
    run = run_river(DDM(), values)
    assert (run.drifts, run.warnings) == ([1046], [237, 246, 1021, 1120])  # what the lines below show
    topics = make_topics(new_topic)
    extra = {"defaults": {"error": {"detector": {"type": "ddm"}}, "prediction": {"enabled": False}}}
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_text(bootstrap_servers, topics, extra=extra))
    config = parse_config(config_path.read_bytes())
    events = [orjson.dumps({"model_id": "m", "prediction": "a", "label": "b" if v else "a"}) for v in values]
    # Record times the alerts' detected_at shows: 2026-01-01T00:00:00.000Z plus the offset in milliseconds.
    producer = kafka_clients.producer(linger_ms=5)
    sent = [
        producer.send(topics.input, key=b"m", value=event, timestamp_ms=1_767_225_600_000 + offset)
        for offset, event in enumerate(events)
    ]
    producer.flush(timeout=30)
    for future in sent:
        future.get(timeout=30)

    with service_thread(config) as check:
        wait_committed(kafka_admin, topics.group, topics.input, len(events), check)
    alerts = [orjson.loads(record.value) for record in read_all(kafka_clients, topics.alerts)]
    assert [a["source"]["offset"] for a in alerts] == [237, 246, 1021, 1046, 1120]

    def tail(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STREAMDRIFT, "alerts", "tail", "--config", str(config_path), "--from-beginning", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    shown = tail("--max-alerts", "5")
    assert shown.returncode == 0, shown.stderr
    where = f"{topics.input}/0"
    assert shown.stdout.splitlines() == [
        f"2026-01-01T00:00:00.237Z  WARNING   m  error  ddm  {where}@237  after 238 obs",
        f"2026-01-01T00:00:00.246Z  WARNING   m  error  ddm  {where}@246  after 247 obs",
        f"2026-01-01T00:00:01.021Z  WARNING   m  error  ddm  {where}@1021  after 1022 obs",
        f"2026-01-01T00:00:01.046Z  DRIFT     m  error  ddm  {where}@1046  after 1047 obs",
        # Counted since the detector's last reset, the drift at 1046: offsets 1047 to 1120.
        f"2026-01-01T00:00:01.120Z  WARNING   m  error  ddm  {where}@1120  after 74 obs",
    ]

    as_json = tail("--json", "--max-alerts", str(len(alerts)))
    assert as_json.returncode == 0, as_json.stderr
    assert [orjson.loads(line) for line in as_json.stdout.splitlines()] == alerts


def test_alerts_tail_stops_at_max_alerts(
    bootstrap_servers: str, new_topic: TopicFactory, kafka_clients: KafkaClients, tmp_path: Path
) -> None:
    topics = make_topics(new_topic)
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_text(bootstrap_servers, topics))
    produce(kafka_clients, topics.alerts, [(b"m", drift_alert("m", offset)) for offset in range(5)])
    result = subprocess.run(
        [
            STREAMDRIFT,
            "alerts",
            "tail",
            "--config",
            str(config_path),
            "--from-beginning",
            "--max-alerts",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2, result.stdout
