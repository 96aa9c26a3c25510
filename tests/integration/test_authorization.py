"""A principal the cluster does not authorize: the service ends with one line saying so and exit 1, whether
it may not see its input or may not write its alerts, never a traceback and never an endless wait (an
input topic it may not describe is not "missing").

A private broker with Kafka's own authorizer (StandardAuthorizer) and a SASL_SSL listener; the test's
administration goes through the plaintext listener, whose principal is the super user.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from tests.conftest import KAFKA_CLIENT_ENV, KafkaClients, unique_name
from tests.integration.conftest import STREAMDRIFT
from tests.integration.runs import committed_total, read_all, stream, wait_until
from tests.integration.secure_broker import PASSWORD, Pki, SecureBroker, make_pki
from tests.integration.test_security import secure_config

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

LIMITED = "streamdrift"  # the SCRAM user secure_config logs in as
STATE_KEY = "test-state-key-0123456789abcdef"


class AuthorizingBroker(SecureBroker):
    """SecureBroker with Kafka's authorizer: nothing is allowed but what an ACL grants."""

    def __init__(self, data_dir: Path, pki: Pki) -> None:
        super().__init__(data_dir, pki)
        extra = Path(self.env["KAFKA_EXTRA_CONFIG"])
        extra.write_text(
            extra.read_text()
            + "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
            + "super.users=User:ANONYMOUS\n"  # the plaintext and controller listeners' principal
        )


@pytest.fixture(scope="module")
def authorizing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthorizingBroker, Pki]]:
    base = tmp_path_factory.mktemp("authorizing")
    pki = make_pki(base / "pki")
    broker = AuthorizingBroker(base / "kafka", pki)
    broker.up()
    try:
        broker.add_user(LIMITED, PASSWORD)
        yield broker, pki
    finally:
        broker.down()


def allow(admin: KafkaAdminClient, kind: ResourceType, name: str, *operations: ACLOperation) -> None:
    pattern = ResourcePattern(kind, name, ACLResourcePatternType.LITERAL)
    acls = [ACL(f"User:{LIMITED}", "*", op, ACLPermissionType.ALLOW, pattern) for op in operations]
    result = admin.create_acls(acls)
    assert not result["failed"], result


def run_until_exit(config: Path) -> tuple[int, str]:
    done = subprocess.run(
        [STREAMDRIFT, "run", "--config", str(config)], capture_output=True, timeout=120, check=False,
        env={
            "STREAMDRIFT_STATE_KEY": STATE_KEY, "PATH": "/usr/bin:/bin",
            KAFKA_CLIENT_ENV: os.environ[KAFKA_CLIENT_ENV],
        },
    )  # fmt: skip
    return done.returncode, done.stderr.decode()


def deployment(broker: AuthorizingBroker, tag: str) -> KafkaAdminClient:
    """The service's topics, created by the administrator, with input in it."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    names = [f"{tag}-{suffix}" for suffix in ("in", "alerts", "dead-letter", "state")]
    admin.create_topics(
        {name: {"num_partitions": 1, "replication_factor": 1} for name in names}, wait_for_metadata=True
    )
    clients = KafkaClients(broker.bootstrap)
    try:
        producer = clients.producer()
        for model, value in stream(models=3, per_model=2_000, seed=41):
            producer.send(f"{tag}-in", key=model.encode(), value=value)
        producer.flush()
    finally:
        clients.close()
    return admin


def test_a_principal_not_allowed_to_see_its_input_ends_with_one_line(
    authorizing: tuple[AuthorizingBroker, Pki], tmp_path: Path
) -> None:
    broker, pki = authorizing
    tag = unique_name("noread")
    deployment(broker, tag).close()  # and no ACL at all for the service's principal
    config = secure_config(
        tmp_path, broker, tag, bootstrap=broker.secure_bootstrap, cafile=pki.ca, password=PASSWORD
    )
    code, stderr = run_until_exit(config)
    assert code == 1, stderr
    last = stderr.splitlines()[-1]
    assert last.startswith(
        f"streamdrift: describing topic {tag}-in: not authorized (TOPIC_AUTHORIZATION_FAILED)"
    ), last
    assert "Traceback" not in stderr


def grant_all_but_alerts(broker: AuthorizingBroker, tag: str) -> None:
    """The README's ACLs, all but `Write` on the alerts topic (topics made beforehand: no `Create`)."""
    admin = deployment(broker, tag)
    try:
        for suffix in ("in", "alerts", "dead-letter", "state"):
            allow(admin, ResourceType.TOPIC, f"{tag}-{suffix}", ACLOperation.DESCRIBE)
        allow(admin, ResourceType.TOPIC, f"{tag}-in", ACLOperation.READ)
        allow(admin, ResourceType.TOPIC, f"{tag}-state", ACLOperation.READ, ACLOperation.WRITE)
        allow(admin, ResourceType.TOPIC, f"{tag}-dead-letter", ACLOperation.WRITE)
        allow(admin, ResourceType.GROUP, f"{tag}-group", ACLOperation.READ, ACLOperation.DESCRIBE)
        transactional_id = f"streamdrift-{tag}-group-{tag}"
        allow(
            admin, ResourceType.TRANSACTIONAL_ID, transactional_id, ACLOperation.WRITE, ACLOperation.DESCRIBE
        )
    finally:
        admin.close()


def config_for(tmp_path: Path, broker: AuthorizingBroker, pki: Pki, tag: str) -> Path:
    config = secure_config(
        tmp_path, broker, tag, bootstrap=broker.secure_bootstrap, cafile=pki.ca, password=PASSWORD
    )
    # The transactional id the ACL names: streamdrift-<group_id>-<instance_id>.
    text = config.read_text()
    config.write_text(
        text.replace("{commit_interval_ms: 100}", f"{{commit_interval_ms: 100, instance_id: {tag}}}")
    )
    return config


def test_a_principal_not_allowed_to_write_its_alerts_ends_with_one_line(
    authorizing: tuple[AuthorizingBroker, Pki], tmp_path: Path
) -> None:
    broker, pki = authorizing
    tag = unique_name("nowrite")
    grant_all_but_alerts(broker, tag)
    code, stderr = run_until_exit(config_for(tmp_path, broker, pki, tag))
    assert code == 1, stderr
    assert re.fullmatch(
        r"streamdrift: (committing the transaction|sending a record): not authorized "
        r"\(TOPIC_AUTHORIZATION_FAILED\): grant this principal the ACLs the README lists",
        stderr.splitlines()[-1],
    ), stderr[-2000:]
    assert "Traceback" not in stderr


def test_the_acls_the_readme_lists_are_enough(
    authorizing: tuple[AuthorizingBroker, Pki], tmp_path: Path
) -> None:
    broker, pki = authorizing
    tag = unique_name("granted")
    grant_all_but_alerts(broker, tag)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        allow(admin, ResourceType.TOPIC, f"{tag}-alerts", ACLOperation.WRITE)
        service = subprocess.Popen(
            [STREAMDRIFT, "run", "--config", str(config_for(tmp_path, broker, pki, tag))],
            stderr=subprocess.PIPE, env={
            "STREAMDRIFT_STATE_KEY": STATE_KEY, "PATH": "/usr/bin:/bin",
            KAFKA_CLIENT_ENV: os.environ[KAFKA_CLIENT_ENV],
        },
        )  # fmt: skip
        try:
            wait_until(lambda: committed_total(admin, f"{tag}-group") == 6_000, "every event processed")
        finally:
            service.send_signal(signal.SIGTERM)
            _, stderr = service.communicate(timeout=60)
    finally:
        admin.close()
    assert service.returncode == 0, stderr.decode()[-2000:]
    clients = KafkaClients(broker.bootstrap)
    try:
        assert read_all(clients, f"{tag}-alerts"), "no alert written"
    finally:
        clients.close()
