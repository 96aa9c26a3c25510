"""Reference profiles (core/reference.py): what they hold, checked against numpy and collections on the same
values, their JSON document, and the merge of two periods against the profile of both."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest

from streamdrift.core.divergence import binned
from streamdrift.core.event import InferenceEvent, Scalar
from streamdrift.core.reference import Profile, ProfileError

RANK_ERROR = 0.02  # DataSketches' KLL at k=200: about 1.3% at 99% confidence; a margin above


def events(seed: int, n: int, model: str = "m-1", shift: float = 0.0) -> list[InferenceEvent]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        amount: Scalar = round(float(rng.lognormal(3 + shift, 1)), 6)
        draw = rng.uniform()
        if draw < 0.05:
            amount = None  # missing
        elif draw < 0.07:
            amount = "n/a"  # a string in a numeric feature
        country = str(rng.choice(["US", "DE", "BR", "FR", "JP", "IN"], p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05]))
        out.append(
            InferenceEvent(
                model_id=model,
                features={"amount": amount, "country": country},
                score=round(float(rng.beta(2, 5)), 6),
            )
        )
    return out


def numeric_values(stream: list[InferenceEvent], name: str) -> np.ndarray:
    values = [e.features[name] for e in stream]
    return np.array([v for v in values if isinstance(v, float)])


def signal(profile: Profile, name: str, model: str = "m-1") -> dict[str, Any]:
    document: dict[str, Any] = profile.document()["models"][model]["signals"][name]
    return document


def test_a_numeric_signal_holds_its_moments_counts_and_bins() -> None:
    stream = events(1, 20_000)
    profile = Profile(bins=10)
    profile.add_all(stream)
    found = signal(profile, "feature:amount")
    values = numeric_values(stream, "amount")
    raw = [e.features["amount"] for e in stream]
    assert found["type"] == "numeric"
    assert found["count"] == len(values)
    assert found["missing"] == sum(v is None for v in raw)
    assert found["type_mismatch"] == sum(isinstance(v, str) for v in raw)
    assert found["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert found["std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert (found["min"], found["max"]) == (values.min(), values.max())
    assert len(found["edges"]) == 9 and found["edges"] == sorted(found["edges"])
    # The edges are the deciles, and each bin's count is the exact count in it, within the rank error.
    exact = np.quantile(values, np.linspace(0.1, 0.9, 9))
    ranks = np.searchsorted(np.sort(values), found["edges"], "right") / len(values)
    assert np.all(np.abs(ranks - np.linspace(0.1, 0.9, 9)) < RANK_ERROR), (found["edges"], exact)
    counts = binned(found["edges"], values)
    assert sum(found["counts"]) == len(values)
    assert np.all(np.abs(np.array(found["counts"]) - counts) <= RANK_ERROR * len(values))


def test_a_categorical_signal_holds_its_top_values_and_the_rest() -> None:
    stream = events(2, 5_000)
    profile = Profile(top_k=3)
    profile.add_all(stream)
    found = signal(profile, "feature:country")
    counted = Counter(str(e.features["country"]) for e in stream)
    top = dict(counted.most_common(3))
    assert found == {
        "type": "categorical", "missing": 0, "type_mismatch": 0, "count": len(stream),
        "categories": top, "other": len(stream) - sum(top.values()),
    }  # fmt: skip


def test_only_the_models_the_glob_selects() -> None:
    profile = Profile(models="fraud-*")
    profile.add_all(events(3, 10, model="fraud-v1") + events(3, 10, model="churn-v1"))
    assert list(profile.document()["models"]) == ["fraud-v1"]


def test_the_document_reads_back_to_the_same_document() -> None:
    profile = Profile()
    profile.add_all(events(4, 3_000))
    document = orjson.loads(orjson.dumps(profile.document()))
    assert Profile.from_document(document).document() == profile.document()


def test_profiles_of_two_periods_merge_into_the_profile_of_both() -> None:
    first, second = events(5, 8_000), events(6, 12_000, shift=0.5)
    both = Profile(top_k=3)
    both.add_all(first + second)
    merged = Profile.from_document(orjson.loads(orjson.dumps(_profile(first).document())))
    merged.merge(Profile.from_document(orjson.loads(orjson.dumps(_profile(second).document()))))
    found, expected = signal(merged, "feature:amount"), signal(both, "feature:amount")
    for key in ("count", "missing", "type_mismatch", "min", "max"):
        assert found[key] == expected[key], key
    assert found["mean"] == pytest.approx(expected["mean"], rel=1e-9)
    assert found["std"] == pytest.approx(expected["std"], rel=1e-9)
    values = numeric_values(first + second, "amount")
    ranks = np.searchsorted(np.sort(values), found["edges"], "right") / len(values)
    assert np.all(np.abs(ranks - np.linspace(0.1, 0.9, 9)) < RANK_ERROR)
    # Six countries, three kept: the same three in both periods (40%, 20%, 15% against 10% and less), so the
    # merge is exact here.
    assert signal(merged, "feature:country") == signal(both, "feature:country")
    assert merged.document()["models"]["m-1"]["events"] == 20_000


def _profile(stream: list[InferenceEvent]) -> Profile:
    profile = Profile(top_k=3)
    profile.add_all(stream)
    return profile


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="something else"), "not a streamdrift profile"),
        (lambda d: d.update(version=99), "profile version 99"),
        (lambda d: d.pop("bins"), "without a field"),
        (lambda d: d["models"]["m-1"]["signals"]["score"].update(type="ordinal"), "unknown signal type"),
        (lambda d: d["models"]["m-1"]["signals"]["score"].update(count=1), "a sketch of"),
    ],
)
def test_a_document_that_is_not_a_profile_is_refused_with_the_reason(change: Any, message: str) -> None:
    profile = Profile()
    profile.add_all(events(7, 100))
    document = orjson.loads(orjson.dumps(profile.document()))
    change(document)
    with pytest.raises(ProfileError, match=message):
        Profile.from_document(document)


def test_profiles_of_other_bins_do_not_merge() -> None:
    with pytest.raises(ProfileError, match="cannot be merged"):
        Profile(bins=10).merge(Profile(bins=20))
