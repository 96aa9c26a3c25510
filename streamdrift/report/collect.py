"""What a replay report needs from a run, in bounded memory: per model and signal, the values' rolling mean
(downsampled), how many values the detector was fed, and where the published alerts fell.

Pure Python: no plotting here, so collecting costs nothing when matplotlib is absent or unused.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from streamdrift.core.alert import DriftAlert
from streamdrift.core.detectors import NO_CHANGE
from streamdrift.report.defaults import DEFAULT_MAX_PLOTS, DEFAULT_ROLLING_WINDOW

DEFAULT_MAX_POINTS = 2_000
DEFAULT_MAX_MARKS = 5_000
AUTO_PLOTS = 12  # with no --signals: the alerted signals, topped up with the busiest ones to this many


class RollingMean:
    """A stream's rolling mean over its last `window` values, kept as at most `max_points` block averages.

    Each point is the average of the rolling mean over one block of `stride` consecutive indices; when the
    points fill up, neighbours are merged and the stride doubles. Memory is `window + max_points` floats
    however long the stream, and every value still counts towards some point (no value is skipped, as plain
    decimation would).

    >>> series = RollingMean(window=2, max_points=4)
    >>> for value in (1.0, 3.0, 5.0):
    ...     series.add(value)
    >>> series.points()  # rolling means 1, 2, 4, one point per index while there is room
    ([0.0, 1.0, 2.0], [1.0, 2.0, 4.0])
    >>> for value in (7.0, 9.0, 11.0):  # rolling means 6, 8, 10: the fourth point halves the series
    ...     series.add(value)
    >>> series.stride, series.points()  # x is the centre of the indices a point averages
    (2, ([0.5, 2.5, 4.5], [1.5, 5.0, 9.0]))
    """

    __slots__ = (
        "_block_count",
        "_block_sum",
        "_points",
        "_pos",
        "_ring",
        "_sum",
        "max_points",
        "stride",
        "window",
    )

    def __init__(self, *, window: int = DEFAULT_ROLLING_WINDOW, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if max_points < 2 or max_points % 2:
            raise ValueError(f"max_points must be an even number >= 2, got {max_points}")
        self.window = window
        self.max_points = max_points
        self.stride = 1
        self._ring = array("d")  # the last `window` values, filled lazily: short streams stay small
        self._pos = 0
        self._sum = 0.0
        self._points = array("d")
        self._block_sum = 0.0
        self._block_count = 0

    def add(self, value: float) -> None:
        ring = self._ring
        if len(ring) < self.window:
            ring.append(value)
            self._sum += value
        else:
            pos = self._pos
            self._sum += value - ring[pos]
            ring[pos] = value
            pos += 1
            if pos == self.window:
                pos = 0
                # Re-anchor once per lap: add-and-subtract rounding would otherwise build up over millions.
                self._sum = math.fsum(ring)
            self._pos = pos
        self._block_sum += self._sum / len(ring)
        self._block_count += 1
        if self._block_count == self.stride:
            self._points.append(self._block_sum / self.stride)
            self._block_sum = 0.0
            self._block_count = 0
            if len(self._points) == self.max_points:
                self._halve()

    def _halve(self) -> None:
        points = self._points
        self._points = array("d", ((points[i] + points[i + 1]) / 2 for i in range(0, len(points), 2)))
        self.stride *= 2

    @property
    def floats_held(self) -> int:
        """Memory in floats: the window's values and the points, at most `window + max_points`."""
        return len(self._ring) + len(self._points)

    def __len__(self) -> int:
        """Points held, the block still being filled included: at most `max_points`."""
        return len(self._points) + (1 if self._block_count else 0)

    def points(self) -> tuple[list[float], list[float]]:
        """(index, rolling mean) of every point; x is the centre of the block of indices it averages."""
        stride = self.stride
        offset = (stride - 1) / 2
        xs = [k * stride + offset for k in range(len(self._points))]
        ys = list(self._points)
        if self._block_count:
            xs.append(len(self._points) * stride + (self._block_count - 1) / 2)
            ys.append(self._block_sum / self._block_count)
        return xs, ys


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertMark:
    """Where one published alert fell: the value's index in its signal's stream, and the record's offset."""

    index: int
    offset: int


class AlertTally:
    """The published alerts of one level on one signal: exact count, first and last; marks up to a cap."""

    __slots__ = ("count", "first", "last", "marks", "max_marks")

    def __init__(self, max_marks: int) -> None:
        self.count = 0
        self.first: AlertMark | None = None
        self.last: AlertMark | None = None
        self.marks: list[AlertMark] = []  # the first `max_marks`: past that a plot is solid marks anyway
        self.max_marks = max_marks

    def add(self, mark: AlertMark) -> None:
        self.count += 1
        if self.first is None:
            self.first = mark
        self.last = mark
        if len(self.marks) < self.max_marks:
            self.marks.append(mark)


class SignalHistory:
    """Everything the report shows about one signal of one model."""

    __slots__ = (
        "detections",
        "drifts",
        "last_level",
        "model_id",
        "observations",
        "rolling",
        "signal",
        "warnings",
    )

    def __init__(self, model_id: str, signal: str, *, window: int, max_points: int, max_marks: int) -> None:
        self.model_id = model_id
        self.signal = signal
        self.observations = 0  # values fed to the detector
        self.detections = 0  # the detector's own drifts and warnings, published or not (cooldown, mutes)
        self.last_level = NO_CHANGE
        self.rolling = RollingMean(window=window, max_points=max_points)
        self.drifts = AlertTally(max_marks)
        self.warnings = AlertTally(max_marks)

    @property
    def name(self) -> str:
        return f"{self.model_id}/{self.signal}"

    @property
    def alerts(self) -> int:
        return self.drifts.count + self.warnings.count

    @property
    def suppressed(self) -> int:
        """Detections that were not published: held back by a cooldown or a mute."""
        return self.detections - self.alerts


class ReportCollector:
    """Watches a replay: `observe` goes in as `Monitor.observer`, `record_alert` takes each published alert.

    `record_alert` must see an alert before the next event is processed (as `replay()` yields them): the
    alert's index in its signal's stream is the index of that signal's latest value.
    """

    def __init__(
        self,
        *,
        rolling_window: int = DEFAULT_ROLLING_WINDOW,
        max_points: int = DEFAULT_MAX_POINTS,
        max_marks: int = DEFAULT_MAX_MARKS,
    ) -> None:
        RollingMean(window=rolling_window, max_points=max_points)  # checks the settings once, up front
        self.rolling_window = rolling_window
        self.max_points = max_points
        self.max_marks = max_marks
        self._histories: dict[tuple[str, str], SignalHistory] = {}

    def observe(self, model_id: str, signal: str, index: int, value: float, level: int) -> None:
        history = self._histories.get((model_id, signal))
        if history is None:
            history = self._histories[model_id, signal] = SignalHistory(
                model_id,
                signal,
                window=self.rolling_window,
                max_points=self.max_points,
                max_marks=self.max_marks,
            )
        history.observations += 1
        history.rolling.add(value)
        history.last_level = level
        if level != NO_CHANGE:
            history.detections += 1

    def record_alert(self, alert: DriftAlert) -> None:
        if alert.level == "resolved" or alert.detector_type in ("new_category", "model"):
            return  # not a detector's detection: nothing to mark on a signal's plot
        history = self._histories.get((alert.model_id, alert.signal))
        if history is None or history.last_level == NO_CHANGE:
            raise ValueError(
                f"alert on {alert.model_id}/{alert.signal} at offset {alert.source.offset} does not follow "
                "a detection: record each alert before the next event is processed"
            )
        mark = AlertMark(index=history.observations - 1, offset=alert.source.offset)
        (history.drifts if alert.level == "drift" else history.warnings).add(mark)

    def histories(self) -> list[SignalHistory]:
        """Every signal seen, ordered by model and signal."""
        return [self._histories[key] for key in sorted(self._histories)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalSelection:
    """The signals to plot, and how many qualified before `max_plots` cut the list."""

    chosen: tuple[SignalHistory, ...]
    qualified: int
    unmatched_patterns: tuple[str, ...] = ()

    @property
    def truncated(self) -> bool:
        return self.qualified > len(self.chosen)


def select_signals(
    histories: Sequence[SignalHistory],
    patterns: Sequence[str] | None = None,
    *,
    max_plots: int = DEFAULT_MAX_PLOTS,
    auto_plots: int = AUTO_PLOTS,
) -> SignalSelection:
    """The signals worth a plot, in model/signal order, never more than `max_plots`.

    With `patterns` (globs on `model_id/signal`): the matching signals. Without: every signal with an alert,
    topped up with the signals fed the most values until there are `auto_plots`. When too many qualify, the
    ones with the most alerts (then the most values) are kept.
    """
    if patterns:
        qualified = [h for h in histories if any(fnmatchcase(h.name, p) for p in patterns)]
        unmatched = tuple(p for p in patterns if not any(fnmatchcase(h.name, p) for h in histories))
    else:
        qualified = [h for h in histories if h.alerts]
        unmatched = ()
        if len(qualified) < auto_plots:
            quiet = sorted((h for h in histories if not h.alerts), key=lambda h: (-h.observations, h.name))
            qualified += quiet[: auto_plots - len(qualified)]
    ranked = sorted(qualified, key=lambda h: (-h.alerts, -h.observations, h.name))
    chosen = sorted(ranked[:max_plots], key=lambda h: (h.model_id, h.signal))
    return SignalSelection(chosen=tuple(chosen), qualified=len(qualified), unmatched_patterns=unmatched)
