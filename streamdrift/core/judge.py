"""What a detector says about a value, turned into alerts: episodes, cooldowns, mutes, model windows.

Every signal's values reach their detector through `Judge.feed`; the signal kinds (feature_signals.py,
output_signals.py) decide which values a signal takes, this module what each one the detector took means.
Alerts that no River detector makes (a new category, a model-level alert, a reference or performance window)
are built here too (`one_off`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from streamdrift.core.alert import AlertLevel, DriftAlert, RecordSource, alert_id, format_time
from streamdrift.core.cbpe import CbpeReference
from streamdrift.core.detectors import DRIFT, NO_CHANGE
from streamdrift.core.event import InferenceEvent
from streamdrift.core.performance import ClosedWindow
from streamdrift.core.plan import Policies
from streamdrift.core.skips import NOT_BINARY
from streamdrift.core.tracks import ModelMonitor, SignalTrack
from streamdrift.core.windows import WindowResult

# Called with (model_id, signal, index of the value in the signal's stream, value, detector level:
# NO_CHANGE, WARNING or DRIFT) for every value fed to a detector (Monitor.observer).
Observer = Callable[[str, str, int, float, int], None]


class Judge:
    """Feeds detectors and decides which of their answers become alerts, under the current policies.

    `skipped` and `suppressed` are the monitor's counters (values skipped, alerts suppressed, by reason);
    `policies` and `config_version` change when the monitor is reconfigured.
    """

    __slots__ = ("config_version", "observer", "policies", "skipped", "suppressed")

    def __init__(
        self, policies: Policies, config_version: str, skipped: Counter[str], suppressed: Counter[str]
    ) -> None:
        self.policies = policies
        self.config_version = config_version
        self.skipped = skipped
        self.suppressed = suppressed
        self.observer: Observer | None = None

    def feed(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        value: float,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """One value of a signal to its detector; the alerts it lets out are appended to `alerts`."""
        lane = track.fast
        if lane is not None:
            if lane(value):
                self.lane_drift(model, track, value, event, source, alerts)
            else:
                track.seen += 1
            return
        detector = track.detector
        scaler = track.scaler
        if scaler is not None:
            scaled = scaler.transform(value)
            if scaled is None:
                return  # still learning the signal's mean and std
            value = scaled
        if detector.binary and value not in (0.0, 1.0):
            self.skipped[NOT_BINARY] += 1
            return
        self._judge(model, track, value, detector.update(value), event, source, alerts)

    def lane_drift(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        value: float,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """An armed track's detector drifted on `value` (already fed): back to the full feed."""
        track.disarm()
        self._judge(model, track, value, track.detector.drifted_in_lane(), event, source, alerts)

    def _judge(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        value: float,
        level: int,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
    ) -> None:
        """What a value the detector took means: episodes, cooldowns, mutes and the alerts they let out."""
        track.seen += 1
        observer = self.observer
        if observer is not None:
            observer(model.model_id, track.name, track.seen - 1, value, level)
        if level != DRIFT and track.episode is not None:
            track.episode_quiet += 1
            if track.episode_quiet >= track.resolve_after:
                alerts.append(self._alert(model, track, "resolved", event, source, episode=track.episode))
                track.episode = None
        if level == NO_CHANGE:
            if observer is None:
                track.arm()
            return
        if level == DRIFT and track.episode is not None:
            track.episode_quiet = 0  # a drift joins the open episode, whether published or not
            track.episode_drifts += 1
            track.last_drift_at = model.events
        # Record time, not the wall clock: a replay or a restart suppresses exactly what the live run did.
        at_ms = source.timestamp_ms if source.timestamp_ms is not None else event.timestamp_ms
        if track.seen <= track.quiet_until or (at_ms is not None and at_ms < track.quiet_until_ms):
            self.suppressed["cooldown"] += 1
            return
        if level == DRIFT:
            track.quiet_until = track.seen + track.cooldown
            if at_ms is not None:
                track.quiet_until_ms = at_ms + track.cooldown_ms
        if self.policies.mutes and self.policies.muted(model.model_id, track.name, at_ms):
            self.suppressed["mute"] += 1  # a muted detection still starts its cooldown
            return
        if level != DRIFT:
            alerts.append(self._alert(model, track, "warning", event, source, episode=track.episode))
            return
        alert = self._alert(model, track, "drift", event, source, episode=track.episode)
        alerts.append(alert)
        if track.episode is None and track.resolve_after > 0:
            track.episode, track.episode_quiet, track.episode_drifts = alert.alert_id, 0, 1
            track.last_drift_at = model.events
        model_alerts = self.policies.model_alerts
        if model_alerts.enabled and model_alerts.watches(track.name):
            model.window.add(track.name, model.events, source)

    def _alert(
        self,
        model: ModelMonitor,
        track: SignalTrack,
        level: AlertLevel,
        event: InferenceEvent,
        source: RecordSource,
        *,
        episode: str | None,
    ) -> DriftAlert:
        detector = track.detector
        this_id = alert_id(model.model_id, track.name, level, source)
        stats: dict[str, Any] = detector.stats()
        if level == "resolved":
            stats = {**stats, "episode_drifts": track.episode_drifts, "quiet_values": track.episode_quiet}
            verdict = (
                None if model.reference is None else model.reference.verdict(track.name, track.last_drift_at)
            )
            if verdict is not None:  # why it ended: the data came back, or the detector adapted to new data
                stats["reference"] = verdict
        return DriftAlert(
            alert_id=this_id,
            level=level,
            model_id=model.model_id,
            model_version=event.model_version,
            signal=track.name,
            detector_type=detector.spec.type,
            detector_params=detector.full_params(),
            source=source,
            observations=detector.observations,
            stats=stats,
            event_time_ms=event.timestamp_ms,
            config_version=self.config_version,
            # A drift outside an episode opens one named after itself.
            episode_id=episode if episode is not None or level != "drift" else this_id,
        )

    def close_window(
        self, model: ModelMonitor, event: InferenceEvent, source: RecordSource, alerts: list[DriftAlert]
    ) -> None:
        """At the end of a model's window: one `model` alert if enough distinct signals drifted in it."""
        window, policy = model.window, self.policies.model_alerts
        closes_at = window.closes_at(policy.window)
        if closes_at is None or model.events < closes_at:
            return
        signals, opened = tuple(window.signals), window.source
        window.clear()
        if len(signals) < policy.min_signals or opened is None:
            return
        opened_at = {"topic": opened.topic, "partition": opened.partition, "offset": opened.offset}
        self.one_off(
            model, "model", event, source, alerts,
            detector=("model", {"min_signals": policy.min_signals, "window": policy.window}),
            observations=policy.window, stats={"drifting": len(signals), "opened_at": opened_at},
            signals=signals,
        )  # fmt: skip

    def one_off(
        self,
        model: ModelMonitor,
        signal: str,
        event: InferenceEvent,
        source: RecordSource,
        alerts: list[DriftAlert],
        *,
        detector: tuple[str, dict[str, Any]],
        observations: int,
        stats: dict[str, Any],
        signals: tuple[str, ...] | None = None,
        id_key: str | None = None,
    ) -> None:
        """A drift alert that is not a River detector's (a new category, a model-level alert, a reference
        window): its own episode, never resolved; mutes apply to it like to any other. `detector` is (type,
        params) as the alert names them; `stats` the alert's JSON stats; `id_key` stands for the signal in
        the alert id when one record can end several detections of one signal (a window's tests)."""
        at_ms = source.timestamp_ms if source.timestamp_ms is not None else event.timestamp_ms
        if self.policies.mutes and self.policies.muted(model.model_id, signal, at_ms):
            self.suppressed["mute"] += 1
            return
        this_id = alert_id(model.model_id, id_key or signal, "drift", source)
        detector_type, params = detector
        alerts.append(
            DriftAlert(
                alert_id=this_id,
                level="drift",
                model_id=model.model_id,
                model_version=event.model_version,
                signal=signal,
                detector_type=detector_type,
                detector_params=params,
                source=source,
                observations=observations,
                stats=stats,
                event_time_ms=event.timestamp_ms,
                config_version=self.config_version,
                episode_id=this_id,
                signals=signals,
            )
        )

    def performance(
        self,
        model: ModelMonitor,
        event: InferenceEvent,
        source: RecordSource,
        window: ClosedWindow,
        reference: CbpeReference,
        alerts: list[DriftAlert],
    ) -> None:
        """A closed performance window: one `estimated:<metric>` alert per estimate outside its reference's
        band (performance.py)."""
        params = {"window": {"events": reference.window_events}, "threshold": reference.threshold}
        for name, estimate in window.estimates.items():
            if not window.left_band[name]:
                continue
            band = reference.bands[name]
            stats = {
                "estimate": estimate.value, "low": estimate.low, "high": estimate.high,
                "reference_band": [band.low, band.high], "window": window.ordinal, "events": window.events,
                "realized": None if window.realized is None else _number_or_none(window.realized[name]),
            }  # fmt: skip
            self.one_off(
                model, f"estimated:{name}", event, source, alerts,
                detector=("cbpe", params), observations=window.events, stats=stats,
            )  # fmt: skip

    def reference(
        self,
        model: ModelMonitor,
        event: InferenceEvent,
        source: RecordSource,
        result: WindowResult,
        alerts: list[DriftAlert],
    ) -> None:
        """A closed reference window whose test crossed its threshold (windows.py)."""
        plan = self.policies.reference
        assert plan is not None, "a reference window without a reference plan"
        stats = {
            "statistic": result.statistic, "p_value": result.p_value, "threshold": result.threshold,
            "values": result.values, "counts": list(result.counts),
            "window": {
                "events": result.events,
                "start": format_time(result.start_ms), "end": format_time(result.end_ms),
                "offsets": {where: list(span) for where, span in result.offsets.items()},
            },
        }  # fmt: skip
        id_key = f"{result.signal}\x1ereference:{result.test}"
        if result.segment is not None:
            feature, value = result.segment
            stats["segment"] = {"feature": feature, "value": value}
            id_key += f"\x1esegment:{feature}\x1f{value}"
        self.one_off(
            model, result.signal, event, source, alerts,
            detector=(result.test, plan.params(result.threshold)), observations=result.values, stats=stats,
            id_key=id_key,
        )  # fmt: skip


def _number_or_none(value: float) -> float | None:
    """A metric for the alert's JSON: null where it is undefined (NaN)."""
    return None if math.isnan(value) else value
