"""An event's outputs as signals: `prediction` (or `prediction:<class>`), `score` and `error`.

`error` needs the label: inline in the event, or from the labels topic, joined to the prediction by event_id
and fed in prediction order once it has arrived (labels.py).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Literal

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.judge import Judge
from streamdrift.core.labels import Awaiting
from streamdrift.core.skips import NON_FINITE, TOO_MANY_SIGNALS, number
from streamdrift.core.tracks import ModelMonitor


class OutputSignals:
    """Feeds each event's prediction, score and (with its label) error to their detectors."""

    __slots__ = ("_feed", "labels", "max_classes", "skipped")

    def __init__(self, judge: Judge, *, labels: Counter[str], max_classes: int) -> None:
        self._feed = judge.feed
        self.skipped = judge.skipped
        self.labels = labels  # the late-label join's outcomes (labels.py)
        self.max_classes = max_classes  # prediction classes per model; later ones are skipped

    def take(
        self,
        model: ModelMonitor,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
        live: bool,
    ) -> None:
        """The event's own detections reach `alerts` only when it is live; so do the late-label join's
        releases (labels.py), which may be live even when the event that released them is not."""
        own = alerts if live else []
        prediction = event.prediction
        if prediction is not None:
            if type(prediction) is str:
                self._classes(model, prediction, event, source, own)
            else:
                self._output(model, "prediction", prediction, event, source, own)
        if event.score is not None:
            self._output(model, "score", event.score, event, source, own)
        if prediction is None:
            return
        join = model.join
        if join is not None:
            join.predict(
                event.event_id, prediction, event.label, source, event.model_version, event.timestamp_ms,
                live, self.labels,
            )  # fmt: skip
            self.errors(model, join.release(live), alerts)
        elif event.label is not None:
            self._error(model, prediction, event.label, event, source, own)

    def errors(self, model: ModelMonitor, released: list[Awaiting], alerts: list[DriftAlert]) -> None:
        """Feed the predictions the join released, in prediction order; only live ones may alert."""
        for entry in released:
            event = InferenceEvent(
                model_id=model.model_id, model_version=entry.model_version, timestamp_ms=entry.event_ms,
                features={}, prediction=entry.prediction, label=entry.label,
            )  # fmt: skip
            out = alerts if entry.live else []
            self._error(model, entry.prediction, entry.label, event, entry.source, out)

    def _output(
        self,
        model: ModelMonitor,
        name: Literal["prediction", "score"],
        raw: Scalar,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """A numeric prediction or the score: the one signal of that name, made at its first value."""
        tracks = model.tracks
        track = tracks[name] if name in tracks else model.named(name, name)
        if track is None:
            return
        # The common value, a finite float, as in FeatureSignals.take: inf - inf and nan - nan are nan.
        value = raw if type(raw) is float and raw - raw == 0.0 else number(raw, self.skipped)
        if value is not None:
            self._feed(model, track, value, event, source, alerts)

    def _error(
        self,
        model: ModelMonitor,
        prediction: Scalar,
        label: Scalar,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """|prediction - label| for numbers, else 0 when they are equal and 1 when not."""
        track = model.named("error", "error")
        if track is None:
            return
        numeric = (int, float)
        if (
            isinstance(prediction, numeric)
            and isinstance(label, numeric)
            and not isinstance(prediction, bool)
            and not isinstance(label, bool)
        ):
            error = abs(prediction - label)
            if not math.isfinite(error):
                self.skipped[NON_FINITE] += 1
                return
            value = float(error)
        else:
            value = 0.0 if prediction == label else 1.0
        self._feed(model, track, value, event, source, alerts)

    def _classes(
        self,
        model: ModelMonitor,
        prediction: str,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """A class prediction: one 0/1 stream per class the model has predicted."""
        classes = model.classes
        if prediction not in classes:
            if len(classes) >= self.max_classes:
                self.skipped[TOO_MANY_SIGNALS] += 1
            else:
                classes[prediction] = model.track(f"prediction:{prediction}", model.plan.signal("prediction"))
        feed = self._feed
        for label, track in classes.items():
            if track is not None:
                feed(model, track, 1.0 if label == prediction else 0.0, event, source, alerts)
