"""The reference sample: the values each signal's detector would have been fed over known-good events.

They are taken through the production path: each record decoded by `EventDecoder` and fed to a `Monitor`,
whose observer hands over exactly the values the core would feed a detector (bools as 0/1, NaN and text
skipped, binary detectors fed 0/1 only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import RecordSource
from streamdrift.core.detectors import DETECTOR_KINDS, DetectorSpec, check_params
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalPolicy
from streamdrift.errors import BadRecord, ConfigError
from streamdrift.tune.signals import Signal

# Resampling a handful of values replays those few values over and over: the false-alarm rate it measures
# says little about the real distribution.
MIN_REFERENCE_VALUES: Final = 100

Values = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ReferenceSample:
    """The values a detector on this signal would have been fed over the reference events."""

    signal: Signal
    values: Values

    @property
    def binary(self) -> bool:
        """Every value is 0 or 1: changes are rises in the rate of 1s, not shifts in standard deviations."""
        return bool(np.isin(self.values, (0.0, 1.0)).all())

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def std(self) -> float:
        return float(self.values.std())


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """What reading the reference found."""

    samples: Mapping[str, ReferenceSample]  # by signal name, in the order asked for
    events: int  # events decoded (of the chosen model, when one was chosen)
    bad_records: Counter[str] = field(default_factory=Counter)  # lines that are no event, by kind
    skipped: Counter[str] = field(default_factory=Counter)  # values the monitor skipped, by reason
    span_ms: int = 0  # record time from the first event to the last (0: no timestamps)

    @property
    def events_per_day(self) -> float | None:
        """The reference's event rate: what turns false alarms per event into false alarms per day."""
        return self.events * 86_400_000 / self.span_ms if self.span_ms > 0 else None


def read_reference(
    config: StreamdriftConfig,
    records: Iterable[bytes],
    signals: Sequence[Signal],
    detector_type: str,
    *,
    model: str | None = None,
) -> Reference:
    """Run the production decoder and monitor over the reference records and keep each signal's values.

    Only the signals' kinds are enabled, each with a `detector_type` detector: whether a detector is binary
    decides which values reach it. Raises `ConfigError` when the model or a signal has no values.
    """
    if detector_type not in DETECTOR_KINDS:
        raise ConfigError(check_params(detector_type, {}))
    spec = DetectorSpec.of(detector_type)
    kinds = {signal.kind for signal in signals}
    policies = Policies(
        defaults={kind: SignalPolicy(enabled=kind in kinds, detector=spec) for kind in SIGNAL_KINDS}
    )
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    monitor = Monitor(policies, config_version=config.config_version, limits=config.monitor_limits())
    collected: dict[str, list[float]] = {signal.name: [] for signal in signals}

    def observe(_model_id: str, signal: str, _index: int, value: float, _level: int) -> None:
        values = collected.get(signal)
        if values is not None:
            values.append(value)

    monitor.observer = observe
    bad_records: Counter[str] = Counter()
    models_seen: Counter[str] = Counter()
    events = 0
    first_ms: int | None = None
    last_ms: int | None = None
    for offset, record in enumerate(records):
        try:
            event = decoder.decode(None, record)
        except BadRecord as error:
            bad_records[error.kind] += 1
            continue
        models_seen[event.model_id] += 1
        if model is not None and event.model_id != model:
            continue
        events += 1
        at = event.timestamp_ms
        if at is not None:
            first_ms = at if first_ms is None else min(first_ms, at)
            last_ms = at if last_ms is None else max(last_ms, at)
        monitor.process(event, RecordSource(offset=offset))
    if events == 0:
        raise ConfigError(_no_events(model, models_seen, bad_records))
    empty = [name for name, values in collected.items() if not values]
    if empty:
        raise ConfigError(
            [_no_values(name, detector_type, model, monitor, events) for name in empty]  # one line each
        )
    few = [(name, len(values)) for name, values in collected.items() if len(values) < MIN_REFERENCE_VALUES]
    if few:
        raise ConfigError(
            [
                f"--signal {name}: only {count} values in the reference; resampling needs at least "
                f"{MIN_REFERENCE_VALUES} to stand for the signal's distribution"
                for name, count in few
            ]
        )
    samples = {
        signal.name: ReferenceSample(signal=signal, values=np.asarray(collected[signal.name], dtype=float))
        for signal in signals
    }
    span_ms = 0 if first_ms is None or last_ms is None else last_ms - first_ms
    return Reference(
        samples=samples, events=events, bad_records=bad_records, skipped=monitor.skipped, span_ms=span_ms
    )


def _no_events(model: str | None, models_seen: Counter[str], bad_records: Counter[str]) -> str:
    if model is not None and models_seen:
        seen = ", ".join(name for name, _ in models_seen.most_common(10))
        more = ", ..." if len(models_seen) > 10 else ""
        return f"--model {model}: no event of this model in the reference (it has: {seen}{more})"
    bad = ", ".join(f"{kind}={n}" for kind, n in sorted(bad_records.items()))
    return "the reference holds no inference event" + (f" (bad lines: {bad})" if bad else "")


def _no_values(name: str, detector_type: str, model: str | None, monitor: Monitor, events: int) -> str:
    of_model = f" of model {model}" if model is not None else ""
    available = _signals_present(monitor)
    if name in available:
        skipped = ", ".join(f"{reason}={n}" for reason, n in sorted(monitor.skipped.items()))
        return (
            f"--signal {name}: none of its values in the {events} reference events{of_model} can reach a "
            f"{detector_type} detector" + (f" (skipped: {skipped})" if skipped else "")
        )
    shown = ", ".join(available[:20]) + (", ..." if len(available) > 20 else "")
    return (
        f"--signal {name}: no values in the {events} reference events{of_model} "
        f"(signals present: {shown or 'none'})"
    )


def _signals_present(monitor: Monitor) -> list[str]:
    """The signals the monitor met in the reference, whether or not they were enabled."""
    found: dict[str, None] = {}
    for model in monitor.models.values():
        for name, watch in model.features.items():
            found[f"feature:{name}"] = found[f"missing:{name}"] = None
            for category in watch.categories:
                found[f"category:{name}={category}"] = None
        for label in model.classes:
            found[f"prediction:{label}"] = None
        for kind in model.tracks:
            found[kind] = None
    return list(found)
