"""Late labels through the real broker: labels on their own topic, each delayed by a random 1-10k events,
read by a service killed -9 along the way, still yield exactly the error-signal alerts that inline labels
give (byte for byte: the error stream is fed in prediction order, whatever order the labels come in), and
the labels topic's unreadable records are each dead-lettered exactly once.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest

from streamdrift.config import parse_config
from tests.conftest import KafkaClients, TopicFactory, unique_name
from tests.integration.conftest import STREAMDRIFT, Service
from tests.integration.runs import (
    BrokerView,
    Outgoing,
    PacedProducer,
    chunked,
    committed_total,
    kill_repeatedly,
    offline,
    output_topics,
    read_all,
    wait_until,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

MODELS = ("churn", "fraud", "credit")
PER_MODEL = 6000
KILLS = 6
JUNK_EVERY = 100  # a label record without its label after every 100 records: a dead letter


def labelled_stream(seed: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Interleaved classification events (error rate 10%, rising to 35% halfway for two models) and the
    label of each, by event_id."""
    rng = np.random.default_rng(seed)
    events, labels = [], {}
    for i in range(PER_MODEL):
        for model in MODELS:
            event_id = f"{model}-{i}"
            prediction = int(rng.integers(0, 2))
            error_rate = 0.35 if model != "credit" and i >= PER_MODEL // 2 else 0.1
            label = prediction if rng.uniform() >= error_rate else 1 - prediction
            events.append({
                "model_id": model, "event_id": event_id, "features": {"x": round(float(rng.normal()), 3)},
                "prediction": prediction,
            })  # fmt: skip
            labels[event_id] = label
    return events, labels


def timeline(
    input_topic: str, labels_topic: str, events: list[dict[str, Any]], labels: dict[str, Any], seed: int
) -> list[Outgoing]:
    """Events 1 ms apart; each label 1 to 10,000 events after its prediction, in that time order (records
    keyed by model id, stamped with their time); every JUNK_EVERY records, a label record with no label."""
    rng = np.random.default_rng(seed)
    # (time, events before labels at the same time, topic, key = model id, value)
    entries: list[tuple[int, int, str, str, dict[str, Any]]] = []
    for i, event in enumerate(events):
        model, event_id = event["model_id"], event["event_id"]
        entries.append((i, 0, input_topic, model, event))
        delay = int(rng.integers(1, 10_001))
        entries.append((i + delay, 1, labels_topic, model, {"event_id": event_id, "label": labels[event_id]}))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    # Recent record times: the broker deletes records older than the topic's retention (7 days) at once.
    base_ms = int(time.time() * 1000) - 60_000
    records: list[Outgoing] = []
    for number, (at, _order, topic, model, value) in enumerate(entries, start=1):
        records.append((topic, model.encode(), orjson.dumps(value), None, base_ms + at))
        if number % JUNK_EVERY == 0:
            junk = {"event_id": f"junk-{number}"}
            records.append((labels_topic, model.encode(), orjson.dumps(junk), None, base_ms + at))
    return records


def config_text(
    bootstrap: str, input_topic: str, labels_topic: str, tag: str, commit_interval_ms: int = 100
) -> str:
    return f"""
kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: "{tag}-group"
  client: "${{STREAMDRIFT_TEST_KAFKA_CLIENT}}"
http: {{port: 0}}
topics:
  input: ["{input_topic}"]
  labels: "{labels_topic}"
  alerts: "{tag}-alerts"
  dead_letter: "{tag}-dead-letter"
  state: "{tag}-state"
processing: {{commit_interval_ms: {commit_interval_ms}, session_timeout_ms: 6000}}
labels: {{ttl_s: 3600, max_pending_per_model: 50000}}
logging: {{summary_interval_s: 1}}
"""


def inline_alerts(config_bytes: bytes, records: list[Any], labels: dict[str, Any]) -> list[bytes]:
    """The uninterrupted offline run over the same input records with every label inline (no labels topic,
    so no join): its error-signal alerts."""
    config = parse_config(config_bytes)
    inline = config.model_copy(update={"topics": config.topics.model_copy(update={"labels": None})})

    def with_label(record: Any) -> SimpleNamespace:
        event = orjson.loads(record.value)
        event["label"] = labels[event["event_id"]]
        return SimpleNamespace(
            topic=record.topic, partition=record.partition, offset=record.offset,
            timestamp=record.timestamp, key=record.key, value=orjson.dumps(event),
        )  # fmt: skip

    expected, _monitor = offline(inline, [with_label(record) for record in records])
    return [alert for alert in expected if orjson.loads(alert)["signal"] == "error"]


def test_labels_delayed_by_random_1_to_10k_events_give_the_inline_error_alerts_across_kills(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    input_topic, labels_topic = new_topic(partitions=2), new_topic(partitions=2)
    tag = unique_name("labels")
    # The default commit interval: transactions long enough for kills to land in most of them.
    text = config_text(bootstrap_servers, input_topic, labels_topic, tag, commit_interval_ms=500)
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(text)
    events, labels = labelled_stream(seed=3)
    records = timeline(input_topic, labels_topic, events, labels, seed=4)
    group = f"{tag}-group"

    service = services(config_path, "labels-1")
    view = BrokerView(kafka_clients, [input_topic, labels_topic], output_topics(parse_config(text.encode())))
    # Events and labels arrive while the service runs and is killed; the last chunk after the last kill.
    with PacedProducer(kafka_clients, chunked(records, 100), seconds=8.0 * KILLS, hold_last=True) as producer:
        service.start()
        kill_repeatedly(
            service, lambda: committed_total(kafka_admin, group), len(records), KILLS, (0.2, 1.5), view
        )
        producer.hurry()
    wait_until(lambda: committed_total(kafka_admin, group) == len(records), "the service to read both topics")
    assert service.stop() == 0

    expected = inline_alerts(text.encode(), read_all(kafka_clients, input_topic), labels)
    published = [r.value for r in read_all(kafka_clients, f"{tag}-alerts")]
    errors = [value for value in published if orjson.loads(value)["signal"] == "error"]
    drifts = [value for value in expected if orjson.loads(value)["level"] == "drift"]
    assert len(drifts) >= 2, "the error-rate rise must be detected for the test to mean anything"
    assert len(errors) == len(set(errors)), "duplicate alerts"
    missing, extra = sorted(set(expected) - set(errors)), sorted(set(errors) - set(expected))
    assert not missing and not extra, (
        f"{len(missing)} missing, first: {missing[:2]}; {len(extra)} not expected, first: {extra[:2]}"
    )
    # Every label record without a label is dead-lettered once: the dead letters of aborted intervals never
    # became readable, those of committed ones were not written again.
    junk = [value for topic, _key, value, _p, _t in records if topic == labels_topic and b"junk-" in value]
    dead = read_all(kafka_clients, f"{tag}-dead-letter")
    assert len(junk) == len(records) // (JUNK_EVERY + 1)
    assert sorted(record.value for record in dead) == sorted(junk)
    assert {dict(record.headers)["streamdrift.error.kind"] for record in dead} == {b"bad_label"}

    # The events carry no label: every error alert above came from the join. The join's outcome counters,
    # from the summary lines of every start: no prediction or label expired.
    summaries = [event for event in service.log_events() if event.get("event") == "summary"]
    assert summaries
    for summary in summaries:
        assert summary["labels"].get("expired_predictions", 0) == 0
        assert summary["labels"].get("labels_without_prediction", 0) == 0


def test_refuses_a_labels_topic_that_is_not_co_partitioned(
    bootstrap_servers: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    input_topic, labels_topic = new_topic(partitions=2), new_topic(partitions=3)
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_text(bootstrap_servers, input_topic, labels_topic, unique_name("copart")))
    result = subprocess.run(
        [STREAMDRIFT, "run", "--config", str(config_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"labels topic {labels_topic} has 3 partitions but the input has 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_and_misrouted_labels_are_dead_lettered_and_the_good_ones_still_join(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    input_topic, labels_topic = new_topic(partitions=2), new_topic(partitions=2)
    tag = unique_name("badlabels")
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_text(bootstrap_servers, input_topic, labels_topic, tag))
    producer = kafka_clients.producer()
    for i in range(20):
        event = {"model_id": "m", "event_id": f"e{i}", "prediction": 1, "features": {"x": 0.5}}
        producer.send(input_topic, key=b"m", value=orjson.dumps(event), partition=0)
    good = [orjson.dumps({"event_id": f"e{i}", "label": i % 2}) for i in range(20)]
    bad = [
        (b"m", b'{"event_id": "e1"}'),  # no label
        (b"m", b'{"label": 1}'),  # no event_id
        (b"m", b"label=1"),  # not JSON
    ]
    for value in good:
        producer.send(labels_topic, key=b"m", value=value, partition=0)
    for key, value in bad:
        producer.send(labels_topic, key=key, value=value, partition=0)
    # Keyed by event_id instead of model_id, a label of m lands elsewhere than m's events (partition 0).
    misrouted = orjson.dumps({"model_id": "m", "event_id": "e0", "label": 0})
    producer.send(labels_topic, key=b"e0", value=misrouted, partition=1)
    producer.flush()
    producer.close()
    total = 20 + len(good) + len(bad) + 1

    service = services(config_path, "badlabels-1")
    service.start()
    wait_until(lambda: committed_total(kafka_admin, f"{tag}-group") == total, "every record to be committed")

    def every_good_label_joined() -> bool:
        summaries = [event for event in service.log_events() if event.get("event") == "summary"]
        return bool(summaries) and summaries[-1]["labels"].get("joined") == len(good)

    wait_until(every_good_label_joined, "a summary line counting every good label joined")
    service.kill()

    dead = read_all(kafka_clients, f"{tag}-dead-letter")
    kinds = sorted(dict(record.headers)["streamdrift.error.kind"].decode() for record in dead)
    assert kinds == ["bad_label", "bad_label", "invalid_json", "misrouted_label"]
    assert {record.value for record in dead} == {value for _key, value in bad} | {misrouted}
    headers = next(dict(r.headers) for r in dead if r.value == misrouted)
    assert headers["streamdrift.error.kind"] == b"misrouted_label"
    assert b"key labels by model_id" in headers["streamdrift.error.message"]
