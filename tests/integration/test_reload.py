"""Config hot reload under load: one model's detector and the global cooldown change on SIGHUP; only that
model's detector restarts, everything else carries on, and a broken file is refused while the service runs.
The alerts equal an offline run that applies the same change at the offsets the service reports.
"""

from __future__ import annotations

import pickle
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.core.alert import RecordSource
from streamdrift.core.detectors import RIVER_VERSION
from streamdrift.core.event import EventDecoder
from streamdrift.core.monitor import Monitor
from streamdrift.core.snapshot import decode_snapshot
from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import (
    committed_total,
    prepare_run,
    producing,
    read_all,
    stream,
    wait_until,
)

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

CHANGED_MODEL = "ad-0"
RELOADED_PART = f"""
defaults:
  features: {{cooldown: 40}}
models:
  - match: "ph-*"
    features:
      x: {{detector: {{type: page_hinkley, threshold: 20}}}}
  - match: "ks-*"
    features:
      x: {{detector: {{type: kswin, alpha: 0.001, seed: 5}}}}
  - match: "{CHANGED_MODEL}"
    features:
      x: {{detector: {{type: adwin, delta: 0.02}}}}
"""


def offline_with_switch(
    before: StreamdriftConfig, after: StreamdriftConfig, records: list[Any], switch_at: dict[int, int]
) -> tuple[list[bytes], Monitor]:
    """The production core over the records, `after` applied once every partition reaches `switch_at`."""
    decoder = EventDecoder(before.event_fields(), before.event_limits())
    monitor = Monitor(before.policies(), config_version=before.config_version, limits=before.monitor_limits())
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    alerts: list[bytes] = []

    def run(part: list[Any]) -> None:
        for record in part:
            source = RecordSource(
                topic=record.topic, partition=record.partition, offset=record.offset,
                timestamp_ms=record.timestamp,
            )  # fmt: skip
            alerts.extend(
                a.to_json() for a in monitor.process(decoder.decode(record.key, record.value), source)
            )

    run([r for r in ordered if r.offset < switch_at.get(r.partition, 0)])
    monitor.reconfigure(after.policies(), config_version=after.config_version)
    run([r for r in ordered if r.offset >= switch_at.get(r.partition, 0)])
    return alerts, monitor


def river_objects(state: dict[str, Any]) -> list[bytes]:
    """The River detectors of a model's exported state (no cooldown counters), pickled."""
    tracks = [t for feature in state["features"] for t in feature[1:3]]  # (name, feature, missing, ...)
    tracks += [t for _label, t in state["classes"]] + [t for _kind, t in state["tracks"]]
    return [pickle.dumps(track[6]) for track in tracks if track is not None]


def test_sighup_reloads_one_models_detector_and_the_cooldown_and_refuses_a_broken_file(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    state_key: str,
) -> None:
    events = stream(models=6, per_model=6000, seed=31)
    run = prepare_run(bootstrap_servers, new_topic(partitions=2), tmp_path, "reload")
    original = run.config_path.read_text()
    head = original.split("\nmodels:")[0]  # kafka, topics, processing: unchanged by the reload
    logging_part = original[original.index("\nlogging:") :]
    reloaded_text = head + RELOADED_PART + logging_part
    service = services(run.config_path, "reload-1")
    service.start()

    def logged(event: str) -> list[dict[str, Any]]:
        return [e for e in service.log_events() if e.get("event") == event]

    with producing(kafka_clients, run.topic, events, seconds=20.0):
        wait_until(lambda: committed_total(kafka_admin, run.group) > 5000, "progress before the reload")
        run.config_path.write_text(reloaded_text)
        assert service.process is not None
        service.process.send_signal(signal.SIGHUP)
        wait_until(lambda: bool(logged("config reloaded")), "the reload")
        run.config_path.write_text(reloaded_text + "\nprocessing: {guarantee: sometimes}\nbogus: 1\n")
        service.process.send_signal(signal.SIGHUP)
        wait_until(
            lambda: bool(logged("config reload refused; running on the previous config")), "the refusal"
        )
    wait_until(lambda: committed_total(kafka_admin, run.group) == len(events), "the service to catch up")
    assert service.process.poll() is None, "a broken file stopped the service"
    assert service.stop() == 0

    reload = logged("config reloaded")[0]
    after = parse_config(reloaded_text.encode())
    assert reload["config_version"] == after.config_version != run.config.config_version
    assert reload["detectors_restarted"] == 1  # ad-0's feature:x; its other signals and other models kept
    refused = [e["problem"] for e in logged("config reload refused")]
    assert any("bogus" in problem for problem in refused) and any(
        "guarantee" in problem for problem in refused
    )
    switch_at = {int(k.rsplit("/", 1)[1]): offset for k, offset in reload["applied_at"].items()}
    assert 0 < sum(switch_at.values()) < len(events), "the reload must land mid-run"

    records = read_all(kafka_clients, run.topic)
    expected, monitor = offline_with_switch(run.config, after, records, switch_at)
    alerts = [record.value for record in read_all(kafka_clients, f"{run.tag}-alerts")]
    assert len(expected) >= 10
    assert sorted(alerts) == sorted(expected)
    assert any(b'"config_version":"' + after.config_version.encode() in a for a in alerts)

    # Every model but the changed one holds the very detectors of a run that was never reloaded.
    never_reloaded = Monitor(run.config.policies(), config_version="-", limits=run.config.monitor_limits())
    decoder = EventDecoder()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        never_reloaded.process(decoder.decode(record.key, record.value), RecordSource(offset=record.offset))
    latest = {r.key.decode(): r.value for r in read_all(kafka_clients, f"{run.tag}-state")}
    for model_id in monitor.models:
        saved = decode_snapshot(latest[model_id], state_key.encode(), RIVER_VERSION)[1]
        same = river_objects(saved) == river_objects(never_reloaded.export_model(model_id))
        assert same == (model_id != CHANGED_MODEL), model_id
