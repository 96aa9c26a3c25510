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

from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.windows import Cells, ReferenceWindow, WindowPolicy, WindowResult

Segment = tuple[str, str]  # (feature, value)


def segment_value(value: Scalar) -> str | None:
    """A feature's value as a segment value (as the profile keys it): a string, or a boolean's name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else None


class ModelWindows:
    """The open windows of one model: `whole`, and one per segment value the profile has."""

    __slots__ = ("features", "segments", "whole")

    def __init__(self, whole: ReferenceWindow, segments: Mapping[Segment, ReferenceWindow]) -> None:
        self.whole = whole
        self.segments = dict(segments)
        self.features = tuple(sorted({feature for feature, _value in self.segments}))

    def add(self, event: InferenceEvent, source: RecordSource) -> list[WindowResult]:
        results = self.whole.add(event, source)
        for feature in self.features:
            value = segment_value(event.features.get(feature))
            window = None if value is None else self.segments.get((feature, value))
            if window is not None:
                results += window.add(event, source)
        return results

    def export(self) -> dict[str, Any]:
        """Plain containers: the whole window's export, and each segment's as [feature, value, export]."""
        return {
            "whole": self.whole.export(),
            "segments": [[f, v, window.export()] for (f, v), window in self.segments.items()],
        }

    def restore(self, saved: Mapping[str, Any] | Sequence[Any]) -> None:
        """Take over saved windows of the same profile; a window saved before segments were (a bare window's
        export) is the whole window's. A segment no longer configured is dropped; a new one starts empty."""
        if not isinstance(saved, Mapping):
            self.whole.restore(saved)
            return
        self.whole.restore(saved["whole"])
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
