"""Events of many models fed to their armed tracks in one pass: a batch spread over 10,000 models costs about
what the same batch of 100 models costs, and no Python step runs per value.

A model is *steady* when every track its plain values reach is armed (tracks.py: River's own update is all a
value needs) and nothing else waits on its events: no late-label join, no open model window, no class
predictions, only numeric features without bounds. Its `Steady` lists those tracks' lanes in a fixed order:
type mismatch, each feature's missing signal, each feature's numeric signal, prediction, score (a disabled
signal has no lane).

An event of a steady model is *plain* when it has no label, exactly the model's known features, finite
numbers for them (an int or a bool goes as its float, which is what River takes from it anyway) and a numeric
prediction and a score exactly when the model has those tracks: then its values are, lane for lane, 0 for
the type mismatch, 0 for each missing signal, and its numbers. Consecutive plain events are queued and fed
in one call from C, `map(call, lanes, values)`, which stops at the first True. Every other event flushes the
queue and takes the full path (`Monitor.process`) in record order, so each model's events reach its
detectors in their order and no full-path event sees a detector ahead of it.

A True is a drift. The queue's events before it are done; the values of its own event up to it were fed
(False, then True): that event takes the full path with `ReplayLane`s answering for those tracks what River
already answered, so its alerts, episodes and cooldowns come out exactly as one event at a time would have
them; the events after it are queued again (its model is no longer steady: the drifted track is disarmed).

Counts are settled lazily: a steady model's fast events add to `Steady.pending`, and `settle` adds them to
each lane's track (`seen`) and to the model's event count before anything reads them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping
from itertools import compress, count
from operator import call, itemgetter
from typing import Final

from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.tracks import NUMERIC, TYPE_MISMATCH_SIGNAL, ModelMonitor, SignalTrack

Lane = Callable[[float], bool]

# A model found not steady is looked at again after this many more of its events (each look costs a walk
# over its signals; most models become steady within a few events and stay so).
RETRY_AFTER_EVENTS: Final = 16


class ReplayLane:
    """Stands in for an armed track's lane while an event whose values it already took runs the full path:
    it answers `taken - 1` Falses, then `drifted`, and gives the track River's lane back."""

    __slots__ = ("answer", "lane", "left", "track")

    def __init__(self, track: SignalTrack, taken: int, drifted: bool) -> None:
        assert track.fast is not None
        self.track, self.lane, self.left, self.answer = track, track.fast, taken, drifted

    def __call__(self, value: float) -> bool:
        self.left -= 1
        if self.left:
            return False
        self.track.fast = self.lane
        return self.answer


class Steady:
    """A steady model's lanes, and what a plain event of it looks like (see the module docstring)."""

    __slots__ = ("lanes", "pending", "prediction", "read", "score", "tracks", "width", "zeros")

    def __init__(
        self,
        *,
        flags: list[SignalTrack],
        numeric: list[SignalTrack],
        outputs: list[SignalTrack],
        names: tuple[str, ...],
        prediction: bool | None,
        score: bool | None,
    ) -> None:
        self.tracks = (*flags, *numeric, *outputs)
        self.lanes: tuple[Lane, ...] = tuple(track.fast for track in self.tracks)  # type: ignore[misc]
        self.zeros = (0.0,) * len(flags)  # a plain event's type mismatch and missing flags
        self.width = len(names)
        # One C call reads an event's numbers in lane order (itemgetter of one name returns no tuple).
        self.read: Callable[[Mapping[str, Scalar]], tuple[Scalar, ...]] = (
            itemgetter(*names) if len(names) > 1 else _one(names[0])
        )
        # None: the model has no such track yet, so a plain event has no such value; True: a lane takes it;
        # False: the signal is off (an event's value is ignored, but it must have one to be plain).
        self.prediction, self.score = prediction, score
        self.pending = 0  # fast events not yet counted in the tracks and the model

    def settle(self, model: ModelMonitor) -> None:
        """Count the fast events in each lane's track and in the model."""
        pending = self.pending
        if pending:
            for track in self.tracks:
                track.seen += pending
            model.events += pending
            self.pending = 0


def _one(name: str) -> Callable[[Mapping[str, Scalar]], tuple[Scalar, ...]]:
    def read(values: Mapping[str, Scalar]) -> tuple[Scalar, ...]:
        return (values[name],)

    return read


def steady(model: ModelMonitor) -> Steady | None:
    """The model's `Steady` if it is steady now, else None."""
    if model.join is not None or model.window.opened_at is not None or model.classes or not model.features:
        return None
    if model.reference is not None:  # every event counts in the reference window: the full path
        return None
    if model.pca is not None or model.performance is not None:  # per event work of their own: the full path
        return None
    tracks = model.tracks
    if TYPE_MISMATCH_SIGNAL not in tracks:
        return None
    mismatch = tracks[TYPE_MISMATCH_SIGNAL]
    flags: list[SignalTrack] = [] if mismatch is None else [mismatch]
    numeric: list[SignalTrack] = []
    for watch in model.features.values():
        if watch.kind != NUMERIC or not watch.plain or watch.numeric is None:
            return None  # a categorical feature, bounds, or a feature whose signal is off
        numeric.append(watch.numeric)
        if watch.missing is not None:
            flags.append(watch.missing)
    if len(flags) - (mismatch is not None) not in (0, len(numeric)):
        return None  # some missing signals off, not all
    outputs: list[SignalTrack] = []
    present: list[bool | None] = []
    for name in ("prediction", "score"):
        track = tracks.get(name)
        present.append(None if name not in tracks else track is not None)
        if track is not None:
            outputs.append(track)
    if any(track.fast is None for track in (*flags, *numeric, *outputs)):
        return None
    return Steady(
        flags=flags, numeric=numeric, outputs=outputs, names=tuple(model.features), prediction=present[0],
        score=present[1],
    )  # fmt: skip


def plain_values(shape: Steady, event: InferenceEvent) -> tuple[Scalar, ...] | None:
    """The values of `event`, lane for lane, if it is plain for its steady model (else None)."""
    features = event.features
    prediction, score = event.prediction, event.score
    if (
        event.label is not None
        or len(features) != shape.width
        or (prediction is None) is not (shape.prediction is None)
        or (score is None) is not (shape.score is None)
        or type(prediction) is str  # a class: its own signals
        or type(score) is str
    ):
        return None
    try:
        numbers = shape.read(features)
    except KeyError:
        return None  # a feature the model does not know yet
    if shape.prediction:
        numbers += (prediction,)
    if shape.score:
        numbers += (score,)
    try:
        if not math.isfinite(sum(numbers)):  # type: ignore[arg-type]
            return None  # a NaN or an infinity (or an overflow of the sum: rare, and the full path is right)
    except (TypeError, OverflowError):
        return None  # a null, text, or an int too large for a float
    return shape.zeros + numbers


class Queue:
    """Plain events waiting to be fed: every lane and value in order, and where each event's values end."""

    __slots__ = ("ends", "events", "lanes", "shapes", "values")

    def __init__(self) -> None:
        self.lanes: list[Lane] = []
        self.values: list[Scalar] = []
        self.ends: list[int] = []
        self.events: list[int] = []  # their indexes in the batch
        self.shapes: list[Steady] = []

    def __len__(self) -> int:
        return len(self.events)

    def add(self, index: int, shape: Steady, values: tuple[Scalar, ...]) -> None:
        self.lanes += shape.lanes
        self.values += values
        self.ends.append(len(self.values))
        self.events.append(index)
        self.shapes.append(shape)

    def feed(self) -> int | None:
        """Feed every queued value to its lane, stopping at the first True, and empty the queue.

        Returns None when no lane drifted; else the batch index of the event it drifted on, whose values up
        to the drift now answer from `ReplayLane`s: that event is to run the full path next, and the events
        queued after it are not fed."""
        # River's updates from C; `compress` yields the index of the first True, and `map` is lazy: River
        # stops at the drift.
        taken = map(call, self.lanes, self.values)  # type: ignore[arg-type]
        drift: int | None = next(compress(count(), taken), None)
        shapes, ends = self.shapes, self.ends
        done = len(ends) if drift is None else bisect_right(ends, drift)
        for shape in shapes[:done]:
            shape.pending += 1
        found = None
        if drift is not None:
            first = ends[done - 1] if done else 0
            tracks = shapes[done].tracks
            for position in range(first, drift + 1):
                track = tracks[position - first]
                track.fast = ReplayLane(track, 1, position == drift)
            found = self.events[done]
        self.lanes, self.values, self.ends, self.events, self.shapes = [], [], [], [], []
        return found


class SteadyModels:
    """The models steady now, with their lanes; a model found not steady is looked at again only after
    `RETRY_AFTER_EVENTS` more events of its own."""

    __slots__ = ("retry_at", "shapes")

    def __init__(self) -> None:
        self.shapes: dict[str, Steady] = {}
        self.retry_at: dict[str, int] = {}

    def find(self, model: ModelMonitor) -> Steady | None:
        """The model's lanes, looked for when it has none and its retry is due."""
        model_id = model.model_id
        if model.events < self.retry_at.get(model_id, 0):
            return None
        shape = steady(model)
        if shape is None:
            self.retry_at[model_id] = model.events + RETRY_AFTER_EVENTS
        else:
            self.shapes[model_id] = shape
        return shape

    def unsteady(self, model: ModelMonitor) -> None:
        """The model takes the full path, or its state is read: its fast events counted, its lanes gone."""
        shape = self.shapes.pop(model.model_id, None)
        if shape is not None:
            shape.settle(model)

    def forget(self, model_id: str) -> None:
        self.shapes.pop(model_id, None)
        self.retry_at.pop(model_id, None)
