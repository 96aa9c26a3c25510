"""One benchmark run: its options, its broker connection, its files, and a scope per measurement.

A scope owns the children and topics of one measurement and removes them when it ends, however it ends:
children are stopped (SIGTERM, then SIGKILL) and every topic the measurement or its services created is
deleted, with the consumer groups it used.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.broker import Broker
from benchmarks.processes import ChildProcess, Children
from benchmarks.report import Outcome
from benchmarks.service import ServiceSetup, ServiceTopics, write_config
from benchmarks.variants import TRANSPORTS, Variant

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    only: tuple[str, ...]
    quick: bool = False
    events: int | None = None  # overrides each measurement's event count
    scale_models: int | None = None
    rate: float | None = None  # latency: events/s (default: half the measured service throughput)
    latency_seconds: float | None = None
    commit_interval_ms: int = 500
    snapshots_per_s: int | None = None  # the service's processing.max_snapshots_per_s (None: its default)
    repeat: int | None = None  # rounds of service runs in throughput, scale-out and latency
    profile: bool = False
    seed: int = 42
    transports: tuple[str, ...] = TRANSPORTS  # the current code once per transport (`kafka.client`)
    before: str | None = None  # a git ref: its code on kafka-python runs too, interleaved with the current
    fleet_models: tuple[int, ...] | None = None  # the fleet measurement's model counts (default 100, 10,000)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(slots=True, kw_only=True)
class Workspace:
    bootstrap: str
    options: Options
    repo: Path
    run_id: str
    broker: Broker
    variants: tuple[Variant, ...] = ()  # the builds each service measurement runs, in their order per round
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return self.repo / ".cache" / "bench"

    @property
    def run_dir(self) -> Path:
        return self.out_dir / self.run_id

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[Scope]:
        scope = Scope(self, name)
        try:
            yield scope
        finally:
            scope.close()


class Scope:
    """The children, topics and groups of one measurement."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        self.workspace = workspace
        self.name = name
        self.dir = workspace.run_dir / name
        self.children = Children(self.dir, workspace.repo)
        self.topic_names: set[str] = set()
        self.cleanup_problems: list[str] = []
        self.failed: dict[str, str] = {}  # build name -> what went wrong

    def attempt(self, variant: Variant, work: Callable[[], T]) -> T | None:
        """`work` for one build, or None when that build has failed (now or in an earlier round): the failure
        is noted and the children `work` started are stopped, and the other builds still run."""
        if variant.name in self.failed:
            return None
        started = len(self.children.running)
        try:
            return work()
        except Exception as exc:  # reported with the build's figures; the other builds still run
            traceback.print_exc()
            self.failed[variant.name] = f"{type(exc).__name__}: {exc}"
            for child in self.children.running[started:]:
                if child.exit is None:
                    child.stop(timeout=15.0)
            return None

    @property
    def bootstrap(self) -> str:
        return self.workspace.bootstrap

    def prefix(self, label: str) -> str:
        return f"bench-{self.workspace.run_id}-{self.name}-{label}"

    def input_topic(self, label: str = "run", *, partitions: int = 2) -> str:
        """A fresh, empty input topic."""
        name = f"{self.prefix(label)}.input"
        self.topic_names.add(name)
        self.workspace.broker.create_topic(name, partitions)
        return name

    def service_config(
        self, label: str, input_topic: str, variant: Variant, *, defaults: dict[str, Any] | None = None
    ) -> ServiceSetup:
        """A deployment of `variant` reading `input_topic` with its own group, alerts and state topics."""
        group = self.prefix(label)
        topics = ServiceTopics.around(input_topic, group)
        self.topic_names.update(topics.created_by_service())
        self.workspace.broker.own(topics=topics.created_by_service(), groups=[group])
        config = write_config(
            self.dir / f"{label}.yaml",
            bootstrap=self.bootstrap,
            group_id=group,
            topics=topics,
            commit_interval_ms=self.workspace.options.commit_interval_ms,
            snapshots_per_s=self.workspace.options.snapshots_per_s,
            client=variant.client,
            defaults=defaults,
        )
        return ServiceSetup(config=config, group=group, topics=topics, variant=variant)

    def drop_topics(self, names: list[str]) -> None:
        """Delete topics the measurement no longer needs (the rest go when the scope closes)."""
        self.cleanup_problems.extend(self.workspace.broker.cleanup(names))
        self.topic_names.difference_update(names)

    def python_child(self, name: str, module: str, *args: str) -> ChildProcess:
        return self.children.start(name, [sys.executable, "-m", module, *args], json_stream="stdout")

    def close(self) -> None:
        self.children.stop_all()
        self.cleanup_problems = self.workspace.broker.cleanup(self.topic_names)
        self.topic_names.clear()
