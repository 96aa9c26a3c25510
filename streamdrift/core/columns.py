"""Armed tracks fed a column at a time: one model's events of a batch, without a Python step per value.

In a calm stream nearly every value goes to an armed track (tracks.py), whose update is River's own call
and nothing else. Over the leading events of a model's batch where that holds for every value (the *plain
prefix*: only numeric features without bounds, finite floats or nulls, no new feature, nothing but armed
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
from collections.abc import Iterable, Sequence
from itertools import compress, count, repeat
from operator import attrgetter, methodcaller
from typing import Final

from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.tracks import TYPE_MISMATCH_SIGNAL, ModelMonitor, SignalTrack

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


def take_columns(model: ModelMonitor, events: Sequence[InferenceEvent]) -> int:
    """Feed the plain prefix of `events` (all of one model, in order) to its armed tracks.

    Returns how many leading events are done. 0 means none is: either there was nothing to take, or a
    column drifted and its tracks now replay (see the module docstring); the caller runs every event then.
    """
    end = len(events)
    if end < MIN_COLUMN_EVENTS or model.join is not None or model.window.opened_at is not None:
        return 0
    known, tracks = model.features, model.tracks
    if not known or TYPE_MISMATCH_SIGNAL not in tracks:
        return 0  # the first events of a model make its tracks
    mismatch = tracks[TYPE_MISMATCH_SIGNAL]
    if not _armed(mismatch):
        return 0
    features = list(map(_FEATURES, events))
    plain_dicts = set(map(type, features)) == {dict}  # as decoded: then `dict.get` runs from C
    end = _first_not_none(list(map(_LABEL, events)), end)  # an error signal to feed
    # (its missing track, its numeric track, its values, whether they are all finite floats)
    columns: list[tuple[SignalTrack | None, SignalTrack | None, list[Scalar], bool]] = []
    absent = False
    for name, watch in known.items():
        missing, numeric = watch.missing, watch.numeric if watch.plain else None
        if end == 0 or watch.bounds is not None or not (_armed(missing) and _armed(numeric)):
            return 0  # bounds: every event counts for out-of-range
        head = features[:end]
        column: list[Scalar] = (
            list(map(dict.get, head, repeat(name), repeat(_ABSENT)))
            if plain_dicts
            else [values.get(name, _ABSENT) for values in head]
        )
        if watch.plain and set(map(type, column)) == _FLOAT and math.isfinite(sum(column)):  # type: ignore[arg-type]
            columns.append((missing, numeric, column, True))  # the common case
            continue
        if _ABSENT in column:
            absent = True
            column = [None if value is _ABSENT else value for value in column]  # absent or null: missing
        # A numeric feature takes finite floats; a feature whose type is not settled, or a categorical
        # one, only its missing signal while it is null.
        end = _plain(column, end) if watch.plain else _first_not_none(column, end)
        columns.append((missing, numeric, column, False))
    # A new feature ends the prefix. An event with every known feature and as many keys has no other one:
    # that check is cheap; the exact one runs only when it fails.
    if absent or set(map(len, features[:end])) != {len(known)}:
        end = _first_false(list(map(known.keys().__ge__, map(_KEYS, features[:end]))), end)
    for name in ("prediction", "score"):
        outputs: list[Scalar] = list(map(attrgetter(name), events[:end]))
        track = tracks.get(name)
        # Made at its first value; a string prediction has a signal per class.
        end = _plain(outputs, end) if name in tracks and _armed(track) else _first_not_none(outputs, end)
        columns.append((None, track, outputs, False))
    if end == 0:
        return 0
    jobs: list[tuple[SignalTrack, Iterable[float], int]] = []
    if mismatch is not None:
        jobs.append((mismatch, repeat(0.0, end), end))
    for missing, numeric, column, floats in columns:
        del column[end:]
        nulls = not floats and None in column
        if missing is not None:
            flags = [1.0 if value is None else 0.0 for value in column] if nulls else repeat(0.0, end)
            jobs.append((missing, flags, end))
        if numeric is not None:
            present = [value for value in column if value is not None] if nulls else column
            if present:
                jobs.append((numeric, present, len(present)))  # type: ignore[arg-type]  # floats (_plain)
    outcomes = []
    for track, column_values, size in jobs:
        # River's update over the column from C; `compress` yields the index of its first True, and `map`
        # is lazy, so River stops at the drift.
        drift = next(compress(count(), map(track.fast, column_values)), None)  # type: ignore[arg-type]
        outcomes.append((track, size if drift is None else drift + 1, drift is not None))
    if any(drifted for _, _, drifted in outcomes):
        for track, taken, drifted in outcomes:
            track.fast = ReplayLane(track, taken, drifted)
        return 0
    for track, taken, _ in outcomes:
        track.seen += taken
    model.events += end
    return end


_KEYS: Final = methodcaller("keys")
_FEATURES: Final = attrgetter("features")
_LABEL: Final = attrgetter("label")
_ABSENT: Final = object()  # a feature the event does not have (null is None)
_NULL: Final = type(None)
_FLOAT_OR_NULL: Final = frozenset((float, _NULL))
_FLOAT: Final = frozenset((float,))


def _armed(track: SignalTrack | None) -> bool:
    return track is None or track.fast is not None


def _first_false(flags: list[bool], end: int) -> int:
    return end if all(flags) else min(flags.index(False), end)


def _first_not_none(values: list[Scalar], end: int) -> int:
    if values.count(None) == len(values):
        return end
    return min(next(i for i, value in enumerate(values) if value is not None), end)


def _plain(values: list[Scalar], end: int) -> int:
    """The index of the first value before `end` that is neither null nor a finite float."""
    head = values if end >= len(values) else values[:end]
    types = set(map(type, head))
    if types <= _FLOAT_OR_NULL:
        present = [value for value in head if value is not None] if _NULL in types else head
        if math.isfinite(sum(present)):  # type: ignore[arg-type]  # floats
            return end  # a NaN or an infinity makes the sum one; so may an overflow: checked below
    for index, value in enumerate(head):
        if value is not None and (type(value) is not float or value - value != 0.0):
            return index
    return end
