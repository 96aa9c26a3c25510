"""Exactly once across crashes and restarts: the read_committed alerts topic equals an uninterrupted offline
replay of the same input (same alerts, byte for byte, no duplicate, none missing), and so does the final
detector state. Also: tampered snapshots are rejected and counted, and the service refuses to start on a
state topic that is not co-partitioned or without a state key.
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KafkaClients, TopicFactory, unique_name
from tests.integration.conftest import STREAMDRIFT, Service
from tests.integration.runs import (
    SOAK_EVENTS,
    SOAK_KILLS,
    BrokerView,
    assert_alerts_equal_offline,
    committed_total,
    config_yaml,
    final_state,
    kill_repeatedly,
    output_topics,
    prepare_run,
    producing,
    read_all,
    reference_section,
    stream,
    wait_until,
    with_bad_records,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    state_key: str,
) -> None:
    # Bad records among the events: dead letters are written through every interval, exactly once too.
    events = with_bad_records(stream(models=12, per_model=SOAK_EVENTS // 12, seed=11), every=60)
    bad = sorted(value for _model, value in events if value.startswith(b"not json"))
    # The default commit interval: transactions long enough for kills to land in most of them.
    # With reference windows, multivariate:reconstruction and estimated performance: their counts, detectors
    # and windows are state too, and their alerts are among those compared.
    reference = reference_section(
        tmp_path, stream(models=12, per_model=2_000, seed=99), multivariate=True, performance_window=250
    )
    run = prepare_run(
        bootstrap_servers,
        new_topic(partitions=2),
        tmp_path,
        "eos",
        sections=reference,
        commit_interval_ms=500,
    )
    service = services(run.config_path, "eos-1")
    view = BrokerView(kafka_clients, [run.topic], output_topics(run.config))
    # Paced to outlast the kills (each costs a restart: about 5 s), in small chunks (a steady flow, not bursts
    # the service deals with in one go); the rest, at least the last chunk, arrives after the last kill.
    with producing(
        kafka_clients, run.topic, events, seconds=8.0 * SOAK_KILLS, chunk=100, hold_last=True
    ) as producer:
        service.start()
        kill_repeatedly(
            service,
            lambda: committed_total(kafka_admin, run.group),
            len(events),
            SOAK_KILLS,
            (0.2, 1.5),
            view,
        )
        producer.hurry()
    wait_until(lambda: committed_total(kafka_admin, run.group) == len(events), "the service to catch up")
    assert service.stop() == 0

    monitor = assert_alerts_equal_offline(kafka_clients, run, at_least=20)
    windows = [
        r for r in read_all(kafka_clients, f"{run.tag}-alerts") if b'"detector":{"type":"psi"' in r.value
    ]
    assert windows, "no reference window alert: the windows' state was not exercised"
    multivariate = [
        r
        for r in read_all(kafka_clients, f"{run.tag}-alerts")
        if b'"signal":"multivariate:reconstruction"' in r.value
    ]
    assert multivariate, "no multivariate alert: its detectors' state was not exercised"
    dead_letters = sorted(record.value for record in read_all(kafka_clients, f"{run.tag}-dead-letter"))
    assert dead_letters == bad, f"{len(dead_letters)} dead letters for {len(bad)} bad records"
    state = final_state(kafka_clients, f"{run.tag}-state", state_key)
    assert sorted(state) == sorted(monitor.models)
    for model_id in monitor.models:
        assert state[model_id] == pickle.dumps(monitor.export_model(model_id)), model_id
    performance = [monitor.export_model(model_id)["performance"] for model_id in monitor.models]
    # The open window's ordinal: how many windows of the model closed.
    assert all(p is not None and p["open_window"][0] > 0 for p in performance), "no performance window closed"
    log = service.log_events()
    assert len([e for e in log if e.get("event") == "state restored"]) >= SOAK_KILLS
    # Restarts between snapshots re-read input to bring detectors up to date: that path was taken. Each
    # restart logs what it re-reads when it restores (a killed one may not live to its first summary line).
    assert any(e.get("replay_offsets", 0) > 0 for e in log if e.get("event") == "partitions restored")


def test_tampered_state_is_rejected_counted_and_the_last_valid_snapshot_restored(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    state_key: str,
) -> None:
    topic = new_topic(partitions=1)
    tag = unique_name("tamper")
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_yaml(bootstrap_servers, topic, tag))
    producer = kafka_clients.producer()
    for model, value in stream(models=2, per_model=2000, seed=2):
        producer.send(topic, key=model.encode(), value=value)
    producer.flush()

    service = services(config_path, "tamper-1")
    service.start()
    wait_until(
        lambda: len(final_state(kafka_clients, f"{tag}-state", state_key)) == 2, "both models' snapshots"
    )
    assert service.stop() == 0

    # Flip one byte of one model's snapshot body, and forge another whose signature is simply wrong.
    latest = {r.key: r.value for r in read_all(kafka_clients, f"{tag}-state")}
    (first, value), (second, _) = sorted(latest.items())
    tampered = bytearray(value)
    tampered[-10] ^= 0xFF
    producer.send(f"{tag}-state", key=first, value=bytes(tampered), partition=0)
    producer.send(f"{tag}-state", key=second, value=b"SDS1" + b"\0" * 40 + b"not a snapshot", partition=0)
    producer.flush()

    first_run = len(service.log_events())
    service.start()
    wait_until(
        lambda: any(e.get("event") == "partitions restored" for e in service.log_events()[first_run:]),
        "the restarted service to be ready",
    )
    assert service.stop() == 0
    second_run = service.log_events()[first_run:]
    rejected = [e for e in second_run if str(e.get("event")).startswith("state snapshot rejected")]
    assert {e["model_id"] for e in rejected} == {first.decode(), second.decode()}
    assert {e["reason"] for e in rejected} == {"bad_signature"}
    ready = [e for e in second_run if e.get("event") == "partitions restored"][-1]
    assert ready["rejected_snapshots"] == {"bad_signature": 2}
    # A record that fails its signature hides nothing: each model's newest valid snapshot, from before the
    # tampering, is restored (a model with no valid snapshot would start fresh).
    assert ready["restored_models"] == 2


def test_refuses_a_state_topic_that_is_not_co_partitioned(
    bootstrap_servers: str, new_topic: TopicFactory, kafka_admin: Any, tmp_path: Path
) -> None:
    topic = new_topic(partitions=2)
    tag = unique_name("copart")
    kafka_admin.create_topics(
        {f"{tag}-state": {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True
    )
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_yaml(bootstrap_servers, topic, tag))
    result = subprocess.run(
        [STREAMDRIFT, "run", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    kafka_admin.delete_topics([f"{tag}-state"])  # it refused before creating any other topic
    assert result.returncode == 1
    assert f"state topic {tag}-state has 3 partitions but the input has 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_to_start_without_a_state_key(
    bootstrap_servers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMDRIFT_STATE_KEY")
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_yaml(bootstrap_servers, "unused", unique_name("nokey")))
    result = subprocess.run(
        [STREAMDRIFT, "run", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "STREAMDRIFT_STATE_KEY" in lines[0] and "openssl rand" in lines[0]


def test_two_instances_one_killed_and_restarted_repeatedly(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    events = stream(models=16, per_model=3000, seed=21)
    run = prepare_run(bootstrap_servers, new_topic(partitions=4), tmp_path, "pair")
    steady, flaky = services(run.config_path, "pair-a"), services(run.config_path, "pair-b")
    # The steady member's transactions are no sign of the flaky one's: kills land when input is uncommitted.
    view = BrokerView(kafka_clients, [run.topic], outputs=[])
    with producing(kafka_clients, run.topic, events, seconds=40.0, chunk=100, hold_last=True) as producer:
        steady.start()
        flaky.start()
        kill_repeatedly(
            flaky, lambda: committed_total(kafka_admin, run.group), len(events), 5, (0.5, 2.0), view
        )
        producer.hurry()
    wait_until(lambda: committed_total(kafka_admin, run.group) == len(events), "both to catch up")
    assert steady.stop() == 0
    assert flaky.stop() == 0

    assert_alerts_equal_offline(kafka_clients, run, at_least=10)
    # Both members did work: the partitions were split between them.
    for service in (steady, flaky):
        assigned = [
            e for e in service.log_events() if e.get("event") == "partitions assigned" and e["partitions"]
        ]
        assert assigned, f"{service.instance} never got partitions"
        assert any(len(e["partitions"]) < 4 for e in assigned), "the group never split the partitions"


def test_a_stall_past_max_poll_interval_rejoins_without_duplicates(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    events = stream(models=6, per_model=5000, seed=8)
    run = prepare_run(
        bootstrap_servers, new_topic(partitions=2), tmp_path, "stall", max_poll_interval_ms=3000
    )
    service = services(run.config_path, "stall-1")
    with producing(kafka_clients, run.topic, events, seconds=12.0):
        service.start()
        wait_until(lambda: committed_total(kafka_admin, run.group) > 2000, "first progress")
        assert service.process is not None
        service.process.send_signal(signal.SIGSTOP)  # frozen mid-run: no poll, no heartbeat
        stalled_at = committed_total(kafka_admin, run.group)
        time.sleep(8)  # the stall itself: longer than max_poll_interval_ms and session_timeout_ms
        service.process.send_signal(signal.SIGCONT)
    wait_until(lambda: committed_total(kafka_admin, run.group) == len(events), "the service to catch up")
    assert service.stop() == 0
    assert stalled_at < len(events)

    assert_alerts_equal_offline(kafka_clients, run, at_least=5)
    events_logged = [str(e.get("event")) for e in service.log_events()]
    assert any(e.startswith(("partitions lost", "checkpoint refused")) for e in events_logged), (
        "the stall did not cost the member its partitions; the test did not test a rejoin"
    )


def test_unkeyed_input_is_detected_logged_and_counted(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    topic = new_topic(partitions=2)
    tag = unique_name("unkeyed")
    config_path = tmp_path / "streamdrift.yaml"
    config_path.write_text(config_yaml(bootstrap_servers, topic, tag))
    events = stream(models=3, per_model=1200, seed=1)
    producer = kafka_clients.producer()
    for i, (_model, value) in enumerate(
        events
    ):  # no key; spread over both partitions, as unkeyed producers do
        producer.send(topic, value=value, partition=i % 2)
    producer.flush()

    service = services(config_path, "unkeyed-1")
    service.start()
    wait_until(lambda: committed_total(kafka_admin, f"{tag}-group") == len(events), "the service to catch up")
    assert service.stop() == 0
    log = service.log_events()
    warned = {
        e["model_id"] for e in log if str(e.get("event")).startswith("a model arrives on two partitions")
    }
    assert warned == {model for model, _ in events}
    assert log[-1]["event"] == "stopped"
    assert log[-1]["models_in_two_partitions"] > 0
