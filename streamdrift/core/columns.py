"""Armed tracks fed a column at a time: one model's events of a batch, without a Python step per value.

In a calm stream nearly every value goes to an armed track (tracks.py), whose update is River's own call
and nothing else. Over the leading events of a model's batch where that holds for every value (the *plain
prefix*: only numeric features without bounds, finite numbers or nulls, no new feature, nothing but armed
tracks to feed), each armed track takes its whole column at once, River called from C (`map`) and stopped
at its first drift.

- No drift in any column: the prefix is done; each track counts its values in one addition.
- A drift: every track that took values gets a `ReplayLane` that answers, value by value, what River
  already answered, and the caller runs the events one at a time as usual. The drift then takes the full
  path at its own event, with the model's clock, cooldowns, episodes and alerts exactly as one event at a
  time would have them. A track's River state is only read when that track alerts, and a drifted column
  stopped at its drift, so nothing sees a state ahead of its event.

Anything else (a first value, a category, a string prediction, a label, an open model window, a detector
without a lane) ends the prefix there: the rest goes one event at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import compress, count, repeat
from operator import attrgetter, itemgetter, methodcaller
from typing import Any, Final

from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.tracks import TYPE_MISMATCH_SIGNAL, FeatureWatch, ModelMonitor, SignalTrack

# Below this many events of one model in a batch, the columns' setup costs more than they save.
MIN_COLUMN_EVENTS: Final = 8


class ReplayLane:
    """Stands in for an armed track's lane while the events its column covered are run one at a time:
    `taken` answers, all False but the last, which is whether River drifted there. Then the track has
    River's lane back."""

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


# A signal's track, and the values it takes over the events (a column) and how many there are.
Job = tuple[SignalTrack, Iterable[float], int]
# A feature's or an output's missing-signal track, numeric track, and its raw values over the events.
Column = tuple[SignalTrack | None, SignalTrack | None, Sequence[Scalar]]


def take_columns(model: ModelMonitor, events: Sequence[InferenceEvent]) -> int:
    """Feed the plain prefix of `events` (all of one model, in order) to its armed tracks.

    Returns how many leading events are done. 0 means none is: either there was nothing to take, or a
    column drifted and its tracks now replay (see the module docstring); the caller runs every event then.
    """
    if len(events) < MIN_COLUMN_EVENTS or not _only_armed_tracks(model):
        return 0
    end, columns = _plain_prefix(model, events)
    if end == 0:
        return 0
    outcomes = []
    for track, values, size in _jobs(model.tracks[TYPE_MISMATCH_SIGNAL], columns, end):
        # River's update over the column from C; `compress` yields the index of its first True, and `map`
        # is lazy, so River stops at the drift.
        drift = next(compress(count(), map(track.fast, values)), None)  # type: ignore[arg-type]
        outcomes.append((track, size if drift is None else drift + 1, drift is not None))
    if any(drifted for _, _, drifted in outcomes):
        for track, taken, drifted in outcomes:
            track.fast = ReplayLane(track, taken, drifted)
        return 0
    for track, taken, _ in outcomes:
        track.seen += taken
    model.events += end
    return end


def _only_armed_tracks(model: ModelMonitor) -> bool:
    """Whether every track the model's plain values would reach is armed, and nothing else is waiting:
    no late-label join, no open model window, no feature with bounds (every event counts for
    out-of-range then), and the model's first events already made its tracks."""
    if model.join is not None or model.window.opened_at is not None:
        return False
    known, tracks = model.features, model.tracks
    if not known or TYPE_MISMATCH_SIGNAL not in tracks or not _armed(tracks[TYPE_MISMATCH_SIGNAL]):
        return False
    return all(
        watch.bounds is None and _armed(watch.missing) and (not watch.plain or _armed(watch.numeric))
        for watch in known.values()
    )


def _plain_prefix(model: ModelMonitor, events: Sequence[InferenceEvent]) -> tuple[int, list[Column]]:
    """How many leading events are plain, and the columns of every feature and output over the events."""
    known, tracks = model.features, model.tracks
    end = _first_not_none(list(map(_LABEL, events)), len(events))  # a label: an error signal to feed
    end, by_feature = _feature_columns(known, list(map(_FEATURES, events[:end])), end)
    columns: list[Column] = []
    for watch, column in zip(known.values(), by_feature, strict=True):
        if watch.plain:
            end = _numbers_until(column, end)
            columns.append((watch.missing, watch.numeric, column))
        else:  # a feature whose type is not settled, or a categorical one: its missing signal while null
            end = _first_not_none(column, end)
            columns.append((watch.missing, None, column))
    for name in ("prediction", "score"):
        outputs: list[Scalar] = list(map(attrgetter(name), events[:end]))
        track = tracks.get(name)
        # Made at its first value; a string prediction has a signal per class.
        end = (
            _numbers_until(outputs, end)
            if name in tracks and _armed(track)
            else _first_not_none(outputs, end)
        )
        columns.append((None, track, outputs))
    return end, columns


def _jobs(mismatch: SignalTrack | None, columns: list[Column], end: int) -> list[Job]:
    """What each track takes over the first `end` events: a missing signal 0 or 1 per event, a numeric
    one the values present, the type-mismatch rate 0 per event (a plain event has no mismatch)."""
    jobs: list[Job] = []
    if mismatch is not None:
        jobs.append((mismatch, repeat(0.0, end), end))
    for missing, numeric, column in columns:
        head = column[:end]
        nulls = None in head
        if missing is not None:
            flags = [1.0 if value is None else 0.0 for value in head] if nulls else repeat(0.0, end)
            jobs.append((missing, flags, end))
        if numeric is not None:
            present = [value for value in head if value is not None] if nulls else head
            if present:
                jobs.append((numeric, present, len(present)))  # type: ignore[arg-type]  # numbers
    return jobs


def _feature_columns(
    known: dict[str, FeatureWatch], features: list[Mapping[str, Scalar]], end: int
) -> tuple[int, list[Sequence[Scalar]]]:
    """Each known feature's values over the events (None where absent or null), and where the first event
    with a feature not known yet is, if before `end`."""
    names = tuple(known)
    try:  # every event has every known feature: one C call per event reads them all
        if len(names) == 1:
            columns: list[Sequence[Scalar]] = [list(map(itemgetter(names[0]), features))]
        else:
            columns = list(zip(*map(itemgetter(*names), features), strict=True))
    except KeyError:
        columns = []
        for name in names:
            column: list[Any] = [values.get(name, _ABSENT) for values in features]
            columns.append([None if value is _ABSENT else value for value in column])
        # The exact check: an event whose keys are not all known.
        return _first_false(list(map(known.keys().__ge__, map(_KEYS, features))), end), columns
    # With every known feature, an event has a new one when it has more keys.
    sizes = list(map(len, features))
    if max(sizes, default=0) > len(names):
        end = min(end, next(i for i, size in enumerate(sizes) if size > len(names)))
    return end, columns


_KEYS: Final = methodcaller("keys")
_ABSENT: Final = object()  # a feature an event does not have (null is None)
_FEATURES: Final = attrgetter("features")
_LABEL: Final = attrgetter("label")


def _armed(track: SignalTrack | None) -> bool:
    return track is None or track.fast is not None


def _first_false(flags: list[bool], end: int) -> int:
    return end if all(flags) else min(flags.index(False), end)


def _first_not_none(values: Sequence[Scalar], end: int) -> int:
    if values.count(None) == len(values):
        return end
    return min(next(i for i, value in enumerate(values) if value is not None), end)


def _numbers_until(values: Sequence[Scalar], end: int) -> int:
    """The index of the first value before `end` that is neither null nor a finite number.

    An int or a bool goes to a numeric signal as its float, the value River takes from it anyway; text
    (a type mismatch, or for a prediction a class) and NaN or infinity (skipped and counted) do not.
    """
    head = values if end >= len(values) else values[:end]
    try:
        if math.isfinite(sum(head)):  # type: ignore[arg-type]
            return end  # a NaN or an infinity makes the sum one; so may an overflow: checked below
    except TypeError:
        pass  # a null or text
    for index, value in enumerate(head):
        if value is None or type(value) in (int, bool):
            continue
        if type(value) is not float or value - value != 0.0:
            return index
    return end
