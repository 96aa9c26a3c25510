"""`multivariate:reconstruction` end to end in the core: a profile built from events keeps each model's joint
moments, the config fits a PCA on them for the models `reference.multivariate` selects, and the monitor feeds
each event's reconstruction error to the signal's detector (core/joint.py, core/multivariate.py).

The oracle is independent of the code under test: numpy's SVD of the standardised reference sample gives
the components and each live event's error, and River's ADWIN run on those errors says where the drift is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from river.drift import ADWIN

from streamdrift.config import parse_config
from streamdrift.config.model import StreamdriftConfig
from streamdrift.core.alert import RecordSource
from streamdrift.core.event import InferenceEvent
from streamdrift.core.monitor import INCOMPLETE_ROW, Monitor
from streamdrift.core.reference import Profile
from streamdrift.errors import ConfigError

NAMES = ("a", "b", "c", "d")  # two pairs: (a, b) and (c, d)
FLIP_AT = 3_000
CONFIG = """
kafka: {bootstrap_servers: "127.0.0.1:1"}
topics: {input: [events]}
defaults:
  prediction: {enabled: false}
  score: {enabled: false}
reference:
  profile: ref.json
  multivariate: {models: "pairs-*"}
"""


def pairs(seed: int, rho_by_part: list[tuple[float, int]]) -> np.ndarray:
    """Rows of (a, b, c, d): every marginal N(0, 1), each pair correlated by its part's rho."""
    rng = np.random.default_rng(seed)
    parts = []
    for rho, count in rho_by_part:
        cov = np.array([[1.0, rho], [rho, 1.0]])
        parts.append(np.hstack([rng.multivariate_normal([0, 0], cov, count) for _ in range(2)]))
    return np.vstack(parts)


def events(rows: np.ndarray, model_id: str = "pairs-1") -> list[InferenceEvent]:
    return [
        InferenceEvent(model_id=model_id, features=dict(zip(NAMES, map(float, row), strict=True)))
        for row in rows
    ]


def configured(tmp_path: Path, reference: np.ndarray, text: str = CONFIG) -> StreamdriftConfig:
    profile = Profile()
    profile.add_all(events(reference))
    profile.add_all(events(reference[:500], model_id="other"))
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    return parse_config(text, base_dir=tmp_path)


def oracle_errors(reference: np.ndarray, live: np.ndarray, share: float = 0.65) -> np.ndarray:
    """Each live row's squared reconstruction error under a PCA of the standardised reference (numpy SVD)."""
    mean, std = reference.mean(axis=0), reference.std(axis=0, ddof=1)
    standard = (reference - mean) / std
    _, singular, right = np.linalg.svd(standard, full_matrices=False)
    shares = np.cumsum(singular**2) / np.sum(singular**2)
    kept = right[: int(np.searchsorted(shares, share)) + 1]
    z = (live - mean) / std
    residual = z - z @ kept.T @ kept
    errors: np.ndarray = np.einsum("ij,ij->i", residual, residual)
    return errors


def first_adwin_drift(values: np.ndarray) -> int | None:
    detector = ADWIN()
    for index, value in enumerate(values):
        detector.update(float(value))
        if detector.drift_detected:
            return index
    return None


def run(monitor: Monitor, stream: list[InferenceEvent]) -> list[tuple[int, str]]:
    return [
        (offset, alert.signal)
        for offset, event in enumerate(stream)
        for alert in monitor.process(event, RecordSource(offset=offset, topic="events", partition=0))
        if alert.level == "drift"
    ]


def test_a_rotation_alerts_on_the_reconstruction_signal_and_on_no_feature(tmp_path: Path) -> None:
    reference = pairs(1, [(0.9, 10_000)])
    live = pairs(2, [(0.9, FLIP_AT), (-0.9, 3_000)])
    config = configured(tmp_path, reference)
    assert set(config.policies().multivariate) == {"pairs-1"}  # "other" is profiled but not selected
    monitor = Monitor(config.policies(), config_version=config.config_version)

    drifts = run(monitor, events(live))

    expected = first_adwin_drift(oracle_errors(reference, live))
    assert expected is not None and FLIP_AT < expected < FLIP_AT + 2_000
    assert [offset for offset, signal in drifts if signal == "multivariate:reconstruction"][:1] == [expected]
    assert [signal for _, signal in drifts if signal.startswith("feature:")] == []


def test_the_signal_resumes_from_a_snapshot_as_if_never_stopped(tmp_path: Path) -> None:
    reference = pairs(3, [(0.9, 5_000)])
    stream = events(pairs(4, [(0.9, FLIP_AT), (-0.9, 2_000)]))
    config = configured(tmp_path, reference)
    whole = Monitor(config.policies(), config_version=config.config_version)
    expected = run(whole, stream)
    assert any(signal == "multivariate:reconstruction" for _, signal in expected)

    first = Monitor(config.policies(), config_version=config.config_version)
    cut = FLIP_AT - 100
    before = run(first, stream[:cut])
    second = Monitor(config.policies(), config_version=config.config_version)
    second.restore_model("pairs-1", first.export_model("pairs-1"))
    after = [
        (offset, alert.signal)
        for offset, event in enumerate(stream[cut:], start=cut)
        for alert in second.process(event, RecordSource(offset=offset, topic="events", partition=0))
        if alert.level == "drift"
    ]
    assert before + after == expected


def test_an_event_without_every_feature_is_counted_not_fed(tmp_path: Path) -> None:
    config = configured(tmp_path, pairs(5, [(0.9, 2_000)]))
    monitor = Monitor(config.policies(), config_version=config.config_version)
    for features in ({"a": 1.0, "b": 1.0, "c": 0.5}, {"a": 1.0, "b": None, "c": 0.5, "d": 0.1}):
        monitor.process(InferenceEvent(model_id="pairs-1", features=features), RecordSource(offset=0))
    monitor.process(
        InferenceEvent(model_id="pairs-1", features={"a": 1.0, "b": 1.0, "c": 0.5, "d": 0.4}),
        RecordSource(offset=2),
    )
    assert monitor.skipped[INCOMPLETE_ROW] == 2
    track = monitor.models["pairs-1"].tracks["multivariate:reconstruction"]
    assert track is not None and track.seen == 1


def test_the_signal_follows_its_defaults_and_model_rules(tmp_path: Path) -> None:
    text = CONFIG + 'models:\n  - match: "pairs-1"\n    multivariate: {enabled: false}\n'
    config = configured(tmp_path, pairs(6, [(0.9, 2_000)]), text)
    monitor = Monitor(config.policies(), config_version=config.config_version)
    monitor.process(events(pairs(7, [(0.9, 1)]))[0], RecordSource(offset=0))
    assert monitor.models["pairs-1"].tracks["multivariate:reconstruction"] is None


def test_a_profile_without_joint_moments_is_one_clear_error(tmp_path: Path) -> None:
    profile = Profile()
    profile.add_all(InferenceEvent(model_id="pairs-1", features={"a": float(i)}) for i in range(500))
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    with pytest.raises(ConfigError, match=r"reference\.multivariate: no model of the profile matching"):
        parse_config(CONFIG, base_dir=tmp_path)


def test_joint_moments_merge_like_one_period(tmp_path: Path) -> None:
    rows = pairs(8, [(0.5, 4_000)])
    whole, first, second = Profile(), Profile(), Profile()
    whole.add_all(events(rows))
    first.add_all(events(rows[:1_500]))
    second.add_all(events(rows[1_500:]))
    first.merge(second)
    merged = first.document()["models"]["pairs-1"]["joint"]
    assert merged["features"] == list(NAMES)
    assert merged["moments"]["count"] == len(rows)
    np.testing.assert_allclose(merged["moments"]["mean"], rows.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(
        np.array(merged["moments"]["comoment"]) / (len(rows) - 1), np.cov(rows, rowvar=False), rtol=1e-9
    )
    assert whole.document()["models"]["pairs-1"]["joint"]["moments"]["count"] == len(rows)


def test_a_model_whose_features_do_not_vary_gets_no_pca_and_the_others_keep_theirs(tmp_path: Path) -> None:
    profile = Profile()
    profile.add_all(events(pairs(9, [(0.9, 500)])))
    flat = [
        InferenceEvent(model_id="pairs-flat", features={"a": 1.0, "b": 2.0, "c": 3.0}) for _ in range(500)
    ]
    profile.add_all(flat)
    (tmp_path / "ref.json").write_bytes(orjson.dumps(profile.document()))
    config = parse_config(CONFIG, base_dir=tmp_path)
    assert set(config.policies().multivariate) == {"pairs-1"}
