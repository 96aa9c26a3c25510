"""Synthetic inference events, seeded: the same shape and seed always give the same records.

Records are keyed by model id; each model lives in one partition, `model index % partitions`, so the
partitions carry equal shares of models and (with models drawn uniformly) of events. Models are drawn
uniformly at random, or, with `order="round_robin"` (the fleet measurement), in turn: event i belongs to
model i % models, so that no two consecutive events share a model, as in a large fleet's interleaved
traffic, and no one can batch a model's events together. Each model's features are normal with a
per-model mean and unit variance: a stationary stream, so alerts are rare false alarms, except on the
*jumping* models of a latency run, whose first feature alternates between two levels far apart so that
ADWIN fires a few dozen of that model's events after every switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import orjson

EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the event-time origin of pre-filled topics
BATCH = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class EventShape:
    models: int = 100
    features: int = 8
    prediction: bool = True  # a numeric `prediction` field
    score: bool = True
    partitions: int = 2
    order: Literal["random", "round_robin"] = "random"  # how models follow each other (module docstring)


@dataclass(frozen=True, slots=True, kw_only=True)
class Jumps:
    """The first `models` models get this share of the traffic; their `f0` switches level every `every` events
    of theirs, by `size` standard deviations."""

    models: int = 10
    share: float = 0.5
    every: int = 100
    size: float = 100.0


# A record to produce: key, value, partition.
Record = tuple[bytes, bytes, int]


def model_id(index: int) -> str:
    return f"model-{index:05d}"


class EventStream:
    """Batches of records; event ids count up from 0 across batches."""

    def __init__(self, shape: EventShape, *, seed: int, jumps: Jumps | None = None) -> None:
        self.shape = shape
        self.jumps = jumps
        self.rng = np.random.default_rng(seed)
        self.means = np.round(self.rng.normal(0.0, 5.0, (shape.models, shape.features)), 2)
        self.names = [f"f{j}" for j in range(shape.features)]
        self.ids = [model_id(i) for i in range(shape.models)]
        self.keys = [name.encode() for name in self.ids]
        self.seq = 0
        self.own_counts = [0] * shape.models

    def _models(self, n: int) -> list[int]:
        jumps, models = self.jumps, self.shape.models
        if self.shape.order == "round_robin":  # no draw: the random order's are untouched
            return [(self.seq + i) % models for i in range(n)]
        if jumps is None or jumps.models >= models:
            return self.rng.integers(0, models, n).tolist()  # type: ignore[no-any-return]
        jumping = self.rng.random(n) < jumps.share
        low = self.rng.integers(0, jumps.models, n)
        high = self.rng.integers(jumps.models, models, n)
        return np.where(jumping, low, high).tolist()  # type: ignore[no-any-return]

    def batch(self, n: int, *, event_time_s: float | None = None) -> list[Record]:
        """`n` records; `event_time_s` stamps them all, else event time advances 1 ms per event."""
        shape, jumps = self.shape, self.jumps
        models = self._models(n)
        values = np.round(self.means[models] + self.rng.standard_normal((n, shape.features)), 4).tolist()
        outputs = np.round(self.rng.random((n, 2)), 4).tolist()
        records: list[Record] = []
        names, ids, keys, counts = self.names, self.ids, self.keys, self.own_counts
        for i in range(n):
            m = models[i]
            row = values[i]
            if jumps is not None and m < jumps.models:
                if (counts[m] // jumps.every) % 2:
                    row[0] = round(row[0] + jumps.size, 4)
                counts[m] += 1
            seq = self.seq + i
            event: dict[str, object] = {
                "model_id": ids[m],
                "model_version": "1",
                "event_id": f"e-{seq:08d}",
                "timestamp": round(EPOCH_S + seq / 1000, 3) if event_time_s is None else event_time_s,
                "features": dict(zip(names, row, strict=True)),
            }
            if shape.prediction:
                event["prediction"] = outputs[i][0]
            if shape.score:
                event["score"] = outputs[i][1]
            records.append((keys[m], orjson.dumps(event), m % shape.partitions))
        self.seq += n
        return records

    def batches(self, total: int) -> list[int]:
        """Batch sizes that add up to `total`."""
        return [min(BATCH, total - start) for start in range(0, total, BATCH)]
