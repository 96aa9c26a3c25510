"""Repartitioning unkeyed input (`processing.repartition: true`).

Records of the input topics are forwarded, keyed by model_id, to an internal topic; detection reads that
topic, so each model again has one home partition and one state partition. Forwarding belongs to the
interval's transaction like everything else: a forwarded record and its input offset commit together.

A model's events are spread over several input partitions, and the order in which fetches return them is
an accident. So this member forwards the records of its input partitions merged in timestamp order, as
Kafka Streams merges a task's input partitions: the next record forwarded is the oldest buffered one, and
while a partition has nothing buffered and is not read to its end, the merge waits for it, at most
`repartition_wait_ms`, then goes on without it. A producer stamping events in the order they happened thus
gets them to the detectors in that order (ties go to the lower partition). Partitions owned by other
members are merged there, independently: order across members is best-effort.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, Protocol, TypeVar


class Timestamped(Protocol):
    @property
    def timestamp(self) -> int: ...


Key = TypeVar("Key", bound=Hashable)
Rec = TypeVar("Rec", bound=Timestamped)


class TimestampMerge(Generic[Key, Rec]):
    """Buffers records per partition and releases them oldest first (see module doc). No I/O, no clock."""

    def __init__(self, wait_s: float, max_buffered: int) -> None:
        self.wait_s = wait_s
        self.max_buffered = max_buffered  # per partition; beyond it the caller pauses the partition
        self.buffers: dict[Key, deque[Rec]] = {}
        # Per partition found empty while not read to its end: since when. The merge waits for it until
        # wait_s has passed since then.
        self.silent_since: dict[Key, float] = {}

    def assign(self, partitions: Iterable[Key]) -> None:
        """Take part in the merge from now on (with an empty buffer)."""
        for partition in partitions:
            self.buffers.setdefault(partition, deque())

    def drop(self, partition: Key) -> None:
        """Leave the merge, forgetting what was buffered (it is read again from the committed offset)."""
        self.buffers.pop(partition, None)
        self.silent_since.pop(partition, None)

    def add(self, partition: Key, records: Iterable[Rec]) -> None:
        self.buffers[partition].extend(records)
        self.silent_since.pop(partition, None)

    def full(self) -> list[Key]:
        """Partitions holding max_buffered records or more: the caller pauses them until they drain."""
        return [p for p, buffer in self.buffers.items() if len(buffer) >= self.max_buffered]

    def drain(self, caught_up: Callable[[Key], bool], now: float) -> list[Rec]:
        """Release the records that may go now, in merge order.

        `caught_up(p)`: partition p has been read to its end, so an empty buffer means nothing is missing.
        """
        known: dict[Key, bool] = {}

        def holds_back(partition: Key) -> bool:
            """An empty partition that may still deliver older records, waited for less than wait_s."""
            if partition not in known:
                known[partition] = caught_up(partition)
            if known[partition]:
                self.silent_since.pop(partition, None)
                return False
            return now - self.silent_since.setdefault(partition, now) < self.wait_s

        buffers = self.buffers
        released: list[Rec] = []
        if any(holds_back(p) for p, buffer in buffers.items() if not buffer):
            return released
        heads = [p for p, buffer in buffers.items() if buffer]
        while heads:
            partition = min(heads, key=lambda p: (buffers[p][0].timestamp, p))
            buffer = buffers[partition]
            released.append(buffer.popleft())
            if not buffer:
                heads.remove(partition)
                if holds_back(partition):
                    break
        return released
