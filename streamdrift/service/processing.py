"""Processing: a fetched batch of one partition in, an `Outcome` out: the alerts and dead letters to write.

A replayed event (below the partition's replay end, ledger.py) only brings detectors up to date: its alerts
and dead letters were written before the restore, so they are not returned again. The core still returns
the alerts of late labels it releases that were not published before (core/labels.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.event import MISROUTED_LABEL, EventDecoder, InferenceEvent
from streamdrift.core.monitor import Monitor
from streamdrift.errors import BadRecord
from streamdrift.ports import InRecord, OutRecord, TopicPartition
from streamdrift.service.counters import Counters
from streamdrift.service.ledger import Ledger
from streamdrift.service.records import dead_letter_record, record_source

SCATTER_WARNINGS = 20  # models logged by name when input is not keyed by model_id; all are counted


@dataclass(slots=True)
class Outcome:
    alerts: list[DriftAlert] = field(default_factory=list)  # in record order
    records: list[OutRecord] = field(default_factory=list)  # dead letters


class Processor:
    def __init__(
        self,
        *,
        decoder: EventDecoder,
        monitor: Monitor,
        ledger: Ledger,
        counters: Counters,
        dead_letter_topic: str,
        repartition_topic: str | None,
        labels_topic: str | None,
        stateful_topic: str,
    ) -> None:
        self.decoder, self.monitor, self.ledger, self.counters = decoder, monitor, ledger, counters
        self.dead_letter_topic = dead_letter_topic
        self.repartition_topic = repartition_topic
        self.labels_topic = labels_topic
        self.stateful_topic = stateful_topic  # the topic models live on (first input, or repartition topic)
        self.scattered_models: set[str] = set()  # models seen on two partitions, logged by name
        self.log = structlog.get_logger("streamdrift.service")

    def consumed(self, tp: TopicPartition, records: Sequence[InRecord], now_ms: float) -> float | None:
        """Per fetched batch (never per record): the counts of what was read. Returns the age in seconds of
        the batch's newest record (None: it has no timestamp)."""
        counters = self.counters
        counters.events_by_topic[tp.topic] += len(records)
        sizes = [record.serialized_value_size for record in records]
        total = sum(sizes)
        if min(sizes) < 0:  # a null value's size is -1
            total = sum(size for size in sizes if size > 0)
        counters.bytes_by_topic[tp.topic] += total
        newest = records[-1]
        counters.positions[(tp.topic, tp.partition)] = newest.offset + 1
        return None if newest.timestamp < 0 else max(0.0, (now_ms - newest.timestamp) / 1000)

    def process(self, tp: TopicPartition, records: Sequence[InRecord]) -> Outcome:
        """The records of a partition the ledger processes and that is not forwarded (forwarding.py)."""
        outcome = Outcome()
        ledger = self.ledger
        if tp.topic == self.labels_topic:
            self._labels(tp, records, outcome)
            self.counters.totals["labels"] += len(records)
        else:
            replay_end = ledger.replay_end(tp)
            from_repartition = tp.topic == self.repartition_topic
            if records[0].offset < replay_end <= records[-1].offset:
                # The end of a replay: its part only brings detectors up to date, the rest is live.
                cut = next(i for i, record in enumerate(records) if record.offset >= replay_end)
                self._events(tp, records[:cut], from_repartition, False, outcome)
                self._events(tp, records[cut:], from_repartition, True, outcome)
            else:
                live = records[0].offset >= replay_end
                self._events(tp, records, from_repartition, live, outcome)
            self.counters.totals["events"] += len(records)
        return outcome

    def _events(
        self,
        tp: TopicPartition,
        records: Sequence[InRecord],
        from_repartition: bool,
        live: bool,
        outcome: Outcome,
    ) -> None:
        """Decode, then every event of the batch at once (Monitor.process_many); the alerts are returned in
        record order, as one event at a time would have them."""
        decode = self.decoder.decode
        ledger = self.ledger
        next_offset, home_of = ledger.next_offset, ledger.home
        events: list[InferenceEvent] = []
        kept: list[InRecord] = []
        # Per model at home here: the first and last offset of its events in the batch.
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        # Once per record: locals over attributes, the rare cases (a model new here or homed elsewhere, a
        # re-read event) off the common path.
        for record in records:
            try:
                event = decode(record.key, record.value)
            except BadRecord as error:
                if live:
                    outcome.records.append(self._dead_letter(error, record))
                continue
            model_id = event.model_id
            offset = record.offset
            if home_of.get(model_id) == tp:  # offsets order events within one partition only
                if offset < next_offset.get(model_id, -1):  # a re-read event its restored state reflects
                    self.counters.totals["already_applied"] += 1
                    continue
                first.setdefault(model_id, offset)
                last[model_id] = offset
            elif self._claim(model_id, tp) == tp:
                first[model_id] = last[model_id] = offset
            events.append(event)
            kept.append(record)

        def source(index: int) -> RecordSource:
            return record_source(kept[index], from_repartition)

        for _index, alerts in self.monitor.process_many(events, source, live=live):
            outcome.alerts += alerts
        ledger.applied(tp, first, last)
        if not live:
            self.counters.totals["replayed"] += len(events)

    def _labels(self, tp: TopicPartition, records: Sequence[InRecord], outcome: Outcome) -> None:
        """Late labels: each resolves an earlier prediction of its model (see core/labels.py).

        Label partition p serves the models whose home is partition p of the stateful topic; a label for a
        model that lives elsewhere is dead-lettered (the labels topic is not keyed by model_id). A label
        its model's restored state already reflects is skipped.
        """
        monitor, ledger = self.monitor, self.ledger
        replay_end = ledger.replay_end(tp)
        home_of_new = TopicPartition(self.stateful_topic, tp.partition)
        for record in records:
            live = record.offset >= replay_end
            try:
                label = self.decoder.decode_label(record.key, record.value)
                model_id = label.model_id
                home = ledger.home.get(model_id)
                if home is None and ledger.processes(home_of_new) and record.key == model_id.encode():
                    # A label before any prediction of its model: keyed by model_id, it is on the partition
                    # the model's events are on, so the model starts here.
                    home = self._claim(model_id, home_of_new)
                    read_at = self.counters.positions.get((home_of_new.topic, home_of_new.partition), 0)
                    ledger.next_offset[model_id] = read_at
                if home is None or home.partition != tp.partition:
                    where = "an unknown partition" if home is None else f"partition {home.partition}"
                    raise BadRecord(
                        MISROUTED_LABEL,
                        f"a label of model {model_id!r} read from partition {tp.partition} of "
                        f"{tp.topic}, but the model lives on {where}: key labels by model_id, "
                        "with as many partitions as the input",
                    )
            except BadRecord as error:
                if live:
                    outcome.records.append(self._dead_letter(error, record))
                continue
            position = monitor.label_position(model_id)
            if position is not None and record.offset < position:
                self.counters.totals["already_applied"] += 1
                continue
            ledger.label_applied(model_id, record.offset)
            source = RecordSource(
                topic=record.topic, partition=record.partition, offset=record.offset,
                timestamp_ms=record.timestamp,
            )  # fmt: skip
            outcome.alerts += monitor.label(model_id, label.event_id, label.label, source, live=live)

    def _dead_letter(self, error: BadRecord, record: InRecord) -> OutRecord:
        self.counters.dead_letters[error.kind] += 1
        return dead_letter_record(
            self.dead_letter_topic, error, key=record.key, value=record.value,
            headers=list(record.headers or []), source_topic=record.topic, partition=record.partition,
            offset=record.offset,
        )  # fmt: skip

    def _claim(self, model_id: str, tp: TopicPartition) -> TopicPartition:
        """The model's home partition (where its state is snapshotted); warns when it arrives elsewhere."""
        home = self.ledger.claim(model_id, tp)
        if home != tp:
            self.counters.totals["model_in_two_partitions"] += 1
            scattered = self.scattered_models
            if model_id not in scattered and len(scattered) < SCATTER_WARNINGS:
                scattered.add(model_id)
                self.log.warning(
                    "a model arrives on two partitions: the input is not keyed by model_id, so this model's "
                    "detectors see an interleaving that depends on partition order, and its state can be "
                    "lost on rebalance; produce with key = model_id",
                    model_id=model_id,
                    first=str(home),
                    second=str(tp),
                    more_not_logged=len(scattered) == SCATTER_WARNINGS,
                )
        return home
