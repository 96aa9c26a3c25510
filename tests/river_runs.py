"""What the tests hold the core to: River's detectors run offline, and the values the core fed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from river.drift import ADWIN

from streamdrift.core.monitor import Monitor


def drift_indices(detector: Any, values: Sequence[float]) -> list[int]:
    """Where River's own detector, fed these values, sets drift_detected."""
    found = []
    for i, value in enumerate(values):
        detector.update(value)
        if detector.drift_detected:
            found.append(i)
    return found


def adwin_drifts(values: Sequence[float]) -> list[int]:
    """Where River's ADWIN with default parameters, fed these values, sets drift_detected."""
    return drift_indices(ADWIN(), values)


class FedValues:
    """Every value the monitor feeds a detector, by signal, with the index of the event that fed it."""

    def __init__(self, monitor: Monitor) -> None:
        self.event = -1
        self.by_signal: dict[str, list[tuple[int, float]]] = defaultdict(list)
        monitor.observer = self.record

    def record(self, _model_id: str, signal: str, _index: int, value: float, _level: int) -> None:
        self.by_signal[signal].append((self.event, value))


@dataclass(frozen=True, slots=True)
class RiverRun:
    drifts: list[int]
    warnings: list[int]  # rising edges of warning_detected, at steps without a drift


def run_river(detector: Any, values: Sequence[float], *, invert: bool = False) -> RiverRun:
    """Feed River's detector directly and record where it detects."""
    drifts: list[int] = []
    warnings: list[int] = []
    was_warning = False
    for i, value in enumerate(values):
        detector.update(1 - value if invert else value)
        warning = bool(getattr(detector, "warning_detected", False))
        if detector.drift_detected:
            drifts.append(i)
        elif warning and not was_warning:
            warnings.append(i)
        was_warning = warning
    return RiverRun(drifts=drifts, warnings=warnings)
