"""The service over TLS and SASL (SCRAM): it works through a SASL_SSL listener, and a wrong password, an
untrusted CA or a wrong host name each end it within 30 s with one line saying which, exit code 1. It
cannot have fallen back to plaintext: the broker's plaintext listener would have let it run. The password
never appears in its output.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from tests.conftest import KafkaClients, unique_name
from tests.integration.conftest import STREAMDRIFT, Service
from tests.integration.runs import committed_total, read_all, stream, wait_until
from tests.integration.secure_broker import PASSWORD, USER, Pki, SecureBroker, make_pki

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
    tmp_path: Path, broker: SecureBroker, tag: str, *, bootstrap: str, cafile: Path, password: str
) -> Path:
    password_file = tmp_path / f"{tag}.password"
    password_file.write_text(password + "\n")
    path = tmp_path / f"{tag}.yaml"
    path.write_text(
        f"""
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: "{tag}-group"
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_plain_username: {USER}
  sasl_plain_password_file: "{password_file}"
  ssl_cafile: "{cafile}"
topics:
  input: ["{tag}-in"]
  alerts: "{tag}-alerts"
  dead_letter: "{tag}-dead-letter"
  state: "{tag}-state"
processing: {{commit_interval_ms: 100}}
http: {{enabled: false}}
logging: {{summary_interval_s: 1}}
"""
    )
    return path


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
    config = secure_config(tmp_path, broker, tag, **settings)
    create_input(broker, f"{tag}-in")
    started = time.monotonic()
    finished = subprocess.run(
        [STREAMDRIFT, "run", "--config", str(config)],
        capture_output=True, text=True, timeout=FAIL_WITHIN_S + 30, check=False,
        env={"STREAMDRIFT_STATE_KEY": STATE_KEY, "PATH": str(Path(sys.executable).parent)},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert finished.returncode == 1, finished.stderr
    assert elapsed < FAIL_WITHIN_S, f"took {elapsed:.1f} s: {finished.stderr[-2000:]}"
    failure_lines = [line for line in finished.stderr.splitlines() if line.startswith("streamdrift: ")]
    assert len(failure_lines) == 1, finished.stderr
    assert expected in failure_lines[0], failure_lines[0]
    assert PASSWORD not in finished.stdout + finished.stderr
    assert settings["password"] not in finished.stdout + finished.stderr
