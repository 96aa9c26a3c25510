"""Reference windows (core/windows.py): every closed window's statistics equal scipy's, computed from the raw
values of the events the window names (by their offsets), binned by numpy on the profile's edges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import chisquare, wasserstein_distance

from streamdrift.core.alert import RecordSource
from streamdrift.core.divergence import FLOOR
from streamdrift.core.event import InferenceEvent
from streamdrift.core.reference import Profile
from streamdrift.core.windows import Cells, ReferenceWindow, WindowPolicy, WindowResult

COUNTRIES = ["US", "DE", "BR", "FR", "JP"]
ALL_TESTS = WindowPolicy(
    events=400,
    numeric={"psi": 0.1, "jensen_shannon": 0.1, "wasserstein": 0.2},
    categorical={"psi": 0.1, "jensen_shannon": 0.1, "chi_square": 0.01},
)


def stream(
    seed: int, n: int, shift: float = 0.0, start_ms: int = 0, step_ms: int = 0
) -> list[InferenceEvent]:
    rng = np.random.default_rng(seed)
    weights = np.array([0.4, 0.25, 0.15, 0.1, 0.1])
    if shift:
        weights = np.array([0.2, 0.25, 0.35, 0.1, 0.1])  # the shift moves a share of US to BR
    out = []
    for i in range(n):
        amount = round(float(rng.normal(shift, 1.0)), 6) if rng.uniform() > 0.03 else None
        country = str(rng.choice(COUNTRIES + ["XX"] * bool(shift), p=_with_new(weights, shift)))
        out.append(
            InferenceEvent(
                model_id="m", features={"amount": amount, "country": country},
                score=round(float(rng.beta(2, 5)), 6),
                timestamp_ms=start_ms + i * step_ms if step_ms else None,
            )
        )  # fmt: skip
    return out


def _with_new(weights: np.ndarray, shift: float) -> np.ndarray:
    """With a shift, a value the reference never saw ("XX") takes 5%."""
    if not shift:
        return weights
    return np.append(weights * 0.95, 0.05)


def cells_of(reference: list[InferenceEvent]) -> dict[str, Cells]:
    """The reference's cells. Built once per test: the sketch's compaction is randomised, so two profiles
    of the same values may differ within its rank error."""
    profile = Profile(bins=10, top_k=4)
    profile.add_all(reference)
    return Cells.of_model(profile.models["m"], profile.bins, profile.top_k)


def sources(n: int) -> list[RecordSource]:
    """Two partitions, taking turns."""
    return [RecordSource(offset=1000 + i // 2, topic="in", partition=i % 2) for i in range(n)]


def feed(
    model: ReferenceWindow, events: Sequence[InferenceEvent], where: Sequence[RecordSource]
) -> list[WindowResult]:
    results: list[WindowResult] = []
    for event, source in zip(events, where, strict=True):
        results += model.add(event, source)
    return results


def in_window(
    result: WindowResult, events: Sequence[InferenceEvent], where: Sequence[RecordSource]
) -> list[Any]:
    """The events the result names: those between its first and last offset of each partition."""
    return [
        event
        for event, source in zip(events, where, strict=True)
        if (span := result.offsets.get(f"{source.topic}/{source.partition}"))
        and span[0] <= source.offset <= span[1]
    ]


def floored(counts: np.ndarray) -> np.ndarray:
    shares = np.maximum(counts / counts.sum(), FLOOR)
    return shares / shares.sum()


def expected(
    signal: str, test: str, cells: Cells, events: list[InferenceEvent]
) -> tuple[float, float | None]:
    """The statistic from the raw values, by numpy and scipy."""
    name = signal.removeprefix("feature:")
    raw = [e.score if signal == "score" else e.features.get(name) for e in events]
    if cells.kind == "numeric":
        values = np.array([v for v in raw if isinstance(v, float)])
        live = np.bincount(np.digitize(values, cells.edges, right=True), minlength=len(cells.reference))
    else:
        index = {value: i for i, value in enumerate(cells.categories)}
        live = np.zeros(len(cells.reference))
        for value in raw:
            if isinstance(value, str):
                live[index.get(value, len(index))] += 1
    reference = np.array(cells.reference)
    p, q = floored(reference), floored(live.astype(float))
    match test:
        case "psi":
            return float(np.sum(rel_entr(q, p)) + np.sum(rel_entr(p, q))), None
        case "jensen_shannon":
            return float(jensenshannon(p, q, base=2)), None
        case "wasserstein":
            return float(wasserstein_distance(cells.points, cells.points, reference, live)), None
        case "chi_square":
            found = chisquare(live, p * live.sum())
            return float(found.statistic), float(found.pvalue)
    raise AssertionError(test)


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_every_window_statistic_equals_scipy_on_the_window_it_names(shift: float) -> None:
    reference = stream(1, 20_000)
    model = ReferenceWindow(cells_of(reference), ALL_TESTS)
    live = stream(2, 2_000, shift=shift)
    where = sources(len(live))
    results = feed(model, live, where)
    assert len({r.offsets["in/0"] for r in results}) == 5  # 2,000 events: five windows of 400
    assert {r.test for r in results} == {"psi", "jensen_shannon", "wasserstein", "chi_square"}
    for result in results:
        events = in_window(result, live, where)
        assert len(events) == result.events == 400
        statistic, p_value = expected(result.signal, result.test, model.cells[result.signal], events)
        assert result.statistic == pytest.approx(statistic, abs=1e-9), result
        if p_value is None:
            assert result.p_value is None
        else:
            assert result.p_value == pytest.approx(p_value, abs=1e-9), result
    crossed = {(r.signal, r.test) for r in results if r.crossed}
    if shift:  # a shift of 0.7 std and a new category: every window, every test on the shifted signals
        assert {
            ("feature:amount", "psi"),
            ("feature:amount", "wasserstein"),
            ("feature:country", "chi_square"),
        } <= crossed
    else:
        assert ("feature:amount", "psi") not in crossed


def test_record_time_windows_close_at_the_stretch_boundaries() -> None:
    policy = WindowPolicy(seconds=60.0, numeric={"psi": 0.2}, categorical={})
    model = ReferenceWindow(cells_of(stream(3, 5_000)), policy)
    # 225 s of events, 4 a second, from 50 s into a minute: 10 s of a first minute, three whole ones, and
    # the open one of the last event.
    live = stream(4, 900, start_ms=1_700_000_030_000, step_ms=250)
    assert 1_700_000_030_000 % 60_000 == 50_000
    results = feed(model, live, sources(len(live)))
    starts = sorted({(r.start_ms, r.end_ms) for r in results})
    first = 1_700_000_030_000 - 50_000
    assert starts == [(first + i * 60_000, first + (i + 1) * 60_000) for i in range(4)]
    assert sorted({(r.start_ms, r.events) for r in results}) == [
        (first + i * 60_000, events) for i, events in enumerate((40, 240, 240, 240))
    ]
    for result in results:
        times = [e.timestamp_ms for e in in_window(result, live, sources(len(live)))]
        assert result.start_ms is not None and result.end_ms is not None
        assert all(result.start_ms <= t < result.end_ms for t in times if t is not None)
        assert len(times) == result.events


def test_a_window_exported_mid_way_and_restored_closes_as_if_uninterrupted() -> None:
    reference, live = stream(5, 5_000), stream(6, 1_000, shift=0.7)
    where = sources(len(live))
    cells = cells_of(reference)
    whole = feed(ReferenceWindow(cells, ALL_TESTS), live, where)
    first = ReferenceWindow(cells, ALL_TESTS)
    results = feed(first, live[:555], where[:555])
    second = ReferenceWindow(cells, ALL_TESTS)
    second.restore(first.export())
    results += feed(second, live[555:], where[555:])
    assert results == whole


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "either `events` or `seconds`"),
        ({"events": 10, "seconds": 1.0}, "either `events` or `seconds`"),
        ({"events": 0}, "at least 1"),
        ({"seconds": -1.0}, "positive"),
        ({"events": 10, "numeric": {"chi_square": 0.01}}, "numeric signals have no test chi_square"),
        ({"events": 10, "categorical": {"wasserstein": 0.1}}, "categorical signals have no test wasserstein"),
    ],
)
def test_a_window_policy_that_cannot_work_is_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowPolicy(**settings)
