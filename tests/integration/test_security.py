"""The service over TLS and SASL (SCRAM): it works through a SASL_SSL listener, and a wrong password, an
untrusted CA, a wrong host name or a client key it cannot decrypt each end it within 30 s with one line
saying which, exit code 1. It cannot have fallen back to plaintext: the broker's plaintext listener would
have let it run. No secret (SASL password, the client key's password, the state key) appears in its output,
not even at debug level, nor in what `config validate` says. A broker killed during the service's first
SASL exchange is an outage, not rejected credentials: the service waits for it and then works.

The broker is shared by the module; the last test kills and restarts it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from tests.conftest import KAFKA_CLIENT_ENV, KafkaClients, unique_name
from tests.integration.conftest import STREAMDRIFT, Service
from tests.integration.runs import committed_total, read_all, stream, wait_until
from tests.integration.secure_broker import (
    CLIENT_KEY_PASSWORD,
    PASSWORD,
    USER,
    LatencyRelay,
    Pki,
    SecureBroker,
    make_pki,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

FAIL_WITHIN_S = 30.0
STATE_KEY = "test-state-key-0123456789abcdef"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecureBroker, Pki]]:
    base = tmp_path_factory.mktemp("secure")
    pki = make_pki(base / "pki")
    broker = SecureBroker(base / "kafka", pki)
    broker.up()
    try:
        broker.add_user(USER, PASSWORD)
        yield broker, pki
    finally:
        broker.down()


def secure_config(
    tmp_path: Path,
    broker: SecureBroker,
    tag: str,
    *,
    bootstrap: str,
    cafile: Path,
    password: str,
    kafka_lines: str = "",
    level: str = "info",
) -> Path:
    """`kafka_lines`: more settings of the kafka section, each line indented by two spaces."""
    password_file = tmp_path / f"{tag}.password"
    password_file.write_text(password + "\n")
    path = tmp_path / f"{tag}.yaml"
    path.write_text(
        f"""
kafka:
  bootstrap_servers: "{bootstrap}"
  client: "${{STREAMDRIFT_TEST_KAFKA_CLIENT}}"
  group_id: "{tag}-group"
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_plain_username: {USER}
  sasl_plain_password_file: "{password_file}"
  ssl_cafile: "{cafile}"
{kafka_lines}topics:
  input: ["{tag}-in"]
  alerts: "{tag}-alerts"
  dead_letter: "{tag}-dead-letter"
  state: "{tag}-state"
processing: {{commit_interval_ms: 100}}
http: {{enabled: false}}
logging: {{level: {level}, summary_interval_s: 1}}
"""
    )
    return path


def client_key_lines(pki: Pki, key_password: str) -> str:
    return (
        f'  ssl_certfile: "{pki.client_cert}"\n  ssl_keyfile: "{pki.client_key}"\n'
        f'  ssl_password: "{key_password}"\n'
    )


def create_input(broker: SecureBroker, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        admin.close()


def test_the_service_works_over_sasl_ssl_and_never_shows_the_password(
    secure: tuple[SecureBroker, Pki], services: Callable[[Path, str], Service], tmp_path: Path
) -> None:
    broker, pki = secure
    tag = unique_name("tls")
    config = secure_config(
        tmp_path, broker, tag, bootstrap=broker.secure_bootstrap, cafile=pki.ca, password=PASSWORD
    )
    create_input(broker, f"{tag}-in")
    events = stream(models=3, per_model=1500, seed=2)
    clients = KafkaClients(broker.bootstrap)  # the test writes through the plaintext listener
    producer = clients.producer()
    for model, value in events:
        producer.send(f"{tag}-in", key=model.encode(), value=value)
    producer.flush()

    service = services(config, "tls-1")
    service.start()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        wait_until(lambda: committed_total(admin, f"{tag}-group") == len(events), "the service to catch up")
    finally:
        admin.close()
    assert service.stop() == 0
    assert read_all(clients, f"{tag}-alerts"), "alerts must have come out through the secure listener"
    clients.close()
    assert PASSWORD not in service.log_path.read_text()
    validated = subprocess.run(
        [STREAMDRIFT, "config", "validate", str(config)], capture_output=True, text=True, check=False
    )
    assert (validated.returncode, validated.stdout) == (0, "OK\n")
    assert PASSWORD not in validated.stdout + validated.stderr


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong password", "rejected the credentials of user 'streamdrift' (SCRAM-SHA-512)"),
        ("untrusted CA", "TLS: the broker's certificate is not trusted"),
        ("wrong host name", "TLS: the broker's certificate does not name the host connected to"),
        ("wrong client key password", "TLS: cannot load the client certificate and key"),
    ],
)
def test_a_bad_credential_or_certificate_ends_the_service_quickly_with_one_clear_line(
    secure: tuple[SecureBroker, Pki], tmp_path: Path, case: str, expected: str
) -> None:
    broker, pki = secure
    tag = unique_name("badtls")
    settings: dict[str, Any] = {
        "bootstrap": broker.secure_bootstrap,
        "cafile": pki.ca,
        "password": "not-" + PASSWORD[::-1],
    }
    if case != "wrong password":
        settings["password"] = PASSWORD
    if case == "untrusted CA":
        settings["cafile"] = pki.other_ca
    if case == "wrong host name":
        settings["bootstrap"] = f"127.0.0.1:{broker.secure_port}"
    key_password = "not-" + CLIENT_KEY_PASSWORD[::-1]
    if case == "wrong client key password":
        settings["kafka_lines"] = client_key_lines(pki, key_password)
    config = secure_config(tmp_path, broker, tag, **settings)
    create_input(broker, f"{tag}-in")
    started = time.monotonic()
    finished = subprocess.run(
        [STREAMDRIFT, "run", "--config", str(config)],
        capture_output=True, text=True, timeout=FAIL_WITHIN_S + 30, check=False,
        env={
            "STREAMDRIFT_STATE_KEY": STATE_KEY, "PATH": str(Path(sys.executable).parent),
            KAFKA_CLIENT_ENV: os.environ[KAFKA_CLIENT_ENV],
        },
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert finished.returncode == 1, finished.stderr
    assert elapsed < FAIL_WITHIN_S, f"took {elapsed:.1f} s: {finished.stderr[-2000:]}"
    failure_lines = [line for line in finished.stderr.splitlines() if line.startswith("streamdrift: ")]
    assert len(failure_lines) == 1, finished.stderr
    assert expected in failure_lines[0], failure_lines[0]
    assert PASSWORD not in finished.stdout + finished.stderr
    assert settings["password"] not in finished.stdout + finished.stderr
    assert key_password not in finished.stdout + finished.stderr


STATE_KEY_SECRET = "state-key-4f1c9a7e2b-never-logged"
KEY_PASSWORD_VARIABLE = "STREAMDRIFT_TLS_KEY_PASSWORD"


@dataclass(frozen=True)
class ClientLines:
    """What a client library logs, shown by the service only at debug level (patterns): a connection's
    ApiVersions exchange has worked (it comes before the SASL exchange), a connection is ready, and a
    connection was lost during the SASL exchange."""

    api_versions_done: str
    connected: str
    lost_during_sasl: str


CLIENT_LINES = {
    "kafka-python": ClientLines(
        api_versions_done=re.escape("Broker version identified as"),
        connected=re.escape("(connected)>: Connected"),
        lost_during_sasl=re.escape(
            "broker_version=(4, 3) (disconnected)>: Connection lost: "
            "KafkaConnectionError: socket disconnected"
        ),
    ),
    "confluent": ClientLines(  # librdkafka's broker states, with `debug: broker,security`
        api_versions_done=re.escape("Broker changed state APIVERSION_QUERY -> AUTH_HANDSHAKE"),
        connected=re.escape("Broker changed state AUTH_REQ -> UP"),
        lost_during_sasl=r"Broker changed state AUTH_(HANDSHAKE|REQ) -> DOWN",
    ),
}


def produce_events(broker: SecureBroker, topic: str, events: list[tuple[str, bytes]]) -> None:
    clients = KafkaClients(broker.bootstrap)  # the test writes through the plaintext listener
    try:
        producer = clients.producer()
        for model, value in events:
            producer.send(topic, key=model.encode(), value=value)
        producer.flush()
    finally:
        clients.close()


def wait_until_caught_up(broker: SecureBroker, service: Service, group: str, total: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)

    def caught_up() -> bool:
        assert service.process is not None
        if service.process.poll() is not None:
            raise AssertionError(f"the service exited ({service.process.returncode}):\n{service.log_tail()}")
        return committed_total(admin, group) == total

    try:
        wait_until(caught_up, "the service to catch up")
    finally:
        admin.close()


def test_no_secret_appears_in_any_output_not_even_at_debug_level(
    secure: tuple[SecureBroker, Pki],
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kafka_client: str,
) -> None:
    broker, pki = secure
    tag = unique_name("debug")
    # Three secrets, each given another way: the SASL password in the file, the client key's password from a
    # variable the file names, the state key from STREAMDRIFT_STATE_KEY (the file has none).
    monkeypatch.setenv("STREAMDRIFT_STATE_KEY", STATE_KEY_SECRET)
    monkeypatch.setenv(KEY_PASSWORD_VARIABLE, CLIENT_KEY_PASSWORD)
    secrets = (PASSWORD, CLIENT_KEY_PASSWORD, STATE_KEY_SECRET)
    config = secure_config(
        tmp_path, broker, tag, bootstrap=broker.secure_bootstrap, cafile=pki.ca, password=PASSWORD,
        kafka_lines=client_key_lines(pki, "${" + KEY_PASSWORD_VARIABLE + "}"), level="debug",
    )  # fmt: skip
    text = config.read_text()
    password_line = f'  sasl_plain_password_file: "{tmp_path / f"{tag}.password"}"\n'
    assert password_line in text
    config.write_text(text.replace(password_line, f'  sasl_plain_password: "{PASSWORD}"\n'))
    create_input(broker, f"{tag}-in")
    events = stream(models=2, per_model=1500, seed=3)
    produce_events(broker, f"{tag}-in", events)

    service = services(config, "debug-1")
    service.start()
    wait_until_caught_up(broker, service, f"{tag}-group", len(events))
    assert service.stop() == 0
    output = service.log_path.read_text()
    # Debug level: the client library's own lines are in the output too, and they are checked with the rest.
    lines = CLIENT_LINES[kafka_client]
    assert re.search(lines.api_versions_done, output) and re.search(lines.connected, output)
    assert [secret for secret in secrets if secret in output] == []

    validated = subprocess.run(
        [STREAMDRIFT, "config", "validate", str(config)], capture_output=True, text=True, check=False
    )
    assert (validated.returncode, validated.stdout, validated.stderr) == (0, "OK\n", "")

    # A config with mistakes about secrets, in whole sections: what is wrong is said, the values never.
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        config.read_text()
        .replace(
            "processing: {commit_interval_ms: 100}", f'processing: [{{state_key: "{STATE_KEY_SECRET}"}}]'
        )
        .replace(f'  sasl_plain_password: "{PASSWORD}"', f'  sasl_plain_password: ["{PASSWORD}"]')
        .replace(
            f'  ssl_password: "${{{KEY_PASSWORD_VARIABLE}}}"',
            f'  ssl_password: ["${{{KEY_PASSWORD_VARIABLE}}}"]',
        )
    )
    for command in (["config", "validate", str(broken)], ["run", "--config", str(broken)]):
        refused = subprocess.run(
            [STREAMDRIFT, *command], capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.splitlines()
        assert [line.split(": ")[2] for line in lines] == [
            "kafka.ssl_password",
            "kafka.sasl_plain_password",
            "processing",
        ], lines
        assert refused.stdout == ""
        assert [secret for secret in secrets if secret in refused.stderr] == []


def test_a_broker_killed_during_the_first_sasl_exchange_is_an_outage_not_rejected_credentials(
    secure: tuple[SecureBroker, Pki],
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    kafka_client: str,
) -> None:
    broker, pki = secure
    tag = unique_name("killed")
    create_input(broker, f"{tag}-in")
    events = stream(models=2, per_model=1500, seed=5)
    produce_events(broker, f"{tag}-in", events)
    # The service reaches the broker through a relay that delays everything by 0.3 s each way: its first
    # connection's SASL exchange then takes seconds, and the broker can be killed in the middle of it.
    relay = LatencyRelay(broker.secure_port, delay_s=0.3)
    try:
        config = secure_config(
            tmp_path, broker, tag, bootstrap=f"localhost:{relay.port}", cafile=pki.ca, password=PASSWORD,
            level="debug",  # the client library's lines show how far the connection got
        )  # fmt: skip
        service = services(config, "killed-1")
        service.start()

        def output() -> str:
            return service.log_path.read_text(errors="replace")

        lines = CLIENT_LINES[kafka_client]
        wait_until(
            lambda: re.search(lines.api_versions_done, output()) is not None,
            "the first connection's ApiVersions exchange", 60,
        )  # fmt: skip
        os.kill(broker.pid_in_file(), signal.SIGKILL)
        wait_until(lambda: not broker.processes(), "the broker to be gone", 30)
        wait_until(
            lambda: re.search(lines.lost_during_sasl, output()) is not None,
            "the service to lose its connection", 30,
        )  # fmt: skip
        loss = re.search(lines.lost_during_sasl, output())
        assert loss is not None
        before_the_loss = output()[: loss.start()]
        assert re.search(lines.connected, before_the_loss) is None, (
            "the broker was killed after the SASL exchange, not during it"
        )
        relay.delay_s = 0.0  # what follows needs no latency: a shorter test
        broker.up()
        # Back before the service's first connection gives up (30 s after it began; here the broker is
        # usually back in 15 s), the service catches up. Back later, the service ends saying the broker is
        # unreachable. Never that the credentials were rejected.
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            assert service.process is not None
            process = service.process
            wait_until(
                lambda: process.poll() is not None or committed_total(admin, f"{tag}-group") == len(events),
                "the service to catch up or end",
            )
        finally:
            admin.close()
    finally:
        relay.close()
        if not broker.processes():
            broker.up()  # for the module's other tests
    assert "rejected the credentials" not in output()
    if process.poll() is None:
        assert service.stop() == 0
    else:
        failures = [line for line in output().splitlines() if line.startswith("streamdrift: ")]
        assert (process.returncode, len(failures)) == (1, 1), service.log_tail()
        assert "the broker is unreachable" in failures[0], failures[0]
