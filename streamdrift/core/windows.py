"""Reference windows: a model's live values in tumbling windows, each closed window compared with the model's
reference profile (reference.py) by the tests of divergence.py.

A window holds, per signal of the profile, the live counts over the profile's cells: its bins for a numeric
signal, its categories plus `other` for a categorical one (a value the profile never saw counts as `other`).
Missing values and values of the other type are not in the cells. A window closes after `events` events of
the model, or, by record time, when an event falls in the next `seconds`-long stretch (stretches aligned to
multiples of the size since the epoch; an event without a timestamp stays in the open window). Each closed
window gives, per signal with values and per test of its kind, the statistic, its p-value where the test
has one, and whether it crossed its threshold (above it; below it for a p-value); with the window's event
count and its first and last source offset per partition, enough for anyone to recompute it.

Pure and deterministic, like the rest of the core; the window's state exports to plain containers (a
snapshot) and restores, so that windows survive restarts and equal the replay's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from streamdrift.core.alert import RecordSource
from streamdrift.core.divergence import (
    Statistic,
    bin_points,
    chi_square,
    jensen_shannon,
    psi,
    wasserstein,
)
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.reference import CATEGORICAL, NUMERIC, OTHER, ModelValues

Counts = Sequence[float]
TESTS: Final[Mapping[str, Callable[[Counts, Counts], Statistic]]] = {
    "psi": psi,
    "jensen_shannon": jensen_shannon,
    "chi_square": chi_square,
}
WASSERSTEIN: Final = "wasserstein"
P_VALUE_TESTS: Final = frozenset({"chi_square"})  # their threshold is a p-value: crossed below it
TESTS_OF_KIND: Final[Mapping[str, frozenset[str]]] = {
    NUMERIC: frozenset({"psi", "jensen_shannon", WASSERSTEIN}),
    CATEGORICAL: frozenset({"psi", "jensen_shannon", "chi_square"}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowPolicy:
    """How long a window is (`events` or `seconds` of record time, one of them) and, per signal kind, the
    tests to run with their thresholds."""

    events: int | None = None
    seconds: float | None = None
    numeric: Mapping[str, float] = field(default_factory=lambda: {"psi": 0.2})
    categorical: Mapping[str, float] = field(default_factory=lambda: {"chi_square": 0.001})

    def __post_init__(self) -> None:
        if (self.events is None) == (self.seconds is None):
            raise ValueError("a window is either `events` or `seconds` long")
        if self.events is not None and self.events < 1:
            raise ValueError(f"window events must be at least 1, got {self.events}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"window seconds must be positive, got {self.seconds}")
        for kind, tests in ((NUMERIC, self.numeric), (CATEGORICAL, self.categorical)):
            unknown = sorted(set(tests) - TESTS_OF_KIND[kind])
            if unknown:
                raise ValueError(f"{kind} signals have no test {', '.join(unknown)}")

    def tests(self, kind: str) -> Mapping[str, float]:
        return self.numeric if kind == NUMERIC else self.categorical


class Cells:
    """A signal's reference cells: where a live value falls, and the reference's counts there."""

    __slots__ = ("categories", "edges", "kind", "points", "reference")

    def __init__(self, signal: Mapping[str, Any]) -> None:
        self.kind: str = signal["type"]
        if self.kind == NUMERIC:
            self.edges = np.asarray(signal["edges"], dtype=np.float64)
            self.reference: list[float] = [float(c) for c in signal["counts"]]
            self.points = bin_points(list(signal["edges"]), float(signal["min"]), float(signal["max"]))
            self.categories: dict[str, int] = {}
        else:
            self.categories = {value: i for i, value in enumerate(signal["categories"])}
            self.reference = [float(c) for c in signal["categories"].values()] + [float(signal["other"])]
            self.edges = np.empty(0)
            self.points = np.empty(0)

    @classmethod
    def of_model(cls, model: ModelValues, bins: int, top_k: int) -> dict[str, Cells]:
        return {
            name: cls(values.document(model.events, bins, top_k)) for name, values in model.signals.items()
        }

    def cell(self, value: Scalar) -> int | None:
        """The cell of a live value (None: missing, or of the other type)."""
        if self.kind == NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return None
            return int(np.searchsorted(self.edges, value, "left"))
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            return None
        return self.categories.get(value, len(self.categories)) if value != OTHER else len(self.categories)


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One test of one signal over one closed window."""

    signal: str
    test: str
    statistic: float
    p_value: float | None
    threshold: float
    crossed: bool
    values: int  # the signal's values in the window's cells
    counts: tuple[int, ...]  # per cell
    events: int  # the model's events in the window
    # Per source partition ("topic/partition", or "lines" for a file): the first and last offset (line).
    offsets: Mapping[str, tuple[int, int]]
    start_ms: int | None  # a record-time window's bounds, [start, end)
    end_ms: int | None
    segment: tuple[str, str] | None = None  # (feature, value): a window of the segment's events only


class ReferenceWindow:
    """The open window of one model."""

    __slots__ = ("cells", "counts", "events", "offsets", "policy", "profile", "reads", "segment", "start_ms")

    def __init__(
        self,
        cells: Mapping[str, Cells],
        policy: WindowPolicy,
        profile: str = "",
        segment: tuple[str, str] | None = None,
    ) -> None:
        self.cells = cells
        self.segment = segment
        self.reads = [(name, cell, reader(name)) for name, cell in cells.items()]
        self.policy = policy
        self.profile = profile  # the profile's version: a saved window of another profile is not taken over
        self.counts: dict[str, list[int]] = {}
        self.events = 0
        self.offsets: dict[str, list[int]] = {}
        self.start_ms: int | None = None

    def add(self, event: InferenceEvent, source: RecordSource) -> list[WindowResult]:
        """The event into the open window; returns the results of the window it closed, if it closed one
        (a record-time window closes before the event of the next stretch is added)."""
        results: list[WindowResult] = []
        size_ms = self._size_ms()
        if size_ms is not None and event.timestamp_ms is not None:
            start = event.timestamp_ms - event.timestamp_ms % size_ms
            if self.start_ms is not None and start != self.start_ms and self.events:
                results = self.close()
            if not self.events:
                self.start_ms = start
        self._count(event, source)
        if self.policy.events is not None and self.events >= self.policy.events:
            results = self.close()
        return results

    def _size_ms(self) -> int | None:
        seconds = self.policy.seconds
        return None if seconds is None else max(1, round(seconds * 1000))

    def _count(self, event: InferenceEvent, source: RecordSource) -> None:
        self.events += 1
        where = (
            "lines" if source.topic is None else f"{source.topic}/{source.partition}"
        )  # a file: line numbers
        span = self.offsets.get(where)
        if span is None:
            self.offsets[where] = [source.offset, source.offset]
        else:
            span[1] = source.offset
        for name, cells, read in self.reads:
            value = read(event)
            if value is None:
                continue
            cell = cells.cell(value)
            if cell is None:
                continue
            counts = self.counts.get(name)
            if counts is None:
                counts = self.counts[name] = [0] * len(cells.reference)
            counts[cell] += 1

    def close(self) -> list[WindowResult]:
        """Every test of the open window, then a new, empty window."""
        results: list[WindowResult] = []
        size_ms = self._size_ms()
        start = self.start_ms
        end = None if start is None or size_ms is None else start + size_ms
        offsets = {where: (span[0], span[1]) for where, span in sorted(self.offsets.items())}
        for name, counts in sorted(self.counts.items()):
            cells = self.cells[name]
            values = sum(counts)
            if not values or not sum(cells.reference):
                continue
            for test, threshold in sorted(self.policy.tests(cells.kind).items()):
                if test == WASSERSTEIN:
                    found = wasserstein(cells.points, cells.reference, counts)
                else:
                    found = TESTS[test](cells.reference, counts)
                crossed = (
                    found.p_value is not None and found.p_value < threshold
                    if test in P_VALUE_TESTS
                    else found.value > threshold
                )
                results.append(
                    WindowResult(
                        signal=name, test=test, statistic=found.value, p_value=found.p_value,
                        threshold=threshold, crossed=crossed, values=values, counts=tuple(counts),
                        events=self.events, offsets=offsets, start_ms=start, end_ms=end,
                        segment=self.segment,
                    )
                )  # fmt: skip
        self.counts, self.events, self.offsets, self.start_ms = {}, 0, {}, None
        return results

    def export(self) -> tuple[Any, ...]:
        """(profile version, counts per signal, events, offsets per partition, start): plain containers."""
        return (
            self.profile,
            [(name, list(counts)) for name, counts in self.counts.items()],
            self.events,
            [(where, span[0], span[1]) for where, span in self.offsets.items()],
            self.start_ms,
        )

    def restore(self, saved: Sequence[Any]) -> bool:
        """Take over a saved window of the same profile and policy; False (and the window stays empty) when
        the profile changed: its cells are not those the counts were taken over."""
        profile, counts, events, offsets, start_ms = saved
        if profile != self.profile:
            return False
        cells = self.cells
        self.counts = {n: list(c) for n, c in counts if n in cells and len(c) == len(cells[n].reference)}
        self.events = int(events)
        self.offsets = {where: [first, last] for where, first, last in offsets}
        self.start_ms = start_ms
        return True


def reader(signal: str) -> Callable[[InferenceEvent], Scalar]:
    """How to read the signal's value from an event, worked out once per window, not once per event."""
    if signal.startswith("feature:"):
        feature = signal[len("feature:") :]
        return lambda event: event.features.get(feature)
    if signal == "prediction":
        return lambda event: event.prediction
    if signal == "score":
        return lambda event: event.score
    return lambda event: None
