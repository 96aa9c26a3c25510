"""Detector state in the compacted state topic: writing snapshots, and restoring a partition's models.

The state topic is co-partitioned with the input: the models of input partition p are snapshotted to state
partition p, one record per model (key = model id), so compaction keeps exactly the latest of each.

A restore reads a state partition to its end and trusts no record for where it is. Each record's signature
and header are checked (snapshot.py); a snapshot signed for another model than its key, or for another
partition than the one it was read from, is `misplaced`, as is one signed for an input topic this service
does not keep state for. Of a model's snapshots the one with the newest signed input offset is restored,
whatever was written after it: an older one written later (a replay of an old record) is `stale`. A
tombstone deletes the model; a snapshot written after it starts it again, but not from before the deleted
one. Only the chosen snapshot of each model is unpickled. Every rejection is counted by reason, logged with
its model, and summed up per partition at the end of the restore.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field

import structlog

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.snapshot import (
    REJECT_MISPLACED,
    REJECT_STALE,
    REJECT_VERSION,
    SnapshotHeader,
    SnapshotRejected,
    decode_snapshot,
    encode_snapshot,
    read_header,
)
from streamdrift.errors import ConfigError, KafkaUnavailable
from streamdrift.ports import OutRecord, TopicPartition, Transport
from streamdrift.service.counters import Counters

STATE_KEY_ENV = "STREAMDRIFT_STATE_KEY"
PROGRESS_LOG_EVERY_S = 5.0


def state_key(config: StreamdriftConfig) -> bytes:
    """The HMAC key for snapshots: the config's `processing.state_key`, else $STREAMDRIFT_STATE_KEY."""
    key = config.processing.state_key or os.environ.get(STATE_KEY_ENV, "")
    if len(key) < 16:
        raise ConfigError(
            "processing.state_key: state snapshots need an HMAC key of at least 16 characters; set it in the "
            f"environment (export {STATE_KEY_ENV}=$(openssl rand -hex 32)) and leave it out of the file"
        )
    return key.encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoredModel:
    model_id: str
    offset: int  # the next input offset the state reflects
    state: dict[str, object]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """The snapshot of one model a restore will use so far, and the record it came from."""

    header: SnapshotHeader
    value: bytes
    record_offset: int


@dataclass(slots=True, kw_only=True)
class PartitionRestore:
    """What the latest restore of one state partition found, counted as it reads: for the logs."""

    partition: int
    records: int = 0
    models: int = 0  # snapshots decoded for the wanted input partitions
    rejected: Counter[str] = field(default_factory=Counter)
    # The river versions of the snapshots rejected as `incompatible_version`, with their counts.
    river_versions: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True, kw_only=True)
class PartitionScan:
    """One state partition being read: each model's chosen snapshot, and the newest signed offset of each
    (model, input topic) ever seen, tombstones notwithstanding, which a later snapshot must not be below."""

    summary: PartitionRestore
    chosen: dict[bytes, Candidate] = field(default_factory=dict)
    newest: dict[tuple[bytes, str], int] = field(default_factory=dict)


class StateStore:
    def __init__(
        self, config: StreamdriftConfig, transport: Transport, key: bytes, counters: Counters
    ) -> None:
        self.topic = config.topics.state
        self.transport = transport
        self.counters = counters
        self.key = key
        self.restore_timeout_s = config.processing.restore_timeout_s
        # The input topics whose models have state here: the repartition topic's, or the inputs'.
        self.stateful_topics = frozenset(
            [config.repartition_topic()] if config.processing.repartition else config.topics.input
        )
        self.rejected = counters.rejected_snapshots  # every rejection since start, by reason
        self.last_restore: dict[int, PartitionRestore] = {}  # per state partition, its latest restore
        self.log = structlog.get_logger("streamdrift.state")

    def snapshot_record(
        self, model_id: str, topic: str, partition: int, offset: int, state: dict[str, object]
    ) -> OutRecord:
        header = SnapshotHeader(
            model_id=model_id, topic=topic, partition=partition, offset=offset, river_version=RIVER_VERSION
        )
        return OutRecord(
            topic=self.topic,
            key=model_id.encode(),
            value=encode_snapshot(header, state, self.key),
            headers=[],
            partition=partition,
        )

    def reject(
        self,
        model_id: str,
        rejected: SnapshotRejected,
        *,
        partition: int | None = None,
        record_offset: int | None = None,
    ) -> None:
        """Count and log one rejected snapshot (by the restore, or by the core for a state of the wrong
        shape): its model starts fresh unless another snapshot of it is restored. `partition` counts it in
        that state partition's latest restore too."""
        self.rejected[rejected.reason] += 1
        summary = None if partition is None else self.last_restore.get(partition)
        if summary is not None:
            summary.rejected[rejected.reason] += 1
        where = {"partition": partition, "record_offset": record_offset}
        self.log.warning(
            "state snapshot rejected",
            model_id=model_id,
            reason=rejected.reason,
            detail=str(rejected),
            **{name: value for name, value in where.items() if value is not None},
        )

    def restore(self, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], list[RestoredModel]]:
        """Read these input partitions' state partitions to their end: the newest valid snapshot per model.

        Raises `KafkaUnavailable` when reading makes no progress for `restore_timeout_s` (the caller rolls
        back and tries again: a broker away for any length is waited out).
        """
        wanted = {partition for _topic, partition in partitions}
        scans = self._read_to_end(sorted(wanted)) if wanted else {}
        restored: dict[tuple[str, int], list[RestoredModel]] = {tp: [] for tp in partitions}
        for partition, scan in scans.items():
            summary = scan.summary
            chosen = scan.chosen
            while chosen:  # each record's bytes freed as its model is decoded: a restore peaks lower
                model_key, candidate = chosen.popitem()
                home = (candidate.header.topic, partition)
                if home not in restored:
                    continue  # a model of an input partition another replica (or none) restores now
                model_id = model_key.decode()
                try:
                    header, state = decode_snapshot(candidate.value, self.key, RIVER_VERSION)
                except SnapshotRejected as rejected:
                    if rejected.reason == REJECT_VERSION:
                        summary.river_versions[candidate.header.river_version] += 1
                    self.reject(
                        model_id, rejected, partition=partition, record_offset=candidate.record_offset
                    )
                    continue
                restored[home].append(RestoredModel(model_id=model_id, offset=header.offset, state=state))
                summary.models += 1
            self._log_summary(summary)
        return restored

    def _log_summary(self, summary: PartitionRestore) -> None:
        """One line per state partition; a warning when anything was rejected, naming the river versions
        found when snapshots of another one were (then every model of the fleet may start fresh)."""
        fields: dict[str, object] = {
            "partition": summary.partition, "records": summary.records, "restored_models": summary.models,
            "rejected_snapshots": dict(summary.rejected),
        }  # fmt: skip
        if summary.river_versions:
            fields["river_versions_found"] = dict(summary.river_versions)
            fields["river_version_running"] = RIVER_VERSION
        if summary.rejected:
            self.log.warning("state partition restored with rejected snapshots", **fields)
        else:
            self.log.info("state partition restored", **fields)

    def _consider(self, scan: PartitionScan, key: bytes, value: bytes | None, record_offset: int) -> None:
        """One record of a state partition, in log order: does it become its model's chosen snapshot?"""
        if value is None:  # a tombstone: the model was deleted
            scan.chosen.pop(key, None)
            return
        partition = scan.summary.partition
        model_id = key.decode(errors="replace")
        try:
            header = read_header(value, self.key)
            if header.model_id.encode() != key or header.partition != partition:
                raise SnapshotRejected(
                    REJECT_MISPLACED,
                    f"signed for model {header.model_id!r} of partition {header.partition}, found under key "
                    f"{model_id!r} in partition {partition}",
                )
            if header.topic not in self.stateful_topics:
                raise SnapshotRejected(
                    REJECT_MISPLACED, f"signed for input topic {header.topic!r}, which has no state here"
                )
            newest = scan.newest.get((key, header.topic))
            if newest is not None and header.offset < newest:
                # Offsets of one input partition only grow; a snapshot may repeat one (a late label changes a
                # model without input), never go back to an earlier one.
                raise SnapshotRejected(
                    REJECT_STALE, f"reflects input up to offset {header.offset}, a snapshot read before it "
                    f"up to {newest}",
                )  # fmt: skip
        except SnapshotRejected as rejected:
            self.reject(model_id, rejected, partition=partition, record_offset=record_offset)
            return
        scan.newest[(key, header.topic)] = header.offset
        scan.chosen[key] = Candidate(header=header, value=value, record_offset=record_offset)

    def _read_to_end(self, partitions: list[int]) -> dict[int, PartitionScan]:
        consumer = self.transport.reader(max_poll_records=10_000, large_fetches=True)
        scans = {
            partition: PartitionScan(summary=PartitionRestore(partition=partition))
            for partition in partitions
        }
        for partition, scan in scans.items():
            self.last_restore[partition] = scan.summary
        timeout_s = self.restore_timeout_s  # no call blocks longer than progress may stall
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            for tp, beginning in consumer.beginning_offsets(tps).items():
                consumer.seek(tp, beginning)
            end = consumer.end_offsets(tps, timeout_s)  # read_committed: the stable end
            total = sum(end.values())
            self.counters.records_to_restore = total
            self.log.info("restoring state", partitions=partitions, records_to_read=total)
            started = last_progress = last_log = time.monotonic()
            done = 0
            while True:
                remaining = [tp for tp in tps if consumer.position(tp, timeout_s) < end[tp]]
                if not remaining:
                    break
                batch = consumer.poll(0.5)
                now = time.monotonic()
                if batch:
                    last_progress = now
                for tp, records in batch.items():
                    scan = scans[tp.partition]
                    consider = self._consider
                    for record in records:
                        if record.key is not None:
                            consider(scan, record.key, record.value, record.offset)
                    scan.summary.records += len(records)
                    done += len(records)
                    self.counters.restored_records += len(records)
                if now - last_progress > self.restore_timeout_s:
                    raise KafkaUnavailable(
                        f"state restore made no progress for {self.restore_timeout_s:.0f} s "
                        f"({done} of about {total} records read from {self.topic})"
                    )
                if now - last_log >= PROGRESS_LOG_EVERY_S:
                    self.log.info("restoring state", read=done, of=total)
                    last_log = now
            self.log.info(
                "state restored", partitions=partitions, records=done,
                models=sum(len(scan.chosen) for scan in scans.values()),
                seconds=round(time.monotonic() - started, 2),
            )  # fmt: skip
            return scans
        finally:
            consumer.close()
