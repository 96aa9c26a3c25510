"""The new signals end to end through the real broker: categorical features, missing values, model-level
alerts and drift episodes, each run by the real service process (`streamdrift run`) over a seeded stream.

Every test reads the read_committed alerts topic and compares it, byte for byte, with an offline run of the
same core over the same records; where a detection's position is the claim (which events alert), the
expected offsets come from River itself, fed the same 0/1 or numeric values. The last test kills the service
with `kill -9` several times, some of them mid-episode, and still expects the uninterrupted run's alerts.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import yaml

from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.core.alert import ALERT_SCHEMA, SCHEMA_HEADER
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.monitor import Monitor
from streamdrift.core.snapshot import decode_snapshot
from tests.conftest import KAFKA_CLIENT_ENV, KafkaClients, TopicFactory, unique_name
from tests.integration.conftest import Service
from tests.integration.runs import (
    BrokerView,
    committed_total,
    kill_in_flight,
    offline,
    producing,
    read_all,
    wait_for,
)
from tests.river_runs import adwin_drifts

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

Record = Any  # a kafka-python ConsumerRecord

SHIFT_SIGMAS = 3.0


# ---- deployment --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deployment:
    """One service under test: its topics (all made by the `new_topic` fixture, so all deleted after the
    test), its consumer group and its config file."""

    input: str
    alerts: str
    state: str
    group: str
    config_path: Path
    config: StreamdriftConfig


def deploy(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    tmp_path: Path,
    *,
    partitions: int = 1,
    processing: dict[str, Any] | None = None,
    **sections: Any,
) -> Deployment:
    topics = {
        "input": [new_topic(partitions)],
        "alerts": new_topic(),
        "dead_letter": new_topic(),
        "state": new_topic(partitions, {"cleanup.policy": "compact"}),
    }
    group = unique_name("signals-group")
    document: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group,
            "client": os.environ[KAFKA_CLIENT_ENV],
        },
        "topics": topics,
        "processing": {"commit_interval_ms": 100, "session_timeout_ms": 6000, **(processing or {})},
        "http": {"port": 0},  # several services may run at once
        "logging": {"summary_interval_s": 1},
        **sections,
    }
    text = yaml.safe_dump(document, sort_keys=False)
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(text)
    return Deployment(
        input=topics["input"][0],
        alerts=topics["alerts"],
        state=topics["state"],
        group=group,
        config_path=config_path,
        config=parse_config(text.encode()),
    )


def produce_all(clients: KafkaClients, topic: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    producer = clients.producer(linger_ms=5)
    futures = [producer.send(topic, key=model.encode(), value=orjson.dumps(e)) for model, e in events]
    producer.flush(timeout=30)
    for future in futures:
        future.get(timeout=30)


def run_to_end(
    services: Callable[[Path, str], Service], deployment: Deployment, kafka_admin: Any, total: int
) -> Service:
    """Start the service on input already produced, wait until it has committed all of it, stop it."""
    service = services(deployment.config_path, unique_name("signals"))
    service.start()
    wait_for(
        service,
        lambda: committed_total(kafka_admin, deployment.group) == total,
        "the service to commit the whole input",
    )
    assert service.stop() == 0, service.log_tail()
    return service


# ---- comparing with the offline run and with River -------------------------------------------------


def published_equals_offline(
    clients: KafkaClients, deployment: Deployment
) -> tuple[list[Record], list[dict[str, Any]]]:
    """The alerts topic holds exactly the offline run's alerts: the same bytes, none missing, no duplicate,
    and in the offline order within each input partition. Returns the input records and the published
    alerts, decoded."""
    records = read_all(clients, deployment.input)
    expected, _monitor = offline(deployment.config, records)
    published_records = read_all(clients, deployment.alerts)
    for record in published_records:
        assert dict(record.headers) == {SCHEMA_HEADER: ALERT_SCHEMA.encode()}, record.headers
        assert record.key == orjson.loads(record.value)["model_id"].encode()
    published = [record.value for record in published_records]
    assert len(published) == len(set(published)), "duplicate alerts on the alerts topic"
    missing = [a for a in expected if a not in set(published)]
    extra = [a for a in published if a not in set(expected)]
    assert not missing and not extra, (
        f"{len(missing)} alerts missing, {len(extra)} not expected; first missing: {missing[:2]}; "
        f"first not expected: {extra[:2]}"
    )

    def by_partition(alerts: list[bytes]) -> dict[int, list[bytes]]:
        split: dict[int, list[bytes]] = {}
        for alert in alerts:
            split.setdefault(orjson.loads(alert)["source"]["partition"], []).append(alert)
        return split

    assert by_partition(published) == by_partition(expected), "alerts out of the input's order"
    return records, [orjson.loads(alert) for alert in published]


def river_offsets(stream: list[tuple[int, float]]) -> list[int]:
    """ADWIN's drift indices on a stream of (offset, value), mapped to the offsets of those values."""
    return [stream[i][0] for i in adwin_drifts([value for _offset, value in stream])]


def events_of(records: list[Record]) -> list[tuple[int, dict[str, Any]]]:
    """(offset, event) of a single-partition input, in offset order."""
    assert {record.partition for record in records} == {0}
    return [(r.offset, orjson.loads(r.value)) for r in sorted(records, key=lambda r: r.offset)]


def drift_offsets(alerts: list[dict[str, Any]], model: str, signal: str) -> list[int]:
    return [
        a["source"]["offset"]
        for a in alerts
        if a["model_id"] == model and a["signal"] == signal and a["level"] == "drift"
    ]


# ---- 1. categorical features -------------------------------------------------------------------------

CATEGORIES_BEFORE = {"a": 0.6, "b": 0.3, "c": 0.1}
CATEGORIES_AFTER = {"a": 0.25, "b": 0.3, "c": 0.45}
CATEGORIES_WITH_NEW = {"a": 0.2, "b": 0.25, "c": 0.35, "d": 0.2}
MIX_SHIFT_AT, NEW_CATEGORY_AT, CATEGORICAL_EVENTS = 3000, 5000, 7000
WARMUP = 1000


def categorical_stream(seed: int) -> list[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    events = []
    for i in range(CATEGORICAL_EVENTS):
        mix = (
            CATEGORIES_BEFORE if i < MIX_SHIFT_AT else CATEGORIES_AFTER if i < NEW_CATEGORY_AT
            else CATEGORIES_WITH_NEW
        )  # fmt: skip
        channel = str(rng.choice(list(mix), p=list(mix.values())))
        if i == NEW_CATEGORY_AT:
            channel = "d"  # the new category first appears exactly here
        features = {"channel": channel, "amount": round(float(rng.lognormal(3.0, 0.5)), 2)}
        events.append(("shop", {"model_id": "shop", "features": features}))
    return events


def test_a_shift_in_a_category_mix_alerts_on_its_category_streams_and_a_new_category_alerts_once(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    deployment = deploy(bootstrap_servers, new_topic, tmp_path, categorical={"warmup": WARMUP, "top_k": 5})
    events = categorical_stream(seed=7)
    produce_all(kafka_clients, deployment.input, events)
    run_to_end(services, deployment, kafka_admin, len(events))
    records, alerts = published_equals_offline(kafka_clients, deployment)

    # The streams: after the warm-up (whose last value feeds none), one 0/1 stream per frequent category
    # of the warm-up (top 5 by count, ties by value) and one for every other value.
    channel = [(offset, event["features"]["channel"]) for offset, event in events_of(records)]
    warmup, after = channel[:WARMUP], channel[WARMUP:]
    counts = Counter(value for _offset, value in warmup)
    top = sorted(counts, key=lambda value: (-counts[value], value))[:5]
    assert top == ["a", "b", "c"]
    streams = {f"category:channel={c}": [(o, float(v == c)) for o, v in after] for c in top}
    streams["category:channel=_other"] = [(o, float(v not in top)) for o, v in after]
    for signal, stream in streams.items():
        assert drift_offsets(alerts, "shop", signal) == river_offsets(stream), signal

    shift_offset, new_offset = channel[MIX_SHIFT_AT][0], channel[NEW_CATEGORY_AT][0]
    first_drift = min(o for signal, stream in streams.items() for o in river_offsets(stream))
    assert first_drift >= shift_offset, "seed property (River): no category stream drifts before the shift"
    after_shift = [
        a
        for a in alerts
        if a["signal"].startswith("category:channel=") and shift_offset <= a["source"]["offset"] < new_offset
    ]
    assert after_shift, "the shift of the category mix raised no alert on any category:channel= stream"

    new = [a for a in alerts if a["signal"] == "new_category:channel"]
    assert len(new) == 1, f"one new_category alert expected, got {len(new)}"
    assert sum(value == "d" for _offset, value in channel) > 300, "the new category must recur"
    assert new[0]["detector"]["type"] == "new_category"
    assert new[0]["stats"]["value"] == "d"
    assert new[0]["source"]["offset"] == new_offset == min(o for o, v in channel if v == "d")
    assert new[0]["level"] == "drift" and new[0]["episode_id"] == new[0]["alert_id"]


# ---- 2. missing values -------------------------------------------------------------------------------

MISSING_JUMP_AT, MISSING_EVENTS, PLAIN_EVENTS = 3000, 6000, 3000


def missing_stream(seed: int) -> list[tuple[str, dict[str, Any]]]:
    """`m-miss` sends `age` null 0.2% of the time, then 30% from its event MISSING_JUMP_AT; `m-plain`, never
    null, is interleaved at random, so offsets are not the signal's indices."""
    rng = np.random.default_rng(seed)
    order = ["m-miss"] * MISSING_EVENTS + ["m-plain"] * PLAIN_EVENTS
    order = [str(m) for m in rng.permutation(order)]
    seen: Counter[str] = Counter()
    events = []
    for model in order:
        i = seen[model]
        seen[model] += 1
        null_rate = 0.3 if model == "m-miss" and i >= MISSING_JUMP_AT else 0.002 if model == "m-miss" else 0.0
        age = None if i > 0 and rng.uniform() < null_rate else round(float(rng.normal(40, 12)), 1)
        features = {"age": age, "income": round(float(rng.normal(50, 10)), 2)}
        events.append((model, {"model_id": model, "features": features}))
    return events


def test_a_jump_in_missing_values_alerts_where_rivers_adwin_detects_it(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    deployment = deploy(bootstrap_servers, new_topic, tmp_path)
    events = missing_stream(seed=3)
    produce_all(kafka_clients, deployment.input, events)
    run_to_end(services, deployment, kafka_admin, len(events))
    records, alerts = published_equals_offline(kafka_clients, deployment)

    # missing:<name> of a model: 1 when the feature is absent or null, from the model's first event with it.
    streams: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for offset, event in events_of(records):
        for name, value in event["features"].items():
            streams.setdefault((event["model_id"], name), []).append((offset, float(value is None)))
    expected = {key: river_offsets(stream) for key, stream in streams.items()}
    published = {(model, name): drift_offsets(alerts, model, f"missing:{name}") for model, name in streams}
    assert published == expected
    assert {key for key, offsets in expected.items() if offsets} == {("m-miss", "age")}, (
        "only the jump should be detected (a seed property, checked with River)"
    )
    jump_offset = streams["m-miss", "age"][MISSING_JUMP_AT][0]
    assert min(expected["m-miss", "age"]) >= jump_offset
    assert all(a["detector"]["type"] == "adwin" for a in alerts if a["signal"] == "missing:age")


# ---- 3. model-level alerts ---------------------------------------------------------------------------

MODEL_FEATURES = [f"f{i}" for i in range(8)]
# Five features shift their mean by 3 sigma, at about the same event and not in name order.
SHIFT_AT = {"f6": 2000, "f2": 2040, "f0": 2100, "f5": 2160, "f3": 2230}
MODEL_EVENTS, MODEL_WINDOW = 4600, 2000


def model_stream(seed: int) -> list[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    events = []
    for i in range(MODEL_EVENTS):
        features = {
            name: round(float(rng.normal(SHIFT_SIGMAS * (i >= SHIFT_AT.get(name, MODEL_EVENTS)), 1.0)), 4)
            for name in MODEL_FEATURES
        }
        events.append(("ranker", {"model_id": "ranker", "features": features}))
    return events


def test_five_features_shifting_together_give_exactly_one_model_alert_naming_them(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    deployment = deploy(
        bootstrap_servers,
        new_topic,
        tmp_path,
        model_alerts={"enabled": True, "min_signals": 3, "window": MODEL_WINDOW, "signals": ["feature:*"]},
    )
    events = model_stream(seed=5)
    produce_all(kafka_clients, deployment.input, events)
    run_to_end(services, deployment, kafka_admin, len(events))
    records, alerts = published_equals_offline(kafka_clients, deployment)

    # River on each feature: the seed is one where exactly the shifted five drift, all after their shift.
    ordered = events_of(records)
    offsets = [offset for offset, _event in ordered]
    river = {name: adwin_drifts([e["features"][name] for _o, e in ordered]) for name in MODEL_FEATURES}
    assert {name for name, found in river.items() if found} == set(SHIFT_AT), (
        f"seed property: River's ADWIN should detect exactly the shifted features, got {river}"
    )
    assert all(min(river[name]) >= at for name, at in SHIFT_AT.items()), river
    for name in MODEL_FEATURES:
        assert drift_offsets(alerts, "ranker", f"feature:{name}") == [offsets[i] for i in river[name]], name

    # The window opens at the first drift (event i0) and closes at event i0 + window; drifts up to and
    # including that event count, named in the order they first drifted (features in event order).
    first = min(i for found in river.values() for i in found)
    closes = first + MODEL_WINDOW
    in_window = sorted(
        (min(i for i in found if i <= closes), MODEL_FEATURES.index(name), f"feature:{name}")
        for name, found in river.items()
        if any(first <= i <= closes for i in found)
    )
    assert max(i for found in river.values() for i in found) <= closes, "a second window would open"

    model = [a for a in alerts if a["signal"] == "model"]
    assert len(model) == 1, f"exactly one model alert expected, got {len(model)}"
    (alert,) = model
    assert alert["signals"] == [signal for _i, _order, signal in in_window]
    assert set(alert["signals"]) == {f"feature:{name}" for name in SHIFT_AT}
    assert alert["detector"] == {"type": "model", "params": {"min_signals": 3, "window": MODEL_WINDOW}}
    assert alert["source"]["offset"] == offsets[closes]
    assert alert["stats"]["opened_at"]["offset"] == offsets[first]
    assert alert["stats"]["drifting"] == 5
    unshifted = {f"feature:{name}" for name in MODEL_FEATURES} - {f"feature:{n}" for n in SHIFT_AT}
    assert not [a for a in alerts if a["signal"] in unshifted], "an unshifted feature drifted"


# ---- 4. episodes across kill -9 -----------------------------------------------------------------------

EPISODE_MODELS, EPISODE_EVENTS, SEGMENT, RESOLVE_AFTER = 6, 5000, 800, 300
KILLS = 4
PRODUCE_SECONDS = 20.0  # longer than the kills and restarts take, so that they land mid-stream


def episode_stream(seed: int) -> list[tuple[str, bytes]]:
    """Interleaved models whose `x` mean jumps by 3 sigma every SEGMENT events (staggered per model, so that
    at any moment some model is mid-episode): each jump opens an episode, which is resolved RESOLVE_AFTER
    quiet values later, before the next jump. Each also has a categorical `channel` whose mix shifts."""
    rng = np.random.default_rng(seed)
    names = [f"ep-{i}" for i in range(EPISODE_MODELS)]
    out = []
    for i in range(EPISODE_EVENTS):
        for m, name in enumerate(names):
            phase = m * SEGMENT // EPISODE_MODELS
            mean = SHIFT_SIGMAS * (((i + phase) // SEGMENT) % 2)
            mix = CATEGORIES_BEFORE if i < EPISODE_EVENTS // 2 else CATEGORIES_AFTER
            features = {
                "x": round(float(rng.normal(mean, 1.0)), 4),
                "channel": str(rng.choice(list(mix), p=list(mix.values()))),
            }
            out.append((name, orjson.dumps({"model_id": name, "features": features})))
    return out


def committed_by_partition(kafka_admin: Any, group: str) -> dict[int, int]:
    offsets = kafka_admin.list_group_offsets({group: None}).get(group, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def kill_repeatedly_noting_positions(
    service: Service,
    kafka_admin: Any,
    group: str,
    view: BrokerView,
    total: int,
    kills: int,
    pause: tuple[float, float],
) -> list[dict[int, int]]:
    """`kill -9` the service `kills` times, each a random moment after it made progress, with input in hand
    (less committed than arrived) and more to arrive; notes the committed offsets of each partition."""
    rng = random.Random(kills)
    positions = []
    before = committed_total(kafka_admin, group)
    for kill in range(kills):

        def progressed(before: int = before) -> bool:
            return committed_total(kafka_admin, group) > before

        wait_for(service, progressed, f"progress before kill {kill + 1}")
        time.sleep(rng.uniform(*pause))  # a random moment to crash at, not a synchronisation
        done = kill_in_flight(service, lambda: committed_total(kafka_admin, group), view, kill + 1, None)
        assert done.committed < done.arrived < total, done
        positions.append(committed_by_partition(kafka_admin, group))
        before = done.committed
        service.start()
    return positions


def snapshots_with_an_open_episode(clients: KafkaClients, deployment: Deployment, state_key: str) -> int:
    """How many snapshots on the state topic hold a signal with an open episode."""
    monitor = Monitor(deployment.config.policies(), config_version="snapshots")
    count = 0
    for record in read_all(clients, deployment.state):
        model_id = record.key.decode()
        _header, state = decode_snapshot(record.value, state_key.encode(), RIVER_VERSION)
        monitor.restore_model(model_id, state)
        tracks = [
            track
            for watch in monitor.models[model_id].features.values()
            for track in (watch.numeric, watch.missing, watch.other, *watch.categories.values())
        ]
        count += any(track is not None and track.episode is not None for track in tracks)
    return count


def restored_since_start(service: Service) -> bool:
    """The service's latest incarnation has restored its partitions."""
    events = [e.get("event") for e in service.log_events()]
    last_start = len(events) - 1 - events[::-1].index("started") if "started" in events else len(events)
    return "partitions restored" in events[last_start:]


def episodes(alerts: list[dict[str, Any]]) -> list[tuple[str, str, int, int | None]]:
    """Check every signal's episodes and return them: (model, signal, opening offset, resolving offset, or
    None while still open). `alerts` are in input order.

    A drift outside an episode opens one named after itself; later drifts carry its id until a `resolved`
    alert with the same id closes it, `resolve_after` quiet values after the episode's last drift.
    """
    found: list[tuple[str, str, int, int | None]] = []
    open_: dict[tuple[str, str], tuple[str, int]] = {}
    for alert in alerts:
        key, offset = (alert["model_id"], alert["signal"]), alert["source"]["offset"]
        if alert["signal"] == "model" or alert["signal"].startswith("new_category:"):
            assert alert["episode_id"] == alert["alert_id"], alert
            continue
        current = open_.get(key)
        if alert["level"] == "drift":
            if current is None:
                assert alert["episode_id"] == alert["alert_id"], f"a drift outside an episode: {alert}"
                open_[key] = (alert["alert_id"], offset)
            else:
                assert alert["episode_id"] == current[0], f"a drift inside episode {current}: {alert}"
        elif alert["level"] == "resolved":
            assert current is not None, f"resolved without an earlier drift of its signal: {alert}"
            assert alert["episode_id"] == current[0], f"resolved names another episode: {alert}"
            assert current[1] < offset
            assert alert["stats"]["quiet_values"] == RESOLVE_AFTER, alert
            found.append((*key, current[1], offset))
            del open_[key]
    found += [(*key, opened, None) for key, (_id, opened) in open_.items()]
    return found


def test_drift_episodes_open_and_resolve_exactly_as_offline_across_kill_9(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    state_key: str,
) -> None:
    resolve = {"resolve_after": RESOLVE_AFTER}
    deployment = deploy(
        bootstrap_servers,
        new_topic,
        tmp_path,
        partitions=2,
        processing={"snapshot_interval_ms": 500},  # restarts restore open episodes from snapshots too
        defaults={"features": resolve, "categorical": resolve},
    )
    events = episode_stream(seed=13)
    service = services(deployment.config_path, unique_name("episodes"))
    view = BrokerView(kafka_clients, [deployment.input], outputs=[])
    with producing(
        kafka_clients, deployment.input, events, seconds=PRODUCE_SECONDS, chunk=100, hold_last=True
    ) as producer:
        service.start()
        positions = kill_repeatedly_noting_positions(
            service, kafka_admin, deployment.group, view, len(events), KILLS, (0.3, 1.0)
        )
        producer.hurry()  # the last chunk arrives after the last kill
    wait_for(
        service,
        lambda: committed_total(kafka_admin, deployment.group) == len(events),
        "the service to catch up",
    )
    # The last incarnation may have been started after the input was all committed: a SIGTERM before it
    # has installed its handlers would kill it, so wait until it is up before stopping it.
    wait_for(service, lambda: restored_since_start(service), "the last restart to restore its partitions")
    assert service.stop() == 0, service.log_tail()

    records, alerts = published_equals_offline(kafka_clients, deployment)
    log = service.log_events()
    assert len([e for e in log if e.get("event") == "state restored"]) >= KILLS
    # Snapshots carry open episodes, and restarts re-read input to bring detectors up to date. Each restart
    # logs what it re-reads when it restores (a killed one may not live to its first summary line).
    assert snapshots_with_an_open_episode(kafka_clients, deployment, state_key) > 0
    assert any(e.get("replay_offsets", 0) > 0 for e in log if e.get("event") == "partitions restored")

    # The episodes, checked per signal in input order (each model lives in one partition, whose alerts are
    # in offset order: checked above).
    partition_of = {orjson.loads(r.value)["model_id"]: r.partition for r in records}
    found = episodes(alerts)
    resolved = [e for e in found if e[3] is not None]
    assert resolved, "no episode was resolved"
    reopened = Counter((model, signal) for model, signal, _opened, closed in found if closed is not None)
    assert any(count >= 2 for count in reopened.values()), "no signal drifted, resolved, and drifted again"

    def mid_episode(position: dict[int, int]) -> bool:
        """The input the service had committed when killed ends between a drift and its resolution."""
        return any(
            closed is not None and opened < position.get(partition_of[model], 0) <= closed
            for model, _signal, opened, closed in found
        )

    assert any(mid_episode(position) for position in positions), (
        f"no kill landed while an episode was open (committed offsets at the kills: {positions})"
    )
