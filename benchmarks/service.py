"""streamdrift as a user runs it: a generated config file and `streamdrift run --config FILE` as a child.

Its JSON log lines on stderr are the measurement: `summary` (cumulative `events`, one a second with
`logging.summary_interval_s: 1`), `partitions restored`, `state restored` (with `seconds`), `stopped`. Its
`started` line tells which build runs (`variants.py`): a child running another is stopped at once.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.broker import BenchError
from benchmarks.processes import ChildProcess, Children, Line
from benchmarks.rates import Sample
from benchmarks.variants import Variant

STATE_KEY = "streamdrift-benchmark-state-key-0123456789"  # an HMAC key for the run's throwaway state topics

# Exactly ten detectors per model for the scale measurement: nine features and the score. The events carry
# no prediction and no label; the missing-value signals are disabled (they would double the detectors), and so
# is the type-mismatch rate (one more per model).
TEN_SIGNALS: dict[str, Any] = {
    "missing": {"enabled": False},
    "type_mismatch": {"enabled": False},
    "prediction": {"enabled": False},
    "error": {"enabled": False},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceTopics:
    input: str
    alerts: str
    dead_letter: str
    state: str

    @classmethod
    def around(cls, input_topic: str, prefix: str) -> ServiceTopics:
        """Output and state topics of one deployment (one group): a group never sees another's state."""
        return cls(
            input=input_topic,
            alerts=f"{prefix}.alerts",
            dead_letter=f"{prefix}.dead-letter",
            state=f"{prefix}.state",
        )

    def created_by_service(self) -> list[str]:
        return [self.alerts, self.dead_letter, self.state]


def write_config(
    path: Path,
    *,
    bootstrap: str,
    group_id: str,
    topics: ServiceTopics,
    commit_interval_ms: int,
    client: str | None,
    snapshots_per_s: int | None = None,
    defaults: dict[str, Any] | None = None,
) -> Path:
    """The service's config; `client` is `kafka.client`, left out when None (code older than the key)."""
    kafka: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "client_id": "streamdrift-bench",
    }
    if client is not None:
        kafka["client"] = client
    config: dict[str, Any] = {
        "kafka": kafka,
        "topics": {
            "input": [topics.input],
            "alerts": topics.alerts,
            "dead_letter": topics.dead_letter,
            "state": topics.state,
        },
        "processing": {
            "guarantee": "exactly_once",
            "commit_interval_ms": commit_interval_ms,
            "auto_offset_reset": "earliest",
            **({} if snapshots_per_s is None else {"max_snapshots_per_s": snapshots_per_s}),
        },
        "logging": {"level": "info", "format": "json", "summary_interval_s": 1},
        # Any free port: several instances run side by side (scale-out), and the bench reads their logs.
        "http": {"port": 0},
    }
    if defaults:
        config["defaults"] = defaults
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def streamdrift_command() -> str:
    beside = Path(sys.executable).parent / "streamdrift"
    found = str(beside) if beside.exists() else shutil.which("streamdrift")
    if found is None:
        raise BenchError("the `streamdrift` command is not installed (run `make venv`)")
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSetup:
    """One deployment of one build: a config file, its consumer group, and its topics."""

    config: Path
    group: str
    topics: ServiceTopics
    variant: Variant


def start_service(children: Children, name: str, setup: ServiceSetup, *, instance_id: str) -> ChildProcess:
    """The service child, once its `started` line shows it runs the build of `setup`."""
    variant = setup.variant
    service = children.start(
        name,
        [streamdrift_command(), "run", "--config", str(setup.config)],
        env={"STREAMDRIFT_STATE_KEY": STATE_KEY, "STREAMDRIFT_INSTANCE_ID": instance_id, **variant.env()},
        json_stream="stderr",
    )
    started = service.wait_for(
        lambda line: line.fields.get("event") == "started", what="its started line", timeout=120.0
    )
    wrong = variant.check_started(started.fields)
    if wrong is not None:
        service.stop(timeout=15.0)
        raise BenchError(f"{name} should run {variant.title} but {wrong}")
    return service


def log_time(line: Line) -> float:
    """The service's own timestamp of a log line (epoch seconds)."""
    stamp = line.fields.get("timestamp")
    return datetime.fromisoformat(stamp).timestamp() if isinstance(stamp, str) else line.received


def is_summary(line: Line) -> bool:
    return line.fields.get("event") in {"summary", "stopped"}


def events_of(line: Line) -> float | None:
    return float(line.fields["events"]) if is_summary(line) else None


def progress(service: ChildProcess) -> list[Sample]:
    return [(log_time(line), float(line.fields["events"])) for line in service.lines() if is_summary(line)]


def wait_for_events(service: ChildProcess, target: int, *, timeout: float, stall_s: float = 90.0) -> Line:
    """The first summary line reporting at least `target` events processed."""
    return service.wait_for(
        lambda line: (events_of(line) or 0) >= target,
        what=f"{target:,} events processed",
        timeout=timeout,
        progress=events_of,
        stall_s=stall_s,
    )


def wait_until_idle(
    service: ChildProcess, target: int, *, timeout: float, start: int = 0, settled: bool = True
) -> Line:
    """A summary (from line `start`) after `target` events whose event count equals the previous summary's:
    nothing left to read; with `settled`, its checkpoint count too: everything committed. (A service with
    more changed models than its snapshot budget writes one a second's worth long after its input is read:
    a caught-up restart is not `settled` for minutes then.)"""
    previous: dict[str, Any] = {}

    def idle(line: Line) -> bool:
        nonlocal previous
        if not is_summary(line):
            return False
        fields, before = line.fields, previous
        previous = fields
        return bool(
            fields["events"] >= target
            and before.get("events") == fields["events"]
            and (not settled or before.get("checkpoints") == fields["checkpoints"])
        )

    return service.wait_for(idle, what="an idle, fully committed service", timeout=timeout, start=start)


def wait_until_restored(service: ChildProcess, partitions: int, *, timeout: float) -> Line:
    """The `partitions restored` line after which the service owns `partitions` restored partitions."""
    return service.wait_for(
        lambda line: (
            line.fields.get("event") == "partitions restored"
            and len(line.fields.get("partitions", [])) >= partitions
        ),
        what=f"{partitions} partitions restored",
        timeout=timeout,
    )


def log_events(service: ChildProcess, name: str) -> list[dict[str, Any]]:
    return [line.fields for line in service.lines() if line.fields.get("event") == name]
