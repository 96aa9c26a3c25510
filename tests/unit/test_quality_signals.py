"""Data-quality signals: `quality:type_mismatch` (a value of the wrong type for its feature) and
`quality:out_of_range` (a numeric value outside its feature's learned or given bounds). Each is a 0/1 stream
per event; its drifts must be River's ADWIN drifts on that same stream, computed here offline.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np

from streamdrift.core.alert import DriftAlert, RecordSource
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.monitor import TYPE_MISMATCH, Monitor
from streamdrift.core.plan import SIGNAL_KINDS, Policies, SignalKind, SignalPolicy
from streamdrift.core.quality import Range, RangePolicy
from tests.river_runs import FedValues, adwin_drifts

TYPE_MISMATCH_SIGNAL = "quality:type_mismatch"
OUT_OF_RANGE_SIGNAL = "quality:out_of_range"


def signals_on(*kinds: SignalKind) -> dict[SignalKind, SignalPolicy]:
    """Signal defaults with only these kinds enabled, each watched by a default ADWIN."""
    return {kind: SignalPolicy(enabled=kind in kinds) for kind in SIGNAL_KINDS}


def run(
    monitor: Monitor, rows: Sequence[Mapping[str, Scalar]], fed: FedValues
) -> list[tuple[int, DriftAlert]]:
    """Row i as the features of the event at offset i of model "m"; the alerts with their event index."""
    out = []
    for i, features in enumerate(rows):
        fed.event = i
        event = InferenceEvent(model_id="m", features=features)
        out.extend((i, alert) for alert in monitor.process(event, RecordSource(topic="t", offset=i)))
    return out


def drift_indices(alerts: Sequence[tuple[int, DriftAlert]], signal: str) -> list[int]:
    return [i for i, alert in alerts if alert.signal == signal and alert.level == "drift"]


def expected_drifts(stream: Sequence[tuple[int, float]]) -> list[int]:
    """River's ADWIN on a signal's values, as indices of the events that fed them."""
    return [stream[i][0] for i in adwin_drifts([value for _event, value in stream])]


# ---- type mismatch ---------------------------------------------------------------------------------------


def rows_with_type_mismatches(
    seed: int, length: int = 3000, change_at: int = 1500
) -> list[dict[str, Scalar]]:
    """A numeric `amount` and a categorical `country`; text in `amount` becomes frequent at `change_at`,
    and a number or a bool turns up in `country` now and then."""
    rng = random.Random(seed)
    rows: list[dict[str, Scalar]] = []
    for i in range(length):
        amount: Scalar = rng.gauss(50.0, 10.0)
        if rng.random() < (0.02 if i < change_at else 0.3):
            amount = "n/a"
        country: Scalar = rng.choice(["de", "fr", "it"])
        if i > 0 and rng.random() < 0.02:  # never the first value: that one settles the type
            country = rng.choice([49, True, 3.5])
        rows.append({"amount": amount, "country": country})
    return rows


def is_mismatch(feature: str, value: Scalar) -> bool:
    return isinstance(value, str) if feature == "amount" else not isinstance(value, str)


def test_type_mismatches_are_skipped_counted_and_their_rate_drifts_as_river_says() -> None:
    rows = rows_with_type_mismatches(seed=8)
    policies = Policies(defaults=signals_on("features", "categorical", "type_mismatch"))
    monitor = Monitor(policies, config_version="v")
    fed = FedValues(monitor)
    alerts = run(monitor, rows, fed)

    mismatches = [[is_mismatch(name, value) for name, value in row.items()] for row in rows]
    assert monitor.skipped[TYPE_MISMATCH] == sum(map(sum, mismatches))
    expected_stream = [(i, float(any(flags))) for i, flags in enumerate(mismatches)]
    assert fed.by_signal[TYPE_MISMATCH_SIGNAL] == expected_stream
    expected = expected_drifts(expected_stream)
    assert expected, "River must detect the jump in the mismatch rate"
    assert drift_indices(alerts, TYPE_MISMATCH_SIGNAL) == expected

    # The mismatched values reached no detector of their feature.
    numbers = [(i, row["amount"]) for i, row in enumerate(rows) if not isinstance(row["amount"], str)]
    assert fed.by_signal["feature:amount"] == numbers
    assert drift_indices(alerts, "feature:amount") == expected_drifts(numbers)
    texts = [i for i, row in enumerate(rows) if isinstance(row["country"], str)]
    warmup = policies.categorical.warmup
    assert [i for i, _value in fed.by_signal["category:country=_other"]] == texts[warmup:]


def test_a_bool_is_a_number_in_a_numeric_feature_but_a_mismatch_in_a_categorical_one() -> None:
    rows: list[dict[str, Scalar]] = [
        {"flag": 0.5, "country": "de"},
        {"flag": True, "country": True},
        {"flag": False, "country": 7},
        {"flag": 2, "country": "fr"},
    ]
    monitor = Monitor(Policies(defaults=signals_on("features", "type_mismatch")), config_version="v")
    fed = FedValues(monitor)
    run(monitor, rows, fed)
    assert fed.by_signal["feature:flag"] == [(0, 0.5), (1, 1.0), (2, 0.0), (3, 2.0)]
    assert fed.by_signal[TYPE_MISMATCH_SIGNAL] == [(0, 0.0), (1, 1.0), (2, 1.0), (3, 0.0)]
    assert monitor.skipped[TYPE_MISMATCH] == 2


def test_the_mismatch_stream_is_fed_once_per_event_from_the_models_first_feature_on() -> None:
    rows: list[dict[str, Scalar]] = [{}, {}, {"x": 1.0}, {}, {"x": None}, {"x": "text"}, {"y": "a"}]
    monitor = Monitor(Policies(defaults=signals_on("type_mismatch")), config_version="v")
    fed = FedValues(monitor)
    run(monitor, rows, fed)
    assert fed.by_signal[TYPE_MISMATCH_SIGNAL] == [(2, 0.0), (3, 0.0), (4, 0.0), (5, 1.0), (6, 0.0)]


# ---- out of range ----------------------------------------------------------------------------------------


def learned_bounds(warmup_values: Sequence[float], margin: float) -> tuple[float, float]:
    """[min - margin * span, max + margin * span] of the warm-up values."""
    low, high = min(warmup_values), max(warmup_values)
    span = high - low
    return low - margin * span, high + margin * span


def outside(value: float, bounds: tuple[float, float]) -> bool:
    return value < bounds[0] or value > bounds[1]


def sensor_readings(
    seed: int, length: int = 4000, spikes_from: int = 2500
) -> tuple[list[float], list[float]]:
    """Two N(0, 1) sensors `x` and `y`; from `spikes_from` on, one `x` in five is a spike far outside
    anything the warm-up saw."""
    rng = np.random.default_rng(seed)
    xs = [float(v) for v in rng.normal(size=length)]
    ys = [float(v) for v in rng.normal(size=length)]
    for i in range(spikes_from, length):
        if rng.random() < 0.2:
            xs[i] = float(rng.normal(12.0, 1.0))
    return xs, ys


def sensor_rows(xs: Sequence[float], ys: Sequence[float], y_from: int) -> list[dict[str, Scalar]]:
    """`x` from the first event on, `y` from event `y_from` on."""
    return [{"x": x} if i < y_from else {"x": x, "y": y} for i, (x, y) in enumerate(zip(xs, ys, strict=True))]


def out_of_range_on(ranges: RangePolicy) -> Policies:
    defaults = signals_on("features")
    defaults["features"] = SignalPolicy(enabled=False)
    defaults["out_of_range"] = SignalPolicy(enabled=True)
    return Policies(defaults=defaults, ranges=ranges)


def test_out_of_range_is_off_by_default() -> None:
    monitor = Monitor(Policies(), config_version="v")
    fed = FedValues(monitor)
    run(monitor, [{"x": float(i % 7) * 10.0**i} for i in range(40)], fed)
    assert OUT_OF_RANGE_SIGNAL not in fed.by_signal
    assert monitor.models["m"].features["x"].bounds is None


def test_learned_bounds_are_the_warm_ups_span_with_a_margin_and_the_rate_drifts_as_river_says() -> None:
    warmup, margin, y_from = 200, 0.1, 100
    xs, ys = sensor_readings(seed=21)
    monitor = Monitor(out_of_range_on(RangePolicy(warmup=warmup, margin=margin)), config_version="v")
    fed = FedValues(monitor)
    alerts = run(monitor, sensor_rows(xs, ys, y_from), fed)

    x_bounds = learned_bounds(xs[:warmup], margin)
    y_bounds = learned_bounds(ys[y_from : y_from + warmup], margin)
    # Fed from the first event after x's warm-up; y counts once its own warm-up is over too.
    expected_stream = [
        (i, float(outside(xs[i], x_bounds) or (i >= y_from + warmup and outside(ys[i], y_bounds))))
        for i in range(warmup, len(xs))
    ]
    assert fed.by_signal[OUT_OF_RANGE_SIGNAL] == expected_stream
    expected = expected_drifts(expected_stream)
    assert expected, "River must detect the spikes"
    assert drift_indices(alerts, OUT_OF_RANGE_SIGNAL) == expected


def test_given_bounds_apply_from_the_first_value_and_the_last_matching_range_wins() -> None:
    warmup = 200
    ranges = RangePolicy(
        warmup=warmup,
        ranges=(
            Range(feature="x", low=-100.0, high=100.0),
            Range(model="m", feature="x", low=-2.0, high=2.0),
            Range(model="other-*", feature="*", low=0.0, high=0.0),
        ),
    )
    assert ranges.given("m", "x") == Range(model="m", feature="x", low=-2.0, high=2.0)
    assert ranges.given("m", "y") is None
    xs, ys = sensor_readings(seed=22)
    monitor = Monitor(out_of_range_on(ranges), config_version="v")
    fed = FedValues(monitor)
    alerts = run(monitor, sensor_rows(xs, ys, y_from=0), fed)

    y_bounds = learned_bounds(ys[:warmup], ranges.margin)
    expected_stream = [
        (i, float(outside(x, (-2.0, 2.0)) or (i >= warmup and outside(ys[i], y_bounds))))
        for i, x in enumerate(xs)
    ]
    assert fed.by_signal[OUT_OF_RANGE_SIGNAL] == expected_stream
    expected = expected_drifts(expected_stream)
    assert expected
    assert drift_indices(alerts, OUT_OF_RANGE_SIGNAL) == expected


def test_once_a_features_bounds_are_known_every_event_counts_even_without_a_checkable_value() -> None:
    ranges = RangePolicy(warmup=3, margin=0.0)
    rows: list[dict[str, Scalar]] = [
        {"x": 1.0}, {"x": 2.0}, {"x": None},  # x is still learning: nothing fed
        {"x": 3.0},  # x's warm-up ends: bounds [1, 3]
        {"x": 5.0}, {"x": None}, {}, {"x": "text"}, {"x": 2.5}, {"x": float("nan")}, {"x": 0.0},
    ]  # fmt: skip
    monitor = Monitor(out_of_range_on(ranges), config_version="v")
    fed = FedValues(monitor)
    run(monitor, rows, fed)
    assert fed.by_signal[OUT_OF_RANGE_SIGNAL] == [
        (4, 1.0), (5, 0.0), (6, 0.0), (7, 0.0), (8, 0.0), (9, 0.0), (10, 1.0)
    ]  # fmt: skip
