"""Two instances with one instance_id (a replica started twice by mistake, or a zombie): the newer one fences
the older, which exits 1 with one line on stderr and no traceback, and the newer carries on; the alerts
are still exactly those of an uninterrupted offline run, none twice.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import STREAMDRIFT, Service
from tests.integration.runs import (
    BrokerView,
    assert_alerts_equal_offline,
    committed_total,
    prepare_run,
    producing,
    stream,
    wait_for,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")


class SeparateStreams(Service):
    """`streamdrift run` with its stdout and its stderr in two files. The logs go to stderr: `log_path`."""

    def __init__(self, config_path: Path, directory: Path, instance: str, name: str) -> None:
        super().__init__(config_path, directory / f"{name}.stderr", instance)
        self.stdout_path = directory / f"{name}.stdout"

    def start(self) -> None:
        env = {**os.environ, "STREAMDRIFT_INSTANCE_ID": self.instance}
        with self.stdout_path.open("ab") as out, self.log_path.open("ab") as err:
            self.process = subprocess.Popen(
                [STREAMDRIFT, "run", "--config", str(self.config_path)], stdout=out, stderr=err, env=env
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def not_logs(self) -> list[str]:
        """The lines of stderr that are not log events (JSON objects)."""
        lines = self.log_path.read_bytes().decode(errors="replace").splitlines()
        return [line for line in lines if not _is_log_event(line)]


def _is_log_event(line: str) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


@pytest.fixture
def separate(tmp_path: Path) -> Iterator[Callable[[Path, str, str], SeparateStreams]]:
    started: list[SeparateStreams] = []

    def make(config_path: Path, instance: str, name: str) -> SeparateStreams:
        service = SeparateStreams(config_path, tmp_path, instance, name)
        started.append(service)
        return service

    yield make
    for service in started:
        if service.process is not None and service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=10)


def test_a_second_instance_with_the_same_id_fences_the_first_which_exits_1_with_one_line(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    separate: Callable[[Path, str, str], SeparateStreams],
    tmp_path: Path,
) -> None:
    events = stream(models=12, per_model=3000, seed=41)
    run = prepare_run(bootstrap_servers, new_topic(partitions=2), tmp_path, "twin", commit_interval_ms=500)
    older, newer = separate(run.config_path, "twin", "older"), separate(run.config_path, "twin", "newer")
    view = BrokerView(kafka_clients, [run.topic], outputs=[])

    def committed() -> int:
        return committed_total(kafka_admin, run.group)

    with producing(kafka_clients, run.topic, events, seconds=30.0, chunk=100, hold_last=True) as producer:
        older.start()
        wait_for(older, lambda: committed() >= len(events) // 10, "the older instance to make progress")
        newer.start()
        wait_for(newer, older.exited, "the older instance to exit once fenced")
        # Fenced mid-run: input is still arriving (at least the last chunk waits for `hurry`).
        assert view.arrived() < len(events)
        producer.hurry()
    wait_for(newer, lambda: committed() == len(events), "the newer instance to finish the input")
    assert newer.stop() == 0

    assert older.process is not None
    stderr = older.log_path.read_text(errors="replace")
    assert older.process.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = older.not_logs()
    assert len(lines) == 1, lines
    assert lines[0].startswith("streamdrift: ") and "fenced" in lines[0], lines
    assert not older.stdout_path.read_bytes()

    assert_alerts_equal_offline(kafka_clients, run, at_least=20)
    assert "Traceback" not in newer.log_path.read_text(errors="replace")
