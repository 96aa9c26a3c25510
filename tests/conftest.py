"""Fixtures shared by every test folder: the real Kafka broker named by KAFKA_BOOTSTRAP_SERVERS.

The broker is a requirement, not an option: a missing or silent broker fails the tests that need it
(`pytest.fail`), it never skips them, so a green run always means the Kafka paths were exercised.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

with warnings.catch_warnings():
    # kafka-python 3.0.12 loads its protocol schemas with importlib.resources.read_text (which calls
    # open_text), both deprecated on Python 3.11 and 3.12. They warn only at import, from kafka-python's own
    # code; with `filterwarnings = error` that would break the import, so the package is imported here with
    # exactly those warnings ignored. Every later `import kafka` reuses the loaded module and warns no more.
    warnings.filterwarnings("ignore", message="(read|open)_text is deprecated", category=DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
BROKER_WAIT_S = 20.0
TOPIC_READY_WAIT_S = 30.0
INTEGRATION_DIR = Path(__file__).parent / "integration"

HOW_TO_GET_A_BROKER = (
    "run `make test` (it starts a local broker and stops it after), or `make kafka-up` and "
    "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 (the last line `make kafka-up` prints)"
)


class TopicFactory(Protocol):
    """Creates a fresh, uniquely named topic that is ready to use, and returns its name."""

    def __call__(self, partitions: int = 1, config: dict[str, str] | None = None) -> str: ...


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as `kafka` every test under tests/integration/ and every test that needs the broker."""
    for item in items:
        needs_broker = "bootstrap_servers" in getattr(item, "fixturenames", ())
        if needs_broker or item.path.is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.kafka)


def _parse_bootstrap(servers: str) -> list[tuple[str, int]]:
    addresses = []
    for server in servers.split(","):
        host, sep, port = server.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            pytest.fail(f"{BOOTSTRAP_ENV}={servers!r} is not a list of host:port: {HOW_TO_GET_A_BROKER}")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _wait_for_listener(addresses: list[tuple[str, int]], deadline: float) -> bool:
    """True once one of the addresses accepts a TCP connection before the deadline."""
    while True:
        for host, port in addresses:
            try:
                with socket.create_connection((host, port), timeout=1.0):
                    return True
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    """KAFKA_BOOTSTRAP_SERVERS of a broker that answers a metadata request; fails the test otherwise."""
    servers = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not servers:
        pytest.fail(f"{BOOTSTRAP_ENV} is not set; the Kafka tests need a real broker: {HOW_TO_GET_A_BROKER}")
    deadline = time.monotonic() + BROKER_WAIT_S
    # A plain TCP probe first: kafka-python's client leaks its sockets when its bootstrap times out.
    if not _wait_for_listener(_parse_bootstrap(servers), deadline):
        pytest.fail(
            f"no Kafka broker listens at {BOOTSTRAP_ENV}={servers} (waited {BROKER_WAIT_S:.0f}s): "
            f"{HOW_TO_GET_A_BROKER}"
        )
    remaining_ms = max(int((deadline - time.monotonic()) * 1000), 3000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers, request_timeout_ms=remaining_ms, bootstrap_timeout_ms=remaining_ms
        )
        try:
            cluster: dict[str, Any] = admin.describe_cluster()
        finally:
            admin.close()
    except (KafkaError, OSError) as exc:
        pytest.fail(
            f"the broker at {BOOTSTRAP_ENV}={servers} does not answer metadata requests "
            f"(waited {BROKER_WAIT_S:.0f}s: {exc!r}): {HOW_TO_GET_A_BROKER}"
        )
    if not cluster.get("brokers"):
        pytest.fail(f"the cluster at {BOOTSTRAP_ENV}={servers} reports no brokers: {cluster!r}")
    return servers


@pytest.fixture(scope="session")
def kafka_admin(bootstrap_servers: str) -> Iterator[Any]:
    """One KafkaAdminClient for the session, closed at its end."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=30000)
    try:
        yield admin
    finally:
        admin.close()


def unique_name(prefix: str) -> str:
    """A name no other test (or earlier run against the same broker) uses: `<prefix>-<uuid hex>`."""
    return f"{prefix}-{uuid.uuid4().hex}"


def _topic_ready(admin: Any, name: str, partitions: int) -> bool:
    try:
        described: list[dict[str, Any]] = admin.describe_topics([name])
    except KafkaError:
        return False
    if len(described) != 1 or described[0].get("error_code", -1) != 0:
        return False
    parts = described[0].get("partitions") or []
    return len(parts) == partitions and all(
        p.get("error_code", -1) == 0 and p.get("leader_id", -1) >= 0 for p in parts
    )


KEPT_FOR_EVER = {"retention.ms": "-1"}


@pytest.fixture
def new_topic(kafka_admin: Any) -> Iterator[TopicFactory]:
    """Factory for fresh topics: `new_topic(partitions=1, config=None) -> name`, all deleted afterwards.

    The name ends in a uuid, so tests never see each other's records. The factory returns only once the
    topic's metadata is visible with every partition led, so producers and consumers can use it at once.
    Records are kept for ever: tests stamp records with fixed past times (to assert the times alerts
    show), and the broker deletes records older than the default retention (7 days) at its next retention
    check, which can fall between a test's writing and its reading.
    """
    created: list[str] = []

    def create(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_name("test")
        kafka_admin.create_topics(
            {
                name: {
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": KEPT_FOR_EVER | (config or {}),
                }
            }
        )
        created.append(name)
        deadline = time.monotonic() + TOPIC_READY_WAIT_S
        while not _topic_ready(kafka_admin, name, partitions):
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"topic {name} ({partitions} partitions) has no leader for every partition "
                    f"after {TOPIC_READY_WAIT_S:.0f}s"
                )
            time.sleep(0.1)
        return name

    yield create
    if created:
        with contextlib.suppress(KafkaError, OSError):
            kafka_admin.delete_topics(created, raise_errors=False)


class KafkaClients:
    """Makes kafka-python producers and consumers on the test broker and closes every one of them."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._producers: list[Any] = []
        self._consumers: list[Any] = []

    def producer(self, **config: Any) -> Any:
        """A KafkaProducer (acks=all by default); `config` is passed through."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap_servers, **config)
        self._producers.append(producer)
        return producer

    def consumer(self, *topics: str, **config: Any) -> Any:
        """A KafkaConsumer reading from the beginning without committing, unless `config` says otherwise."""
        settings: dict[str, Any] = {"auto_offset_reset": "earliest", "enable_auto_commit": False}
        settings.update(config)
        consumer = KafkaConsumer(*topics, bootstrap_servers=self.bootstrap_servers, **settings)
        self._consumers.append(consumer)
        return consumer

    def close(self) -> None:
        while self._consumers:
            self._consumers.pop().close(autocommit=False)
        while self._producers:
            self._producers.pop().close(timeout=10)


@pytest.fixture
def kafka_clients(bootstrap_servers: str) -> Iterator[KafkaClients]:
    """Factory for producers and consumers on the test broker, all closed at the end of the test."""
    clients = KafkaClients(bootstrap_servers)
    try:
        yield clients
    finally:
        clients.close()


@pytest.fixture(autouse=True)
def state_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every service run needs an HMAC key for its state snapshots; subprocesses inherit it."""
    key = os.environ.get("STREAMDRIFT_STATE_KEY") or "test-state-key-0123456789abcdef"
    monkeypatch.setenv("STREAMDRIFT_STATE_KEY", key)
    return key


# The transports (`kafka.client`) a test runs on when it asks for `kafka_client` — directly, or for a whole
# module with `pytestmark = pytest.mark.usefixtures("kafka_client")`. The configs the tests write name the
# client as `client: "${STREAMDRIFT_TEST_KAFKA_CLIENT}"`, read by the service and the CLI they start.
KAFKA_CLIENTS = ("kafka-python", "confluent")
KAFKA_CLIENT_ENV = "STREAMDRIFT_TEST_KAFKA_CLIENT"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kafka_client" in metafunc.fixturenames:
        metafunc.parametrize("kafka_client", KAFKA_CLIENTS)


@pytest.fixture
def kafka_client() -> str:
    """Overridden by the parametrization above: the test runs once per transport."""
    return KAFKA_CLIENTS[0]


@pytest.fixture(autouse=True)
def kafka_client_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The transport of this test run, for the configs it writes (subprocesses inherit it)."""
    callspec = getattr(request.node, "callspec", None)
    client = str(callspec.params.get("kafka_client", KAFKA_CLIENTS[0])) if callspec else KAFKA_CLIENTS[0]
    monkeypatch.setenv(KAFKA_CLIENT_ENV, client)
    return client
