"""The production core over records, offline: what `streamdrift replay` and tests run.

Over a file, record `i` gets source offset `i`, so on a single-partition topic filled with the same values
the service's alerts name the same offsets. Over a topic's records, the alerts are the service's own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.errors import BadRecord


class ReplayWatcher(Protocol):
    """Sees what a replay does inside the core, for reports: every value fed to a detector, and each alert.

    `observe` is installed as `Monitor.observer`; `record_alert` gets each alert just before it is yielded,
    so before the next event is processed.
    """

    def observe(self, model_id: str, signal: str, index: int, value: float, level: int) -> None: ...

    def record_alert(self, alert: DriftAlert) -> None: ...


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    alerts: int = 0
    bad_records: Counter[str] = field(default_factory=Counter)


class SourceRecord(Protocol):
    """What a replay needs of a record: a Kafka consumer record fits."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def topic(self) -> str | None: ...
    @property
    def partition(self) -> int | None: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Line:
    """A record of a file: no key, no time; its offset is its line index."""

    value: bytes
    offset: int
    topic: str | None = None
    partition: int | None = None
    key: bytes | None = None
    timestamp: int | None = None


def replay(
    config: StreamdriftConfig,
    values: Iterable[bytes],
    stats: ReplayStats | None = None,
    *,
    topic: str | None = None,
    watcher: ReplayWatcher | None = None,
) -> Iterator[DriftAlert]:
    """Yield the alerts the service would raise on these record values, in order.

    A `watcher` only looks: the alerts are the same with or without one.
    """
    partition = 0 if topic is not None else None
    lines = (Line(value, offset, topic, partition) for offset, value in enumerate(values))
    return replay_records(config, lines, stats, watcher=watcher)


def replay_records(
    config: StreamdriftConfig,
    records: Iterable[SourceRecord],
    stats: ReplayStats | None = None,
    *,
    watcher: ReplayWatcher | None = None,
) -> Iterator[DriftAlert]:
    """Yield the alerts the service raises on these records, given in the order it processed them (each
    partition's in offset order): the same alerts, byte for byte, when they are the service's records."""
    stats = stats if stats is not None else ReplayStats()
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    monitor = Monitor(config.policies(), config_version=config.config_version, limits=config.monitor_limits())
    if watcher is not None:
        monitor.observer = watcher.observe
    for record in records:
        try:
            event = decoder.decode(record.key, record.value)
        except BadRecord as error:
            stats.bad_records[error.kind] += 1
            continue
        stats.events += 1
        source = RecordSource(
            topic=record.topic, partition=record.partition, offset=record.offset,
            timestamp_ms=record.timestamp,
        )  # fmt: skip
        for alert in monitor.process(event, source):
            stats.alerts += 1
            if watcher is not None:
                watcher.record_alert(alert)
            yield alert
