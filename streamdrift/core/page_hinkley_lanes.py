"""River's Page-Hinkley on many independent lanes at once, in numpy: what the false-alarm budget's
simulations run (calibration.py, benchmarks/budget.py), alarm for alarm River's
(tests/unit/test_calibration.py)."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

MIN_INSTANCES: Final = 30  # River's default: no alarm before this many values


class PageHinkleyLanes:
    """River's PageHinkley (mode "both") on many independent lanes at once, one value per lane per step.

    The operations are River's, in River's order, so that each lane's alarms are River's on the same values.
    """

    def __init__(
        self, shape: tuple[int, ...], *, delta: float | Floats, threshold: float | Floats, alpha: float = 1.0,
        min_instances: int = MIN_INSTANCES,
    ) -> None:  # fmt: skip
        self.delta, self.alpha, self.min_instances = delta, alpha, float(min_instances)
        self.threshold = np.broadcast_to(np.asarray(threshold, dtype=np.float64), shape)
        self.n = np.zeros(shape)
        self.mean = np.zeros(shape)
        self.sum_increase = np.zeros(shape)
        self.sum_decrease = np.zeros(shape)
        self.min_increase = np.full(shape, np.inf)
        self.max_decrease = np.full(shape, -1.0)
        self.drifted: Bools = np.zeros(shape, dtype=np.bool_)
        self.rose: Bools = self.drifted  # which of the two tests fired: the mean rose, or fell
        self.fell: Bools = self.drifted

    def update(self, x: Floats) -> Bools:
        """Feed one value per lane; the lanes that detect a drift with it."""
        reset = self.drifted
        if reset.any():  # River resets a detector at the update after its detection
            for state, start in ((self.n, 0.0), (self.mean, 0.0), (self.sum_increase, 0.0),
                                 (self.sum_decrease, 0.0), (self.min_increase, np.inf),
                                 (self.max_decrease, -1.0)):  # fmt: skip
                state[reset] = start
        self.n += 1.0
        self.mean += (1.0 / self.n) * (x - self.mean)
        dev = x - self.mean
        self.sum_increase = self.alpha * self.sum_increase + dev - self.delta
        self.sum_decrease = self.alpha * self.sum_decrease + dev + self.delta
        np.minimum(self.min_increase, self.sum_increase, out=self.min_increase)
        np.maximum(self.max_decrease, self.sum_decrease, out=self.max_decrease)
        ready = self.n >= self.min_instances
        self.rose = ready & (self.sum_increase - self.min_increase > self.threshold)
        self.fell = ready & (self.max_decrease - self.sum_decrease > self.threshold)
        self.drifted = self.rose | self.fell
        return self.drifted
