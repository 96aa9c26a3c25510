"""Every setting fed the same simulated runs: false alarms on the unchanged streams, detections and delays
on the changed ones."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from streamdrift.core.detectors import DRIFT, Detector, DetectorSpec
from streamdrift.errors import ConfigError
from streamdrift.tune.changes import Change
from streamdrift.tune.reference import ReferenceSample
from streamdrift.tune.simulation import SimulatedRun, Simulation, simulated_runs

EVENTS_PER_RATE: Final = 10_000  # false alarms are reported per this many events


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeOutcome:
    """How one setting did on one change over all runs."""

    change: Change
    delays: tuple[int | None, ...]  # per run: first drift at/after the change point minus it; None: missed

    @property
    def detection_probability(self) -> float:
        return sum(delay is not None for delay in self.delays) / len(self.delays)

    @property
    def median_delay(self) -> float | None:
        found = [delay for delay in self.delays if delay is not None]
        return float(np.median(found)) if found else None


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingResult:
    """One detector setting: false alarms on the unchanged streams, and each change's outcome."""

    spec: DetectorSpec
    false_alarms: int  # drifts of one detector fed every run's unchanged stream back to back
    events: int  # values in those streams
    outcomes: tuple[ChangeOutcome, ...]

    @property
    def false_alarms_per_10k(self) -> float:
        return self.false_alarms * EVENTS_PER_RATE / self.events


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Evaluation:
    """Every setting of the grid measured on one signal."""

    sample: ReferenceSample
    simulation: Simulation
    changes: tuple[Change, ...]
    results: tuple[SettingResult, ...]


def evaluate(
    sample: ReferenceSample,
    grid: Sequence[DetectorSpec],
    changes: Sequence[Change],
    simulation: Simulation,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Feed every setting the same simulated runs; `progress` is called with the number of runs done."""
    if not grid:
        raise ConfigError("--grid: no detector setting to evaluate")
    false_alarms = [0] * len(grid)
    delays: list[list[list[int | None]]] = [[[] for _ in changes] for _ in grid]
    long_running = [Detector(spec, seed_key=f"{sample.signal.name}/long-running") for spec in grid]
    for run_index, run in enumerate(simulated_runs(sample, changes, simulation)):
        seed_key = f"{sample.signal.name}/run{run_index}"  # a seeded detector (KSWIN) differs per run
        for setting, spec in enumerate(grid):
            false_alarms[setting] += _drifts(long_running[setting], run.baseline)
            first_drifts = _first_drifts(Detector(spec, seed_key=seed_key), run, simulation.change_at)
            for change, delay in enumerate(first_drifts):
                delays[setting][change].append(delay)
        if progress is not None:
            progress(run_index + 1)
    results = tuple(
        SettingResult(
            spec=spec,
            false_alarms=false_alarms[setting],
            events=simulation.runs * simulation.length,
            outcomes=tuple(
                ChangeOutcome(change=change, delays=tuple(delays[setting][i]))
                for i, change in enumerate(changes)
            ),
        )
        for setting, spec in enumerate(grid)
    )
    return Evaluation(sample=sample, simulation=simulation, changes=tuple(changes), results=results)


def _drifts(detector: Detector, values: list[float]) -> int:
    return sum(detector.update(value) == DRIFT for value in values)


def _first_drifts(detector: Detector, run: SimulatedRun, change_at: int) -> list[int | None]:
    """Per change, how many values after the change point a fresh detector first reports a drift.

    Up to the change point every changed stream of the run is the same, so the detector is fed that part
    once and copied there for each change: a copy continues exactly as a detector fed the whole stream.
    """
    for value in run.baseline[:change_at]:
        detector.update(value)
    tails = run.changed_tails
    at_change = [copy.deepcopy(detector) for _ in tails[1:]] + [detector]
    return [_first_drift(copied, tail) for copied, tail in zip(at_change, tails, strict=True)]


def _first_drift(detector: Detector, values: list[float]) -> int | None:
    for index, value in enumerate(values):
        if detector.update(value) == DRIFT:
            return index
    return None
