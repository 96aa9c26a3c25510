"""The production core over a sequence of record values, offline: what `streamdrift replay` and tests run.

Record `i` of the input gets source offset `i`, so on a single-partition topic filled with the same
values, the service's alerts name the same offsets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.errors import BadRecord


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    alerts: int = 0
    bad_records: Counter[str] = field(default_factory=Counter)


def replay(
    config: StreamdriftConfig,
    values: Iterable[bytes],
    stats: ReplayStats | None = None,
    *,
    topic: str | None = None,
) -> Iterator[DriftAlert]:
    """Yield the alerts the service would raise on these record values, in order."""
    stats = stats if stats is not None else ReplayStats()
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    monitor = Monitor(config.policies(), config_version=config.config_version, limits=config.monitor_limits())
    partition = 0 if topic is not None else None
    for offset, value in enumerate(values):
        try:
            event = decoder.decode(None, value)
        except BadRecord as error:
            stats.bad_records[error.kind] += 1
            continue
        stats.events += 1
        for alert in monitor.process(event, RecordSource(topic=topic, partition=partition, offset=offset)):
            stats.alerts += 1
            yield alert
