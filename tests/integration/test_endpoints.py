"""The HTTP endpoints of a running service: /metrics counts what was sent, /healthz and /readyz answer."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import committed_total, prepare_run, read_all, stream, wait_until

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

DASHBOARD = Path(__file__).resolve().parents[2] / "configs" / "grafana-dashboard.json"
BAD_RECORDS = [(b"{not json", "invalid_json"), (b"[1, 2]", "not_an_object"), (b"", "empty")]


def samples(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The service's /metrics as {(sample name, sorted labels): value}."""
    status, body = service.http_get("/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_count_what_was_sent_and_the_probes_answer(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
) -> None:
    topic = new_topic(partitions=2)
    run = prepare_run(bootstrap_servers, topic, tmp_path, "http")
    events = stream(models=3, per_model=2000, seed=8)
    producer = kafka_clients.producer()
    for model, value in events:
        producer.send(topic, key=model.encode(), value=value)
    for value, _kind in BAD_RECORDS:
        producer.send(topic, key=b"ad-0", value=value)
    producer.flush()
    sent = len(events) + len(BAD_RECORDS)

    service = services(run.config_path, "http-1")
    service.start()
    wait_until(lambda: committed_total(kafka_admin, run.group) == sent, "the service to catch up")
    wait_until(lambda: service.http_get("/readyz")[0] == 200, "ready")
    assert service.http_get("/readyz") == (200, b"ok\n")
    assert service.http_get("/healthz") == (200, b"ok\n")
    assert service.http_get("/nowhere")[0] == 404

    def lag_caught_up() -> bool:
        lag = {k: v for k, v in samples(service).items() if k[0] == "streamdrift_consumer_lag"}
        return len(lag) == 2 and set(lag.values()) == {0.0}

    wait_until(lag_caught_up, "the consumer lag gauge to reach 0 on both partitions")
    metrics = samples(service)
    assert metrics[("streamdrift_events_total", (("topic", topic),))] == sent
    assert metrics[("streamdrift_bytes_total", (("topic", topic),))] == sum(len(v) for _m, v in events) + sum(
        len(v) for v, _k in BAD_RECORDS
    )
    for kind, count in Counter(kind for _v, kind in BAD_RECORDS).items():
        assert metrics[("streamdrift_dead_letters_total", (("kind", kind),))] == count
    published = Counter(
        (a["model_id"], a["signal"], a["detector"]["type"], a["level"])
        for a in (orjson.loads(r.value) for r in read_all(kafka_clients, f"{run.tag}-alerts"))
    )
    assert published, "the stream must produce alerts for the test to mean anything"
    counted = {
        tuple(dict(labels)[k] for k in ("model_id", "signal", "detector", "level")): value
        for (name, labels), value in metrics.items()
        if name == "streamdrift_alerts_total"
    }
    assert counted == published
    assert metrics[("streamdrift_models", ())] == 3
    assert metrics[("streamdrift_detectors", ())] > 3
    assert metrics[("streamdrift_ready", ())] == 1
    assert metrics[("streamdrift_checkpoint_seconds_count", ())] > 0
    assert metrics[("streamdrift_processing_latency_seconds_count", ())] > 0

    # The shipped Grafana dashboard only queries series this service exports.
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bstreamdrift_[a-z_]+", target["expr"])
    }
    _status, body = service.http_get("/metrics")
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    exported = {  # declared families, with or without samples yet (a labelled counter may have none)
        family.name + suffix
        for family in text_string_to_metric_families(body.decode())
        for suffix in suffixes.get(family.type, [""])
    }
    assert len(queried) >= 15
    assert queried <= exported, queried - exported
    assert service.stop() == 0
