"""Late labels: joining ground truth that arrives after the prediction, by `event_id`, per model.

Each model keeps its predictions in arrival order. A prediction waits until its label arrives (from the
labels topic, or inline in the event); then it is *resolved*. Resolved predictions leave the front of the
queue in prediction order, and only then feed the `error` signal: so the error stream, and its alerts, are
the same whatever order and delay the labels came with — the same as if every label had been inline.

The price is latency: a prediction still waiting holds back the ones after it. It waits at most `ttl_ms` of
the model's record time (the newest prediction's time minus its own), and at most `max_pending` predictions
queue per model; past either bound the oldest waiting prediction expires (it feeds nothing, and is counted).
A label that comes before its prediction (possible after a restart, when the two topics are read again at
different paces) waits for it under the same bounds. The whole join is part of the model's snapshot.

Replays: `live` says whether a record's effects were published before (False while a restored partition is
brought up to date). A resolved prediction leaves the queue live if anything it waited for was live — its
prediction, its label, the record that released it, or any release before it since the restore (`sticky`).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from streamdrift.core.alert import RecordSource

Scalar = float | int | bool | str | None

# Counters (metric labels).
JOINED = "joined"
INLINE = "inline"
EXPIRED_PREDICTIONS = "expired_predictions"
LABELS_WITHOUT_PREDICTION = "labels_without_prediction"
DUPLICATE_LABELS = "duplicate_labels"
DUPLICATE_PREDICTIONS = "duplicate_predictions"


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelPolicy:
    ttl_ms: int = 86_400_000
    max_pending: int = 10_000  # per model: predictions queued, and labels waiting for their prediction


class Awaiting:
    """A prediction in the queue."""

    __slots__ = ("event_id", "event_ms", "label", "label_live", "labelled", "live", "model_version",
                 "prediction", "source")  # fmt: skip

    def __init__(
        self,
        event_id: str | None,
        prediction: Scalar,
        source: RecordSource,
        model_version: str | None,
        event_ms: int | None,
        live: bool,
    ) -> None:
        self.event_id = event_id
        self.prediction = prediction
        self.source = source
        self.model_version = model_version
        self.event_ms = event_ms
        self.live = live
        self.label: Scalar = None
        self.labelled = False
        self.label_live = False

    @property
    def at_ms(self) -> int | None:
        return self.source.timestamp_ms if self.source.timestamp_ms is not None else self.event_ms

    def export(self) -> tuple[Any, ...]:
        s = self.source
        return (self.event_id, self.prediction, (s.topic, s.partition, s.offset, s.timestamp_ms),
                self.model_version, self.event_ms, self.labelled, self.label)  # fmt: skip


class LabelJoin:
    """One model's predictions waiting for labels, and labels waiting for predictions.

    >>> join, counts = LabelJoin(LabelPolicy()), Counter()
    >>> join.predict("a", 1, None, RecordSource(offset=0), None, None, True, counts)
    >>> join.predict("b", 0, None, RecordSource(offset=1), None, None, True, counts)
    >>> join.label("b", 1, None, True, counts), [e.event_id for e in join.release(True)]
    (None, [])
    >>> join.label("a", 1, None, True, counts), [e.event_id for e in join.release(True)]
    (None, ['a', 'b'])
    """

    __slots__ = ("early", "newest_ms", "policy", "position", "queue", "sticky", "waiting")

    def __init__(self, policy: LabelPolicy) -> None:
        self.policy = policy
        self.queue: deque[Awaiting] = deque()
        self.waiting: dict[str, Awaiting] = {}  # unlabelled predictions in the queue, by event_id
        self.early: dict[str, tuple[Scalar, int | None, bool]] = {}  # event_id -> label, its time, live
        self.newest_ms: int | None = None  # the newest prediction's record time: the TTL's clock
        self.position: int | None = None  # the next labels-topic offset this state reflects
        self.sticky = False  # a live release happened since the restore (see module doc)

    def predict(
        self,
        event_id: str | None,
        prediction: Scalar,
        label: Scalar,
        source: RecordSource,
        model_version: str | None,
        event_ms: int | None,
        live: bool,
        counts: Counter[str],
    ) -> None:
        """Queue a prediction; an inline label (not None) resolves it at once."""
        entry = Awaiting(event_id, prediction, source, model_version, event_ms, live)
        at_ms = entry.at_ms
        if at_ms is not None and (self.newest_ms is None or at_ms > self.newest_ms):
            self.newest_ms = at_ms
        if label is not None:
            entry.label, entry.labelled, entry.label_live = label, True, live
            counts[INLINE] += 1
        elif event_id is not None:
            early = self.early.pop(event_id, None)
            if early is not None:
                entry.label, entry.labelled, entry.label_live = early[0], True, early[2]
                counts[JOINED] += 1
            elif event_id in self.waiting:
                counts[DUPLICATE_PREDICTIONS] += 1
                return  # the first prediction with this id keeps it; this one cannot be told apart
            else:
                self.waiting[event_id] = entry
        else:
            return  # no id and no label: nothing to join it with, and nothing waits for it
        self.queue.append(entry)
        self._expire(live, counts)

    def label(
        self, event_id: str, label: Scalar, label_ms: int | None, live: bool, counts: Counter[str]
    ) -> int | None:
        """Resolve the waiting prediction with this id; returns its delay in ms (None when there is none)."""
        entry = self.waiting.pop(event_id, None)
        if entry is None:
            if event_id in self.early:
                counts[DUPLICATE_LABELS] += 1
            else:
                self.early[event_id] = (label, label_ms, live)
                self._expire(live, counts)
            return None
        entry.label, entry.labelled, entry.label_live = label, True, live
        counts[JOINED] += 1
        at_ms = entry.at_ms
        return None if at_ms is None or label_ms is None else label_ms - at_ms

    def release(self, live: bool) -> list[Awaiting]:
        """The resolved predictions at the queue's front, in prediction order; `live` is the trigger's."""
        queue = self.queue
        released: list[Awaiting] = []
        while queue and queue[0].labelled:
            entry = queue.popleft()
            if live or entry.live or entry.label_live or self.sticky:
                entry.live = self.sticky = True
            released.append(entry)
        return released

    def _expire(self, live: bool, counts: Counter[str]) -> None:
        """Drop the oldest unlabelled predictions past the TTL or the cap, and labels waiting too long.

        An expiry lets later predictions leave the queue: when a live record caused it, they leave live.
        """
        policy, queue, newest = self.policy, self.queue, self.newest_ms
        oldest_allowed = None if newest is None else newest - policy.ttl_ms
        while queue and not queue[0].labelled:
            head = queue[0]
            at_ms = head.at_ms
            too_old = oldest_allowed is not None and at_ms is not None and at_ms < oldest_allowed
            if not too_old and len(queue) <= policy.max_pending:
                break
            queue.popleft()
            if head.event_id is not None:
                self.waiting.pop(head.event_id, None)
            counts[EXPIRED_PREDICTIONS] += 1
            self.sticky = self.sticky or live
        early = self.early
        while early:
            event_id, (_label, label_ms, _live) = next(iter(early.items()))
            too_old = oldest_allowed is not None and label_ms is not None and label_ms < oldest_allowed
            if not too_old and len(early) <= policy.max_pending:
                break
            del early[event_id]
            counts[LABELS_WITHOUT_PREDICTION] += 1

    def export(self) -> dict[str, Any]:
        return {
            "queue": [entry.export() for entry in self.queue],
            "early": [(event_id, *waiting) for event_id, waiting in self.early.items()],
            "newest_ms": self.newest_ms,
            "position": self.position,
        }

    @classmethod
    def restored(cls, policy: LabelPolicy, saved: dict[str, Any]) -> LabelJoin:
        """The join as saved; everything restored counts as already published (not live)."""
        join = cls(policy)
        for event_id, prediction, source, model_version, event_ms, labelled, label in saved["queue"]:
            topic, partition, offset, timestamp_ms = source
            record = RecordSource(topic=topic, partition=partition, offset=offset, timestamp_ms=timestamp_ms)
            entry = Awaiting(event_id, prediction, record, model_version, event_ms, False)
            entry.label, entry.labelled = label, labelled
            join.queue.append(entry)
            if not labelled and event_id is not None:
                join.waiting[event_id] = entry
        join.early = {
            event_id: (label, label_ms, False) for event_id, label, label_ms, _live in saved["early"]
        }
        join.newest_ms, join.position = saved["newest_ms"], saved["position"]
        return join
