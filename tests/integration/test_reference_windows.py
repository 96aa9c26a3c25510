"""Reference windows through Kafka: each window alert's statistic equals scipy's on the raw input records its
window names (the model's records between its first and last offset), and the read_committed alerts equal
the offline run of the same input. (Across kill -9: tests/integration/test_exactly_once.py runs with
reference windows on.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamdrift.core.event import EventDecoder
from streamdrift.core.windows import Cells
from tests.conftest import KafkaClients, TopicFactory
from tests.integration.conftest import Service
from tests.integration.runs import (
    assert_alerts_equal_offline,
    committed_total,
    prepare_run,
    read_all,
    reference_section,
    wait_until,
)
from tests.unit.test_windows import expected

# Every test here runs on both transports (kafka.client, tests/conftest.py).
pytestmark = pytest.mark.usefixtures("kafka_client")

TESTS = {"psi", "wasserstein", "chi_square"}
COUNTRIES = ["US", "DE", "BR", "FR", "JP"]


def events(seed: int, models: int, per_model: int, shift_from: int | None = None) -> list[tuple[str, bytes]]:
    """Models taking turns; from `shift_from` on, amount moves by 0.8 std and a share of US goes to BR."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(per_model):
        shifted = shift_from is not None and i >= shift_from
        weights = [0.2, 0.25, 0.35, 0.1, 0.1] if shifted else [0.4, 0.25, 0.15, 0.1, 0.1]
        for m in range(models):
            model = f"ad-{m}"
            event = {
                "model_id": model,
                "features": {
                    "amount": round(float(rng.normal(0.8 if shifted else 0.0, 1.0)), 5),
                    "country": str(rng.choice(COUNTRIES, p=weights)),
                },
                "score": round(float(rng.beta(2, 5)), 5),
            }
            out.append((model, orjson.dumps(event)))
    return out


def test_window_alerts_through_kafka_equal_scipy_on_the_records_they_name(
    bootstrap_servers: str,
    new_topic: TopicFactory,
    kafka_clients: KafkaClients,
    kafka_admin: Any,
    services: Callable[[Path, str], Service],
    tmp_path: Path,
    state_key: str,
) -> None:
    section = reference_section(tmp_path, events(1, models=4, per_model=3_000), segments=["country"])
    run = prepare_run(bootstrap_servers, new_topic(partitions=2), tmp_path, "refwin", sections=section)
    live = events(2, models=4, per_model=1_500, shift_from=750)
    producer = kafka_clients.producer()
    for model, value in live:
        producer.send(run.topic, key=model.encode(), value=value)
    producer.flush()
    service = services(run.config_path, "refwin-1")
    service.start()
    wait_until(lambda: committed_total(kafka_admin, run.group) == len(live), "every event processed")
    assert service.stop() == 0

    assert_alerts_equal_offline(kafka_clients, run, at_least=1)
    alerts = [orjson.loads(record.value) for record in read_all(kafka_clients, f"{run.tag}-alerts")]
    window_alerts = [a for a in alerts if a["detector"]["type"] in TESTS]
    # 4 models x 6 windows of 250 events, the last three after the shift: every one of those alerts.
    found = {(a["model_id"], a["signal"], a["detector"]["type"]) for a in window_alerts}
    for model in (f"ad-{m}" for m in range(4)):
        assert {(model, "feature:amount", "psi"), (model, "feature:country", "chi_square")} <= found
    # Per country too: BR (112 events before the shift, 262 after) and DE (187 and 187) each close a window of
    # 250 of their own events that holds shifted amounts; US's second window (50 and 150) never closes.
    segments = {
        (a["model_id"], a["stats"]["segment"]["value"]) for a in window_alerts if "segment" in a["stats"]
    }
    assert {(f"ad-{m}", country) for m in range(4) for country in ("BR", "DE")} <= segments

    records = read_all(kafka_clients, run.topic)
    profile = orjson.loads((tmp_path / "reference-profile.json").read_bytes())
    decoder = EventDecoder()
    for alert in window_alerts:
        window = alert["stats"]["window"]
        ((where, (first, last)),) = window["offsets"].items()
        topic, partition = where.rsplit("/", 1)
        assert topic == run.topic
        segment = alert["stats"].get("segment")
        of_model = [
            decoder.decode(r.key, r.value)
            for r in records
            if r.partition == int(partition)
            and first <= r.offset <= last
            and r.key == alert["model_id"].encode()
        ]
        named = [e for e in of_model if segment is None or e.features["country"] == segment["value"]]
        assert len(named) == window["events"] == 250
        signal, test = alert["signal"], alert["detector"]["type"]
        model = profile["models"][alert["model_id"]]
        profiled = model if segment is None else model["segments"]["country"][segment["value"]]
        cells = Cells(profiled["signals"][signal])
        statistic, p_value = expected(signal, test, cells, named)
        assert alert["stats"]["statistic"] == pytest.approx(statistic, abs=1e-9), alert
        if p_value is not None:
            assert alert["stats"]["p_value"] == pytest.approx(p_value, abs=1e-9), alert
