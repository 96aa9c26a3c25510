"""Detector state in the compacted state topic: writing snapshots, and restoring a partition's models.

The state topic is co-partitioned with the input: the models of input partition p are snapshotted to state
partition p, one record per model (key = model id), so compaction keeps exactly the latest of each.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.snapshot import SnapshotHeader, SnapshotRejected, decode_snapshot, encode_snapshot
from streamdrift.errors import ConfigError, FatalServiceError
from streamdrift.kafka.clients import KafkaClients, topic_partition, translated_errors
from streamdrift.service.records import OutRecord

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
    state: Any


class StateStore:
    def __init__(self, config: StreamdriftConfig, clients: KafkaClients, key: bytes) -> None:
        self.topic = config.topics.state
        self.clients = clients
        self.key = key
        self.restore_timeout_s = config.processing.restore_timeout_s
        self.rejected: Counter[str] = Counter()
        # Restore progress, for the metrics: state records read, and the size of the latest restore.
        self.restored_records = 0
        self.records_to_restore = 0
        self.log = structlog.get_logger("streamdrift.state")

    def snapshot_record(
        self, model_id: str, topic: str, partition: int, offset: int, state: Any
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

    def restore(self, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], list[RestoredModel]]:
        """Read these input partitions' state partitions to their end: the latest valid snapshot per model.

        Raises `FatalServiceError` when reading makes no progress for `restore_timeout_s`.
        """
        wanted = {partition for _topic, partition in partitions}
        latest = self._read_to_end(sorted(wanted)) if wanted else {}
        restored: dict[tuple[str, int], list[RestoredModel]] = {tp: [] for tp in partitions}
        for (_partition, model_key), value in latest.items():
            if value is None:
                continue  # a tombstone: the model was deleted
            try:
                header, state = decode_snapshot(value, self.key, RIVER_VERSION)
            except SnapshotRejected as rejected:
                self.rejected[rejected.reason] += 1
                self.log.warning(
                    "state snapshot rejected; the model starts fresh",
                    model_id=model_key.decode(errors="replace"),
                    reason=rejected.reason,
                    detail=str(rejected),
                )
                continue
            home = (header.topic, header.partition)
            if home in restored:
                restored[home].append(
                    RestoredModel(model_id=header.model_id, offset=header.offset, state=state)
                )
        return restored

    def _read_to_end(self, partitions: list[int]) -> dict[tuple[int, bytes], bytes | None]:
        consumer = self.clients.consumer(
            group_id=None, max_poll_records=10_000, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )  # fmt: skip
        latest: dict[tuple[int, bytes], bytes | None] = {}
        try:
            with translated_errors("restoring state"):
                tps = [topic_partition(self.topic, p) for p in partitions]
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                end = consumer.end_offsets(tps)  # read_committed: the last stable offset
            total = sum(end.values())
            self.records_to_restore = total
            self.log.info("restoring state", partitions=partitions, records_to_read=total)
            started = last_progress = last_log = time.monotonic()
            done = 0
            while True:
                with translated_errors("restoring state"):
                    remaining = [tp for tp in tps if consumer.position(tp) < end[tp]]
                if not remaining:
                    break
                with translated_errors("restoring state"):
                    batch = consumer.poll(timeout_ms=500)
                now = time.monotonic()
                if batch:
                    last_progress = now
                for records in batch.values():
                    for record in records:
                        if record.key is not None:
                            latest[(record.partition, record.key)] = record.value
                    done += len(records)
                    self.restored_records += len(records)
                if now - last_progress > self.restore_timeout_s:
                    raise FatalServiceError(
                        f"state restore made no progress for {self.restore_timeout_s:.0f} s "
                        f"({done} of about {total} records read from {self.topic})"
                    )
                if now - last_log >= PROGRESS_LOG_EVERY_S:
                    self.log.info("restoring state", read=done, of=total)
                    last_log = now
            self.log.info(
                "state restored", partitions=partitions, records=done, models=len(latest),
                seconds=round(time.monotonic() - started, 2),
            )  # fmt: skip
            return latest
        finally:
            consumer.close()
