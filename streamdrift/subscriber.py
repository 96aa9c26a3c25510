"""Reading the alerts topic from another service: typed alerts, read_committed, each `alert_id` once, and
resumable from a consumer group. `streamdrift alerts tail` is built on it.

    from streamdrift.config.model import KafkaSettings
    from streamdrift.subscriber import AlertSubscriber

    kafka = KafkaSettings(bootstrap_servers="kafka:9092")
    with AlertSubscriber(kafka, "drift-alerts", group_id="pager-bridge", from_beginning=True) as alerts:
        for alert in alerts:  # waits for the next alert; Ctrl-C or `close()` ends it
            if alert.level == "drift":
                page(f"{alert.model_id}: {alert.signal} drifted at {alert.detected_at}")
            alerts.commit()  # a restart with the same group resumes after this alert

Delivery is at least once: alerts handed out but not committed are handed out again after a restart or a
rebalance. Within one subscriber each `alert_id` is handed out once (the service's ids are deterministic: a
detection repeated by an at-least-once run has the same id); the last `remember` ids are kept. A record that
is not an alert of this schema is skipped and counted (`skipped`), never fatal. Non-Python readers find the
JSON Schema in `streamdrift/schemas/alert.schema.json` (also `streamdrift alerts schema`).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from types import TracebackType
from typing import Literal, NamedTuple

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamdrift.core.alert import ALERT_SCHEMA
from streamdrift.ports import CommitOffset, GroupConsumer, InRecord, Reader, TopicPartition
from streamdrift.reading import follow
from streamdrift.transports import TransportSettings, open_transport

POLL_S = 0.5
REMEMBER = 100_000  # alert ids kept for de-duplication: about 20 MB
ALERT_ID = "^[0-9a-f]{32}$"


def alert_schema() -> str:
    """The alert's JSON Schema, as published with the package."""
    return resources.files("streamdrift").joinpath("schemas/alert.schema.json").read_text()


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class Detector(_Part):
    type: str
    params: dict[str, object]


class Source(_Part):
    """The input record that triggered the alert (topic and partition None for a file replay)."""

    topic: str | None
    partition: int | None
    offset: int
    timestamp_ms: int | None


class Alert(_Part):
    """One alert record (`streamdrift.alert/v2`; the fields are documented in its JSON Schema)."""

    alert_schema: Literal["streamdrift.alert/v2"] = Field(alias="schema")
    alert_id: str = Field(pattern=ALERT_ID)
    level: Literal["drift", "warning", "resolved"]
    model_id: str
    model_version: str | None
    signal: str
    detector: Detector
    source: Source
    observations: int
    stats: dict[str, object]
    event_time: str | None
    detected_at: str | None
    config_version: str
    episode_id: str | None = Field(pattern=ALERT_ID)
    signals: tuple[str, ...] | None = None  # a model-level alert (signal "model"): the signals it groups

    @classmethod
    def from_json(cls, value: bytes) -> Alert:
        """An alert from a record's value; `pydantic.ValidationError` when it is not one."""
        return cls.model_validate_json(value)

    def to_dict(self) -> dict[str, object]:
        """The alert's JSON fields, as the record held them."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Read(NamedTuple):
    """A record read: where it is, and its alert (None when it is not one, or was handed out before)."""

    partition: TopicPartition
    offset: int
    alert: Alert | None


class Handed:
    """Records fetched and not yet handed out (`pending`), and per partition the offset after the last one
    handed out and not yet committed (`after`). Also the group consumer's rebalance handler: a partition
    taken away is forgotten, so that its next owner hands out what was not committed."""

    def __init__(self, revoked: Callable[[set[TopicPartition]], None] | None = None) -> None:
        self.pending: deque[InRecord] = deque()
        self.after: dict[TopicPartition, int] = {}
        self.revoked = revoked  # the reader's own bookkeeping of partitions taken away

    def handed(self, record: InRecord) -> None:
        self.after[TopicPartition(record.topic, record.partition)] = record.offset + 1

    def take(self) -> dict[TopicPartition, CommitOffset]:
        offsets = {tp: CommitOffset(offset, "") for tp, offset in self.after.items()}
        self.after.clear()
        return offsets

    def on_revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.after.pop(tp, None)
        kept = (r for r in self.pending if TopicPartition(r.topic, r.partition) not in partitions)
        self.pending = deque(kept)
        if self.revoked is not None:
            self.revoked(partitions)

    def on_lost(self, partitions: set[TopicPartition]) -> None:
        self.on_revoked(partitions)

    def on_assigned(self, partitions: set[TopicPartition]) -> None:
        pass


class AlertSubscriber:
    """Iterate the alerts of `topic`. With `group_id`: a member of that consumer group (partitions shared
    with the group's other members; `commit()` stores where to resume). Without: every partition, from the
    beginning or the end (`from_beginning`), nothing stored. `from_beginning` also says where a group with
    nothing committed yet starts. `on_revoked`: called with the partitions a rebalance takes away.
    `instance_id`: the group member's static id (default: a new one per subscriber)."""

    def __init__(
        self,
        kafka: TransportSettings,
        topic: str,
        *,
        group_id: str | None = None,
        from_beginning: bool = False,
        remember: int = REMEMBER,
        wait_for_topic_s: float = 0.0,
        on_revoked: Callable[[set[TopicPartition]], None] | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.topic = topic
        self.skipped = 0  # records that were not alerts
        self.repeated = 0  # alerts already handed out (same alert_id)
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._handed = Handed(on_revoked)
        self._closed = False
        self._log = structlog.get_logger("streamdrift.subscriber")
        transport = open_transport(kafka)
        self._group: GroupConsumer | None = None
        self._reader: Reader | None = None
        if group_id is None:
            self._reader = transport.reader()
            follow(self._reader, topic, from_beginning=from_beginning, wait_s=wait_for_topic_s)
        else:
            # A static member of its own unless told: two subscribers of one group (on one host, say) never
            # fence each other; a restart is a new member, given the partitions once the old one has gone.
            # The same `instance_id` again takes the partitions back at once (a reader reopened).
            self._group = transport.group_consumer(
                group_id=group_id,
                instance_id=instance_id or f"{group_id}-{uuid.uuid4().hex[:12]}",
                max_poll_records=500,
                auto_offset_reset="earliest" if from_beginning else "latest",
                session_timeout_ms=10_000,
                max_poll_interval_ms=300_000,
            )
            self._group.subscribe([topic], self._handed)

    def __iter__(self) -> Iterator[Alert]:
        while not self._closed:
            yield from self.poll(POLL_S, max_alerts=1)

    def poll(self, timeout_s: float, max_alerts: int | None = None) -> list[Alert]:
        """The next alerts, at most `max_alerts`, waiting up to `timeout_s` for some to arrive (none is
        fine). What is returned counts as handed out for `commit()`."""
        alerts: list[Alert] = []
        while max_alerts is None or len(alerts) < max_alerts:
            taken = self._take(timeout_s if not alerts else 0.0, 1 if max_alerts is not None else None)
            if not taken:
                break
            alerts += [read.alert for read in taken if read.alert is not None]
        return alerts

    def read(self, timeout_s: float) -> list[Read]:
        """Every record that arrived within `timeout_s`, each with its alert (None: not an alert, or one
        already handed out), for a reader that commits offsets itself (`commit_offsets`)."""
        return self._take(timeout_s, None)

    def _take(self, timeout_s: float, records: int | None) -> list[Read]:
        handed = self._handed
        consumer = self._group if self._group is not None else self._reader
        if not handed.pending and consumer is not None:
            for fetched in consumer.poll(timeout_s).values():
                handed.pending.extend(fetched)
        taken: list[Read] = []
        while handed.pending and (records is None or len(taken) < records):
            record = handed.pending.popleft()
            handed.handed(record)
            where = TopicPartition(record.topic, record.partition)
            taken.append(Read(where, record.offset, self._alert(record)))
        return taken

    def _alert(self, record: InRecord) -> Alert | None:
        try:
            alert = Alert.from_json(record.value or b"")
        except ValidationError as exc:
            self.skipped += 1
            where = f"{record.topic}/{record.partition}@{record.offset}"
            self._log.warning(
                "not an alert; skipped", record=where, error=_first_error(exc), schema=ALERT_SCHEMA
            )
            return None
        if alert.alert_id in self._seen:
            self.repeated += 1
            self._seen.move_to_end(alert.alert_id)
            return None
        self._seen[alert.alert_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return alert

    def commit_offsets(self, offsets: Mapping[TopicPartition, CommitOffset]) -> None:
        """Store these positions for the group (the next offset to read, per partition)."""
        if self._group is not None and offsets:
            self._group.commit(offsets)

    def pause(self) -> None:
        """Hand out nothing more until `resume()`, while staying in the group (polls go on)."""
        if self._group is not None:
            self._group.pause(self._group.assignment())

    def resume(self) -> None:
        if self._group is not None:
            self._group.resume(self._group.assignment())

    def commit(self) -> None:
        """Store, for the group, that every alert handed out so far is done (no-op without a group)."""
        offsets = self._handed.take()
        if self._group is not None and offsets:
            self._group.commit(offsets)

    def close(self) -> None:
        """Stop iterating and leave the group (nothing is committed: call `commit()` first)."""
        self._closed = True
        for consumer in (self._group, self._reader):
            if consumer is not None:
                consumer.close()
        self._group = self._reader = None

    def __enter__(self) -> AlertSubscriber:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]
