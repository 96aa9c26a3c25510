"""Which alerts-topic offsets the router may commit: a record is done when every route it matched has
delivered it (or refused it for good); a partition's committed offset is the first record not done, so a
restart delivers again what was in flight and nothing is lost. Deliveries finish out of order across routes
(one receiver down does not hold the others), so each partition keeps its records in offset order and the
done prefix is taken from the front. Thread-safe: routes deliver from threads of their own."""

from __future__ import annotations

import threading
from collections import deque

from streamdrift.ports import CommitOffset, TopicPartition


class OffsetLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[TopicPartition, deque[int]] = {}  # offsets in order, done or not
        self._routes_left: dict[tuple[TopicPartition, int], int] = {}  # offsets some route still holds
        self._done_up_to: dict[TopicPartition, int] = {}  # commit here next (None yet: nothing new)

    def add(self, tp: TopicPartition, offset: int, routes: int) -> None:
        """A record read, to be delivered by `routes` routes (0: nothing to deliver, done at once)."""
        with self._lock:
            self._waiting.setdefault(tp, deque()).append(offset)
            if routes > 0:
                self._routes_left[(tp, offset)] = routes
            self._advance(tp)

    def delivered(self, tp: TopicPartition, offset: int) -> None:
        """One route is done with the record (a partition since taken away is ignored)."""
        with self._lock:
            left = self._routes_left.get((tp, offset))
            if left is None:
                return
            if left > 1:
                self._routes_left[(tp, offset)] = left - 1
                return
            del self._routes_left[(tp, offset)]
            self._advance(tp)

    def _advance(self, tp: TopicPartition) -> None:
        waiting = self._waiting[tp]
        while waiting and (tp, waiting[0]) not in self._routes_left:
            self._done_up_to[tp] = waiting.popleft() + 1

    def to_commit(self) -> dict[TopicPartition, CommitOffset]:
        """Offsets moved forward since the last call."""
        with self._lock:
            done, self._done_up_to = self._done_up_to, {}
        return {tp: CommitOffset(offset, "") for tp, offset in done.items()}

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Partitions taken away: their next owner delivers what was not committed."""
        with self._lock:
            for tp in partitions:
                self._waiting.pop(tp, None)
                self._done_up_to.pop(tp, None)
            self._routes_left = {key: n for key, n in self._routes_left.items() if key[0] not in partitions}

    def in_flight(self) -> int:
        with self._lock:
            return len(self._routes_left)
