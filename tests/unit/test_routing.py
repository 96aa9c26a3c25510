"""The router's parts without a broker: the offset ledger against a brute-force reading of what is done, the
routes file's checks, and the Alertmanager alert of an episode's drift and of its resolved alert."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.config.loader import load_routes
from streamdrift.config.routes import TEMPLATE_FIELDS, Route
from streamdrift.core.alert import DriftAlert, RecordSource, alert_id
from streamdrift.errors import ConfigError
from streamdrift.ports import CommitOffset, TopicPartition
from streamdrift.routing.delivery import sender
from streamdrift.routing.ledger import OffsetLedger
from streamdrift.routing.payloads import alertmanager_alert, fill, template_fields
from streamdrift.subscriber import Alert

TP = TopicPartition("alerts", 0)


@settings(max_examples=200, deadline=None)
@given(routes=st.lists(st.integers(0, 3), min_size=1, max_size=30), seed=st.integers(0, 2**32 - 1))
def test_the_ledger_commits_up_to_the_first_record_some_route_still_holds(
    routes: list[int], seed: int
) -> None:
    """Records at offsets 0, 2, 4, … (gaps, as transaction markers leave), each held by some routes, delivered
    in a random order; after each delivery the committed offset is that of a brute-force search."""
    ledger = OffsetLedger()
    offsets = [2 * i for i in range(len(routes))]
    holds = dict(zip(offsets, routes, strict=True))
    for offset, count in holds.items():
        ledger.add(TP, offset, count)
    deliveries = [offset for offset, count in holds.items() for _ in range(count)]
    random.Random(seed).shuffle(deliveries)
    committed = None

    def expected() -> int | None:
        undone = [offset for offset in offsets if holds[offset] > 0]
        done = [offset for offset in offsets if not undone or offset < undone[0]]
        return done[-1] + 1 if done else None

    def commit() -> int | None:
        nonlocal committed
        moved = ledger.to_commit()
        if moved:
            committed = moved[TP].offset
        return committed

    assert commit() == expected()
    for offset in deliveries:
        holds[offset] -= 1
        ledger.delivered(TP, offset)
        assert commit() == expected()
    assert committed == offsets[-1] + 1 and ledger.in_flight() == 0


def test_a_partition_taken_away_is_forgotten_and_late_deliveries_ignored() -> None:
    ledger = OffsetLedger()
    other = TopicPartition("alerts", 1)
    ledger.add(TP, 0, 1)
    ledger.add(other, 0, 1)
    ledger.forget({TP})
    ledger.delivered(TP, 0)
    ledger.delivered(other, 0)
    assert ledger.to_commit() == {other: CommitOffset(1, "")}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text("kafka: {bootstrap_servers: 'k:9092'}\nalerts_topic: drift-alerts\n" + text)
    return path


def test_a_routes_file_reads_with_its_defaults_and_its_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("s3cret\n")
    config = load_routes(
        write(
            tmp_path,
            f"routes:\n  - name: oncall\n    alertmanager: {{url: 'http://am:9093'}}\n"
            f"  - name: audit\n    match: {{models: ['fraud-*'], levels: [drift]}}\n"
            f"    webhook: {{url: 'https://hooks.example/x', secret_file: '{tmp_path / 'key'}'}}\n",
        )
    )
    oncall, audit = config.routes
    assert oncall.match.takes("any", "score", "warning") and config.group_id == "streamdrift-router"
    assert audit.match.takes("fraud-v2", "feature:x", "drift")
    assert not audit.match.takes("fraud-v2", "feature:x", "resolved") and not audit.match.takes(
        "spam", "x", "drift"
    )
    assert audit.webhook is not None and audit.webhook.secret is not None
    assert audit.webhook.secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        ("routes: []", "routes: List should have at least 1 item"),
        ("routes:\n  - name: a\n", "routes[0]: give exactly one receiver: alertmanager, webhook or apprise"),
        (
            "routes:\n  - name: a\n    webhook: {url: 'file:///etc/passwd'}\n",
            "routes[0].webhook.url: an http",
        ),
        (
            "routes:\n  - name: a\n    title: '{nope}'\n    webhook: {url: 'http://h'}\n",
            "unknown field {nope}",
        ),
        (
            "routes:\n  - {name: a, webhook: {url: 'http://h'}}\n  - {name: a, webhook: {url: 'http://h'}}\n",
            "route names must be unique: a",
        ),
        (
            "routes:\n  - {name: a, webhook: {url: 'http://h', secret: 'hunter2', secret_file: f}}\n",
            "not both",
        ),
    ],
)
def test_a_bad_routes_file_is_one_line_per_problem_without_its_secrets(
    tmp_path: Path, routes: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_routes(write(tmp_path, routes))
    text = str(raised.value)
    assert problem in text and "hunter2" not in text


def alert(level: str, offset: int, episode: str | None, signal: str = "feature:amount") -> Alert:
    source = RecordSource(offset, "events", 0, 1_767_225_600_000 + offset)
    made = DriftAlert(
        alert_id=alert_id("fraud", signal, level, source), level=level,  # type: ignore[arg-type]
        model_id="fraud", model_version=None, signal=signal, detector_type="adwin", detector_params={},
        source=source, observations=offset + 1, stats={}, event_time_ms=None, config_version="c" * 12,
        episode_id=episode,
    )  # fmt: skip
    return Alert.from_json(made.to_json())


def test_an_episodes_resolved_alert_has_the_labels_of_the_drift_that_opened_it() -> None:
    route = Route.model_validate({"name": "oncall", "alertmanager": {"url": "http://am:9093"}})
    assert route.alertmanager is not None
    opening = alert("drift", 10, None)
    drift = alert("drift", 10, opening.alert_id)
    resolved = alert("resolved", 90, drift.alert_id)
    fired = alertmanager_alert(drift, route, route.alertmanager)
    ended = alertmanager_alert(resolved, route, route.alertmanager)
    assert fired["labels"] == ended["labels"]
    assert str(fired["startsAt"]) < str(ended["endsAt"]) < str(fired["endsAt"])  # RFC 3339 in UTC sorts
    assert fired["annotations"]["summary"] == "fraud: feature:amount drift"  # type: ignore[index]


def test_a_template_names_the_alerts_fields() -> None:
    fields = template_fields(alert("warning", 7, None, "score"), "audit")
    assert fill("{route}: {model_id}/{signal} {level} at {topic}/{partition}@{offset}", fields) == (
        "audit: fraud/score warning at events/0@7"
    )


def test_the_example_routes_file_reads() -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "routes.yaml"
    config = load_routes(example, env={"STREAMDRIFT_WEBHOOK_SECRET": "s"})
    assert [route.name for route in config.routes] == ["oncall", "audit"]
    with pytest.raises(ConfigError, match="STREAMDRIFT_WEBHOOK_SECRET is not set"):
        load_routes(example, env={})


def test_an_apprise_url_apprise_does_not_know_is_a_config_error() -> None:
    route = Route.model_validate({"name": "chat", "apprise": {"urls": ["nonsense://x"]}})
    with pytest.raises(ConfigError, match=r"routes: chat: apprise.urls\[0\]: not a URL apprise knows"):
        sender(route)


def test_a_warning_expires_in_alertmanager_after_warning_for_s() -> None:
    route = Route.model_validate(
        {"name": "oncall", "alertmanager": {"url": "http://am:9093", "warning_for_s": 60}}
    )
    assert route.alertmanager is not None
    sent = alertmanager_alert(alert("warning", 3, None, "score"), route, route.alertmanager)
    ends = datetime.fromisoformat(str(sent["endsAt"]))
    assert timedelta(seconds=50) < ends - datetime.now(tz=UTC) <= timedelta(seconds=60)
    assert sent["labels"]["level"] == "warning"  # type: ignore[index]


def test_the_fields_a_template_may_name_are_the_fields_it_is_given() -> None:
    """The routes file checks names against TEMPLATE_FIELDS; payloads fill them from template_fields."""
    assert set(template_fields(alert("drift", 1, None), "r")) == TEMPLATE_FIELDS
