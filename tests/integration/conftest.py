"""Fixtures for the integration tests: every test here is marked `kafka` by tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

STREAMDRIFT = str(Path(sys.executable).parent / "streamdrift")


@pytest.fixture(scope="session")
def kcat_path() -> str:
    """The kcat binary (librdkafka's CLI), an independent Kafka client; its absence fails, never skips."""
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(
            "kcat is not on PATH; the interoperability tests need it: run `make tools` "
            "(or `apt-get install kcat`)"
        )
    return path


class Service:
    """`streamdrift run` as a user runs it, in its own process."""

    def __init__(self, config_path: Path, log_path: Path, instance: str, args: tuple[str, ...] = ()) -> None:
        """`args`: more options of `streamdrift run`."""
        self.config_path, self.log_path, self.instance, self.args = config_path, log_path, instance, args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {**os.environ, "STREAMDRIFT_INSTANCE_ID": self.instance}
        command = [STREAMDRIFT, "run", "--config", str(self.config_path), *self.args]
        self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
        log.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def http_get(self, path: str) -> tuple[int, bytes]:
        """GET one of the service's endpoints (its config has `http.port: 0`; the log says which port)."""
        ports = [e["port"] for e in self.log_events() if e.get("event") == "http listening"]
        assert ports, "the service has not logged `http listening`"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}{path}", timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the service's output, for a failing test's message."""
        return b"\n".join(self.log_path.read_bytes().splitlines()[-lines:]).decode(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_bytes().splitlines()
        return [orjson.loads(line) for line in lines if line.startswith(b"{")]


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[[Path, str], Service]]:
    started: list[Service] = []

    def make(config_path: Path, instance: str) -> Service:
        service = Service(config_path, tmp_path / f"{instance}.log", instance)
        started.append(service)
        return service

    yield make
    for service in started:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=10)
