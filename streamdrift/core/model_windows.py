"""A model's reference windows (windows.py): the window of all its events, and one per segment value; and the
plan that makes them from the reference profile.

A segment is a value of a categorical feature the config names (`reference.segments`, e.g. `country`) among
the values the profile kept for it (its `top_k` most frequent in the reference period). Each segment value
has its own window, of the same length in the segment's own events (or the same record-time stretches), and
is compared with the segment's own reference: "drift only for country=BR" is found and named, and a segment
that always differs from the whole (BR's amounts are not the US's) does not alarm for that. An event whose
segment value the profile did not keep counts in the whole window only.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent
from streamdrift.core.reference import category_of
from streamdrift.core.windows import Cells, ReferenceWindow, WindowPolicy, WindowResult

Segment = tuple[str, str]  # (feature, value)


class ModelWindows:
    """The open windows of one model: `whole`, and one per segment value the profile has; and, per signal,
    what the whole window said when it last closed (`verdict`)."""

    __slots__ = ("features", "segments", "verdicts", "whole")

    def __init__(self, whole: ReferenceWindow, segments: Mapping[Segment, ReferenceWindow]) -> None:
        self.whole = whole
        self.segments = dict(segments)
        self.features = tuple(sorted({feature for feature, _value in self.segments}))
        self.verdicts: dict[str, dict[str, Any]] = {}

    def add(self, event: InferenceEvent, source: RecordSource, at_event: int = 0) -> list[WindowResult]:
        """The event into its windows; the results of those it closed. `at_event`: the model's event count,
        which dates the verdicts."""
        results = self.whole.add(event, source)
        if results:
            self._judged(results, at_event)
        for feature in self.features:
            value = category_of(event.features.get(feature))  # as the profile keys its segments
            window = None if value is None else self.segments.get((feature, value))
            if window is not None:
                results += window.add(event, source)
        return results

    def _judged(self, results: list[WindowResult], at_event: int) -> None:
        """Per signal of the closed whole window: whether it still differs from the reference (a test over its
        threshold), with the first test that says so (or the first test), and the window it ran on."""
        by_signal: dict[str, list[WindowResult]] = {}
        for result in results:
            by_signal.setdefault(result.signal, []).append(result)
        for signal, found in by_signal.items():
            telling = next((r for r in found if r.crossed), found[0])
            offsets = {where: list(span) for where, span in telling.offsets.items()}
            self.verdicts[signal] = {
                "at": at_event,
                "ended": "adapted" if telling.crossed else "back_to_reference",
                "test": telling.test, "statistic": telling.statistic, "p_value": telling.p_value,
                "threshold": telling.threshold,
                "window": {"events": telling.events, "offsets": offsets},
            }  # fmt: skip

    def verdict(self, signal: str, after: int) -> dict[str, Any] | None:
        """Why an episode of the signal whose last drift was at the model's event `after` ends: what the
        latest whole window closed since then said (None: none closed since, or the signal is not profiled).
        `ended` is `back_to_reference` when no test crossed its threshold, `adapted` (the detector took the
        new level for normal, the data still differs from the reference) when one did."""
        found = self.verdicts.get(signal)
        if found is None or found["at"] <= after:
            return None
        return {name: value for name, value in found.items() if name != "at"}

    def export(self) -> dict[str, Any]:
        """Plain containers: the whole window's export, each segment's as [feature, value, export], and the
        verdicts as JSON. (As JSON, so that a restored model's state pickles to the same bytes as an
        uninterrupted one's: pickle writes a string once per object, and restored verdicts hold other string
        objects than new ones.)"""
        return {
            "whole": self.whole.export(),
            "segments": [[f, v, window.export()] for (f, v), window in self.segments.items()],
            "verdicts": orjson.dumps(self.verdicts),
        }

    def restore(self, saved: Mapping[str, Any] | Sequence[Any]) -> None:
        """Take over saved windows of the same profile; a window saved before segments were (a bare window's
        export) is the whole window's. A segment no longer configured is dropped; a new one starts empty."""
        if not isinstance(saved, Mapping):
            self.whole.restore(saved)
            return
        if self.whole.restore(saved["whole"]) and saved.get("verdicts"):  # not those of another profile
            self.verdicts = orjson.loads(saved["verdicts"])
        for feature, value, window in saved.get("segments", ()):
            mine = self.segments.get((feature, value))
            if mine is not None:
                mine.restore(window)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferencePlan:
    """The reference profile's models (their documents, reference.py), which of them have windows, how long
    the windows are and what they test, and the features whose values are segments. `version` names the
    profile (a hash of its bytes)."""

    models: Mapping[str, Mapping[str, Any]]
    policy: WindowPolicy
    version: str
    selected: str = "*"
    segments: tuple[str, ...] = ()

    def window_for(self, model_id: str) -> ModelWindows | None:
        """New windows for the model, if it is selected and in the profile."""
        model = self.models.get(model_id)
        if model is None or not fnmatch.fnmatchcase(model_id, self.selected):
            return None
        segments: dict[Segment, ReferenceWindow] = {}
        profiled = model.get("segments") or {}
        for feature in self.segments:
            for value, segment in (profiled.get(feature) or {}).items():
                segments[(feature, value)] = self._window(segment, (feature, value))
        return ModelWindows(self._window(model, None), segments)

    def _window(self, profiled: Mapping[str, Any], segment: Segment | None) -> ReferenceWindow:
        cells = {name: Cells(signal) for name, signal in profiled["signals"].items()}
        return ReferenceWindow(cells, self.policy, self.version, segment)

    def params(self, threshold: float) -> dict[str, Any]:
        """The alert's `detector.params`."""
        policy = self.policy
        size = {"events": policy.events} if policy.events is not None else {"seconds": policy.seconds}
        return {"threshold": threshold, "window": size, "profile": self.version}
