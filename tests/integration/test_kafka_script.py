"""tools/kafka/kafka.sh, driven as a user would, on a second broker with its own ports and data dir.

The broker of KAFKA_BOOTSTRAP_SERVERS is left alone: these tests start, probe and stop another one, on free
ports, with a temporary KAFKA_DATA_DIR and the repository's jar cache (so nothing is fetched again). Each
test leaves that broker stopped or running as the next one expects, but none relies on it: every test
brings the broker to the state it needs first. Whatever happens, the module ends with `down`, and any
process still naming the temporary data dir is killed, so no JVM outlives the tests.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "kafka" / "kafka.sh"
JAR_CACHE = REPO / ".cache" / "kafka"
HOST = "127.0.0.1"
SCRIPT_TIMEOUT_S = 120.0
# Below Linux's ephemeral range (32768+), so no client connection of this machine takes the port meanwhile.
PORT_RANGE = (20000, 32000)
RESERVED_PORTS = {19092, 19093}


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that nothing listens on or holds right now."""
    ports: list[int] = []
    candidates = random.Random().sample(range(*PORT_RANGE), 200)
    for port in candidates:
        if port in RESERVED_PORTS or port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise AssertionError(f"found only {ports} free ports in {PORT_RANGE}")


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


class ScriptBroker:
    """One set of kafka.sh settings: its own ports and data dir, the repository's jar cache."""

    def __init__(self, data_dir: Path) -> None:
        self.port, self.controller_port = free_ports(2)
        self.data_dir = data_dir
        self.pid_file = data_dir / "kafka.pid"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
        env.update(
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_DATA_DIR=str(data_dir),
            KAFKA_CACHE_DIR=str(JAR_CACHE),
            KAFKA_START_TIMEOUT="60",
            PYTHON=sys.executable,
        )
        self.env = env

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def run(self, command: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
        """`kafka.sh <command>` as a user runs it; `path` replaces PATH."""
        env = dict(self.env) if path is None else {**self.env, "PATH": path}
        return subprocess.run(
            [str(SCRIPT), command],
            env=env,
            cwd=self.data_dir.parent,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )

    def up(self) -> subprocess.CompletedProcess[str]:
        result = self.run("up")
        assert result.returncode == 0, f"kafka.sh up failed ({result.returncode}): {result.stderr}"
        return result

    def down(self) -> subprocess.CompletedProcess[str]:
        result = self.run("down")
        assert result.returncode == 0, f"kafka.sh down failed ({result.returncode}): {result.stderr}"
        return result

    def processes(self) -> list[int]:
        """Pids of the processes whose command line names this data dir (the broker JVM, when it runs)."""
        needle = os.fsencode(f"{self.data_dir}/")
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:  # it ended meanwhile
                continue
            if needle in cmdline:
                pids.append(int(entry.name))
        return pids

    def pid_in_file(self) -> int:
        return int(self.pid_file.read_text().strip())

    def cleanup(self) -> None:
        """`down`, then kill whatever of ours survived it and fail if anything did."""
        self.run("down")
        leftovers = self.processes()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"`kafka.sh down` left processes of {self.data_dir} running: {leftovers}"


@pytest.fixture(scope="module")
def script_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptBroker]:
    broker = ScriptBroker(tmp_path_factory.mktemp("kafka-script") / "data")
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture
def scratch_broker(tmp_path: Path) -> Iterator[ScriptBroker]:
    """Settings for a broker that must never start (the failure tests); stopped anyway if it did."""
    broker = ScriptBroker(tmp_path / "data")
    try:
        yield broker
    finally:
        broker.cleanup()


def assert_broker_answers(broker: ScriptBroker) -> None:
    admin: Any = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [(HOST, broker.port)]


def test_up_prints_the_bootstrap_line_last_and_the_broker_answers(script_broker: ScriptBroker) -> None:
    script_broker.run("down")
    result = script_broker.up()
    assert result.stdout.splitlines()[-1] == f"KAFKA_BOOTSTRAP_SERVERS={script_broker.bootstrap}"
    assert_broker_answers(script_broker)
    assert script_broker.processes() == [script_broker.pid_in_file()]
    status = script_broker.run("status")
    assert status.returncode == 0
    assert f"pid {script_broker.pid_in_file()}" in status.stdout


def test_second_up_returns_at_once_and_starts_no_second_jvm(script_broker: ScriptBroker) -> None:
    script_broker.up()
    jvms, pid = script_broker.processes(), script_broker.pid_in_file()
    assert jvms == [pid]

    started = time.monotonic()
    again = script_broker.up()
    elapsed = time.monotonic() - started

    assert elapsed < 5.0, f"a second `up` took {elapsed:.1f}s: it should only notice the running broker"
    assert again.stdout.splitlines()[-1] == f"KAFKA_BOOTSTRAP_SERVERS={script_broker.bootstrap}"
    assert "already running" in again.stderr
    assert script_broker.processes() == [pid]
    assert script_broker.pid_in_file() == pid
    assert_broker_answers(script_broker)


def test_down_stops_everything_and_frees_the_ports(script_broker: ScriptBroker) -> None:
    script_broker.up()
    assert port_accepts(script_broker.port)

    result = script_broker.down()

    assert "stopped" in result.stderr
    assert script_broker.processes() == []
    assert not port_accepts(script_broker.port)
    assert not port_accepts(script_broker.controller_port)
    assert not script_broker.pid_file.exists()
    assert script_broker.run("status").returncode != 0
    again = script_broker.down()
    assert "not running" in again.stderr


def test_up_replaces_a_stale_pid_file(script_broker: ScriptBroker) -> None:
    script_broker.down()
    assert script_broker.processes() == []
    with subprocess.Popen([sys.executable, "-c", "pass"]) as gone:
        gone.wait()
    script_broker.data_dir.mkdir(parents=True, exist_ok=True)
    script_broker.pid_file.write_text(f"{gone.pid}\n")

    status = script_broker.run("status")
    assert status.returncode != 0
    assert "not running" in status.stdout
    result = script_broker.up()

    assert result.stdout.splitlines()[-1] == f"KAFKA_BOOTSTRAP_SERVERS={script_broker.bootstrap}"
    pid = script_broker.pid_in_file()
    assert pid != gone.pid
    assert script_broker.processes() == [pid]
    assert_broker_answers(script_broker)


def test_a_pid_file_naming_another_live_process_is_stale_too(script_broker: ScriptBroker) -> None:
    # A reused pid: alive, even with kafka.Kafka in its command line, but not this data dir's broker.
    # `up` must start the broker rather than report it running, and `down` must not kill the stranger.
    script_broker.down()
    stranger_cmd = [sys.executable, "-c", "import sys; sys.stdin.read()", "kafka.Kafka"]
    with subprocess.Popen(stranger_cmd, stdin=subprocess.PIPE) as stranger:
        try:
            script_broker.data_dir.mkdir(parents=True, exist_ok=True)
            script_broker.pid_file.write_text(f"{stranger.pid}\n")
            script_broker.up()
            pid = script_broker.pid_in_file()
            assert pid != stranger.pid
            assert script_broker.processes() == [pid]
            assert_broker_answers(script_broker)

            script_broker.down()
            assert script_broker.processes() == []
            assert stranger.poll() is None, "kafka.sh down killed a process that is not its broker"
        finally:
            stranger.kill()


@pytest.mark.parametrize("taken", ["client", "controller"])
def test_up_refuses_a_taken_port_in_one_line(scratch_broker: ScriptBroker, taken: str) -> None:
    port = scratch_broker.port if taken == "client" else scratch_broker.controller_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((HOST, port))
        squatter.listen()
        result = scratch_broker.run("up")

    assert result.returncode != 0
    lines = stderr_lines(result)
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert str(port) in lines[0]
    assert "KAFKA_BOOTSTRAP_SERVERS" not in result.stdout
    assert scratch_broker.processes() == []


def test_up_without_java_fails_in_one_line(scratch_broker: ScriptBroker, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = ["bash", "cat", "grep", "seq", "sleep", "dirname", "rm", "mkdir", "tail", "tr", "setsid"]
    for tool in [*tools, "nohup", "touch"]:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not on PATH"
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3").symlink_to(sys.executable)
    assert shutil.which("java", path=str(bin_dir)) is None

    result = scratch_broker.run("up", path=str(bin_dir))

    assert result.returncode != 0
    lines = stderr_lines(result)
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert "java" in lines[0]
    assert "KAFKA_BOOTSTRAP_SERVERS" not in result.stdout
    assert scratch_broker.processes() == []


def test_a_checkout_whose_default_port_is_held_takes_free_ports_and_says_which(tmp_path: Path) -> None:
    """A second checkout (its own cache dir, no KAFKA_PORT) while another process holds 19092 — this suite's
    own broker, or a squatter when that runs elsewhere: `up` takes free ports, says which in one line, and
    `status` and `down` find the broker there; after `down` the next `up` would try 19092 again."""
    cache = tmp_path / "cache"
    cache.mkdir()
    version = "4.3.1"
    (cache / f"libs-{version}").symlink_to(JAR_CACHE / f"libs-{version}")  # the jars, not fetched again
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(KAFKA_CACHE_DIR=str(cache), KAFKA_START_TIMEOUT="60", PYTHON=sys.executable)

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )  # fmt: skip

    with contextlib.ExitStack() as stack:
        if not port_accepts(19092):
            squatter = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            squatter.bind((HOST, 19092))
            squatter.listen()
        try:
            result = run("up")
            assert result.returncode == 0, result.stderr
            chosen = [line for line in stderr_lines(result) if "is held by a process" in line]
            assert len(chosen) == 1, result.stderr
            bootstrap = result.stdout.splitlines()[-1].removeprefix("KAFKA_BOOTSTRAP_SERVERS=")
            port = int(bootstrap.rsplit(":", 1)[1])
            assert port != 19092 and f"using {bootstrap}" in chosen[0]
            assert (cache / "port").read_text().split()[0] == str(port)
            admin: Any = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
            try:
                assert [b["port"] for b in admin.describe_cluster()["brokers"]] == [port]
            finally:
                admin.close()
            status = run("status")
            assert status.returncode == 0 and bootstrap in status.stdout
        finally:
            stopped = run("down")
        assert stopped.returncode == 0 and "stopped" in stopped.stderr, stopped.stderr
        assert not (cache / "port").exists()
        assert not port_accepts(port)
        assert run("status").returncode != 0
