"""Simulated streams: each run resamples the reference i.i.d., once unchanged and once per change."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from streamdrift.errors import ConfigError
from streamdrift.tune.changes import Change
from streamdrift.tune.reference import ReferenceSample


@dataclass(frozen=True, slots=True, kw_only=True)
class Simulation:
    """How many streams, how long, from which seed."""

    runs: int = 50
    length: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ConfigError(f"--runs {self.runs}: must be at least 1")
        if self.length < 2:
            raise ConfigError(f"--length {self.length}: must be at least 2 (the change is at the middle)")
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed}: must be >= 0")

    @property
    def change_at(self) -> int:
        return self.length // 2


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedRun:
    """One run's streams: `baseline` has no change; change `i`'s stream is
    `baseline[:change_at] + changed_tails[i]`."""

    baseline: list[float]
    changed_tails: tuple[list[float], ...]


def simulated_runs(
    sample: ReferenceSample, changes: Sequence[Change], simulation: Simulation
) -> Iterator[SimulatedRun]:
    """The runs' streams, the same for the same seed whatever the grid, and the same baselines whatever
    the changes (they draw from separate generators)."""
    stream_seed, change_seed = np.random.SeedSequence(simulation.seed).spawn(2)
    streams, change_rng = np.random.default_rng(stream_seed), np.random.default_rng(change_seed)
    values, change_at = sample.values, simulation.change_at
    for _ in range(simulation.runs):
        baseline = values[streams.integers(0, values.shape[0], size=simulation.length)]
        tail = baseline[change_at:]
        yield SimulatedRun(
            baseline=baseline.tolist(),  # Python floats: what the monitor feeds River
            changed_tails=tuple(change.apply(tail, sample, change_rng).tolist() for change in changes),
        )
