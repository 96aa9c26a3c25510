"""The docker compose stack, checked by parsing: this machine has no Docker engine to run it.

docker-compose.yml must describe a single-node KRaft Kafka that consumer groups and transactions work on,
the streamdrift service built from the repository's Dockerfile and running a config that ships in the
image, and a demo producer aimed at the same broker.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamdrift.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKER_CONFIG = ROOT / "configs" / "docker.yaml"

KAFKA_IMAGE = "apache/kafka:4.3.1"
IN_NETWORK_BOOTSTRAP = "kafka:9092"
CONTAINER_CONFIG_DIR = "/app/configs/"

SINGLE_NODE_KAFKA_ENV: dict[str, str] = {
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_NODE_ID": "1",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka:9093",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
}

ENV_REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}$")


# --- helpers ---------------------------------------------------------------------------------------------


def environment_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either compose form (list of `K=V` or mapping), as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, Mapping):
        return {str(key): "" if value is None else str(value) for key, value in raw.items()}
    assert isinstance(raw, list), f"environment must be a list or a mapping, got {type(raw).__name__}"
    env: dict[str, str] = {}
    for item in raw:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def command_of(service: Mapping[str, Any]) -> list[str]:
    """A service's `command` as argv, whether written as a string or a list."""
    raw = service.get("command")
    if isinstance(raw, str):
        return shlex.split(raw)
    assert isinstance(raw, list), f"command must be a string or a list, got {raw!r}"
    return [str(arg) for arg in raw]


def option_value(argv: list[str], option: str) -> str:
    """The value of `--option value` or `--option=value` in argv."""
    for index, arg in enumerate(argv):
        if arg == option:
            assert index + 1 < len(argv), f"{option} has no value in {argv}"
            return argv[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{option} missing from {argv}")


def published_ports(service: Mapping[str, Any]) -> set[str]:
    """Host ports a service publishes, from short (`"h:c"`) or long (`{published, target}`) syntax."""
    published: set[str] = set()
    for port in service.get("ports") or []:
        if isinstance(port, Mapping):
            published.add(str(port.get("published", "")))
        else:
            parts = str(port).split("/", 1)[0].split(":")
            published.add(parts[-2] if len(parts) >= 2 else parts[-1])
    return published


def healthy_dependencies(service: Mapping[str, Any]) -> set[str]:
    """Services this one waits on with `condition: service_healthy` (the list form waits on none)."""
    depends_on = service.get("depends_on") or {}
    if not isinstance(depends_on, Mapping):
        return set()
    return {
        str(name)
        for name, spec in depends_on.items()
        if isinstance(spec, Mapping) and spec.get("condition") == "service_healthy"
    }


def build_context(service: Mapping[str, Any]) -> str | None:
    build = service.get("build")
    if isinstance(build, Mapping):
        return str(build.get("context", "."))
    return None if build is None else str(build)


def listener_names(listeners: str) -> list[str]:
    """`NAME://host:port,...` → [NAME, ...]."""
    return [entry.split("://", 1)[0] for entry in listeners.split(",") if entry]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and `\\` continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    found = document.get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services mapping"
    return found


@pytest.fixture(scope="module")
def kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return environment_of(services["kafka"])


@pytest.fixture(scope="module")
def docker_config() -> dict[str, Any]:
    config = yaml.safe_load(DOCKER_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    assert DOCKERFILE.is_file(), "Dockerfile missing at the repository root"
    return dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))


# --- compose: services and the broker --------------------------------------------------------------------


def test_the_three_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "streamdrift", "demo-producer"} <= services.keys()


def test_kafka_runs_the_pinned_apache_image(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == KAFKA_IMAGE


@pytest.mark.parametrize(("name", "expected"), sorted(SINGLE_NODE_KAFKA_ENV.items()))
def test_kafka_has_the_single_node_kraft_setting(kafka_env: dict[str, str], name: str, expected: str) -> None:
    assert kafka_env.get(name) == expected


def test_kafka_listeners_serve_the_network_the_host_and_the_controller(kafka_env: dict[str, str]) -> None:
    listeners = kafka_env["KAFKA_LISTENERS"].split(",")
    assert "PLAINTEXT://:9092" in listeners
    assert any(entry.startswith("CONTROLLER://") and entry.endswith(":9093") for entry in listeners)
    assert any(entry.startswith("PLAINTEXT_HOST://") and entry.endswith(":29092") for entry in listeners)

    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT://{IN_NETWORK_BOOTSTRAP}" in advertised
    assert "PLAINTEXT_HOST://localhost:29092" in advertised
    assert "CONTROLLER" not in listener_names(kafka_env["KAFKA_ADVERTISED_LISTENERS"])


def test_every_kafka_listener_has_a_security_protocol(kafka_env: dict[str, str]) -> None:
    protocol_map = dict(
        entry.split(":", 1) for entry in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    for name in listener_names(kafka_env["KAFKA_LISTENERS"]):
        assert name in protocol_map, f"listener {name} is not in KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"


def test_kafka_publishes_the_host_port(services: dict[str, dict[str, Any]]) -> None:
    assert "29092" in published_ports(services["kafka"])


def test_kafka_healthcheck_asks_the_broker_for_api_versions(services: dict[str, dict[str, Any]]) -> None:
    healthcheck = services["kafka"].get("healthcheck")
    assert isinstance(healthcheck, dict), "kafka needs a healthcheck for service_healthy to mean anything"
    test = healthcheck["test"]
    command = test if isinstance(test, str) else " ".join(str(part) for part in test)
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in command
    assert "--bootstrap-server localhost:9092" in command


def test_every_healthy_dependency_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency in healthy_dependencies(service):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


# --- compose: streamdrift and the demo producer ----------------------------------------------------------


def test_streamdrift_is_built_from_the_repository(services: dict[str, dict[str, Any]]) -> None:
    assert build_context(services["streamdrift"]) == "."


def test_streamdrift_runs_a_config_that_ships_in_the_image(services: dict[str, dict[str, Any]]) -> None:
    argv = command_of(services["streamdrift"])
    assert argv[:2] == ["streamdrift", "run"]
    config_path = option_value(argv, "--config")
    assert config_path.startswith(CONTAINER_CONFIG_DIR), config_path
    relative = config_path.removeprefix(CONTAINER_CONFIG_DIR)
    assert (ROOT / "configs" / relative).is_file(), f"configs/{relative} does not exist in the repository"


def test_streamdrift_talks_to_the_kafka_service(services: dict[str, dict[str, Any]]) -> None:
    service = services["streamdrift"]
    assert environment_of(service).get("KAFKA_BOOTSTRAP_SERVERS") == IN_NETWORK_BOOTSTRAP
    assert "kafka" in healthy_dependencies(service)
    assert service.get("restart") == "unless-stopped"


def test_streamdrift_sets_every_variable_its_config_references(
    services: dict[str, dict[str, Any]], docker_config: dict[str, Any]
) -> None:
    env = environment_of(services["streamdrift"])
    referenced = [
        match["name"]
        for section in docker_config.values()
        if isinstance(section, dict)
        for value in section.values()
        if isinstance(value, str) and (match := ENV_REFERENCE.match(value))
    ]
    assert "STREAMDRIFT_STATE_KEY" in referenced
    for name in referenced:
        assert env.get(name), f"configs/docker.yaml references ${{{name}}} but streamdrift does not set it"


def test_demo_producer_sends_to_the_kafka_service(services: dict[str, dict[str, Any]]) -> None:
    service = services["demo-producer"]
    argv = command_of(service)
    assert argv[:3] == ["streamdrift", "demo", "produce"]
    assert option_value(argv, "--bootstrap-servers") == IN_NETWORK_BOOTSTRAP
    assert option_value(argv, "--topic") == "inference-events"
    assert "kafka" in healthy_dependencies(service)
    assert build_context(service) == "." or service.get("image") == services["streamdrift"].get("image")


# --- Dockerfile ------------------------------------------------------------------------------------------


def test_dockerfile_starts_from_python_3_11(dockerfile: list[tuple[str, str]]) -> None:
    bases = [arguments.split()[0] for keyword, arguments in dockerfile if keyword == "FROM"]
    assert bases, "Dockerfile has no FROM"
    assert bases[-1].startswith("python:3.11"), bases[-1]


def test_dockerfile_copies_the_project_and_installs_it_with_pip(dockerfile: list[tuple[str, str]]) -> None:
    copied = {
        source.rstrip("/")
        for keyword, arguments in dockerfile
        if keyword == "COPY"
        for source in arguments.split()[:-1]
        if not source.startswith("--")
    }
    assert {"pyproject.toml", "README.md", "streamdrift", "configs"} <= copied, copied
    runs = [arguments for keyword, arguments in dockerfile if keyword == "RUN"]
    # The project itself, with the confluent extra (the second transport).
    installs_project = r"\bpip install\b.*--no-cache-dir.*\s'\.\[confluent\]'(\s|$)"
    assert any(re.search(installs_project, run) for run in runs), runs


def test_dockerfile_runs_the_service_as_a_non_root_user(dockerfile: list[tuple[str, str]]) -> None:
    users = [arguments for keyword, arguments in dockerfile if keyword == "USER"]
    assert users, "Dockerfile never switches away from root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert ("WORKDIR", "/app") in dockerfile


def test_dockerfile_default_command_matches_the_compose_service(
    dockerfile: list[tuple[str, str]], services: dict[str, dict[str, Any]]
) -> None:
    commands = [arguments for keyword, arguments in dockerfile if keyword == "CMD"]
    assert commands, "Dockerfile has no CMD"
    assert yaml.safe_load(commands[-1]) == command_of(services["streamdrift"])


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".cache", ".git"} <= patterns
    assert not {"pyproject.toml", "README.md", "streamdrift", "configs"} & patterns


# --- configs/docker.yaml ---------------------------------------------------------------------------------


def test_docker_config_reads_the_bootstrap_servers_from_the_environment(
    docker_config: dict[str, Any],
) -> None:
    match = ENV_REFERENCE.match(str(docker_config["kafka"]["bootstrap_servers"]))
    assert match is not None
    assert match["name"] == "KAFKA_BOOTSTRAP_SERVERS"
    assert docker_config["topics"]["input"] == ["inference-events"]
    assert docker_config["processing"]["guarantee"] == "exactly_once"


def test_docker_config_serves_the_endpoints_on_every_interface_at_the_published_port(
    docker_config: dict[str, Any], services: dict[str, dict[str, Any]], dockerfile: list[tuple[str, str]]
) -> None:
    """Inside a container 127.0.0.1 is unreachable from outside: the container config listens on 0.0.0.0,
    at the port compose publishes, the image exposes and the healthcheck probes."""
    http = parse_config(
        (ROOT / "configs" / "docker.yaml").read_bytes(),
        env={"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "STREAMDRIFT_STATE_KEY": "k" * 16},
    ).http
    assert (http.host, http.enabled) == ("0.0.0.0", True)
    service = services["streamdrift"]
    assert f"{http.port}:{http.port}" in service.get("ports", [])
    assert str(http.port) in {arguments.strip() for keyword, arguments in dockerfile if keyword == "EXPOSE"}
    probe = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{http.port}/healthz" in probe
