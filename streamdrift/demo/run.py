"""`streamdrift demo`: produce the scenario, run the service, show alerts live, then the scorecard."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import threading
import time
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from streamdrift.alert_text import format_alert
from streamdrift.config import StreamdriftConfig, parse_config
from streamdrift.config.model import KafkaSettings
from streamdrift.core.event import EventDecoder
from streamdrift.core.reference import Profile
from streamdrift.core.windows import TESTS_OF_KIND
from streamdrift.demo.alertmanager import show_in_alertmanager
from streamdrift.demo.scenario import Change, changes, generate, model_event
from streamdrift.errors import ConfigError, StreamdriftError
from streamdrift.ports import OutRecord, TopicSpec, Transport
from streamdrift.reading import follow, read_to_end
from streamdrift.service.logs import configure_logging
from streamdrift.service.runner import DriftService
from streamdrift.service.state import STATE_KEY_ENV
from streamdrift.transports import open_transport

EVENTS_PER_MODEL = 4000
INPUT_PARTITIONS = 2
FINISH_TIMEOUT_S = 90
RATE_PER_S = 1000
REFERENCE_SEED = 8  # the known-good period: the scenario's first half, drawn again with another seed
# The demo's reference windows: the profile of the known-good period, compared per 500 events of a model.
REFERENCE = """
reference:
  profile: reference.json
  window: {events: 500}
  numeric: {psi: 0.2}
  categorical: {}
"""
WINDOW_TESTS = frozenset().union(*TESTS_OF_KIND.values())  # an alert whose detector.type is one is a window's


def demo_main(
    *, bootstrap: str | None, action: str | None, topic: str | None, client: str = "kafka-python"
) -> int:
    bootstrap = bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        raise ConfigError(
            "no broker: pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS "
            "(`make demo` starts a local one)"
        )
    if action == "produce":
        produce_only(bootstrap, topic or "inference-events", client)
        return 0
    return run_demo(bootstrap, client)


def produce_only(bootstrap: str, topic: str, client: str) -> None:
    """Write the scenario to `topic` (for docker compose, where the service runs in its own container)."""
    clients = open_transport(KafkaSettings(bootstrap_servers=bootstrap, client=client))
    _create_input(clients, topic)
    producer = clients.producer()
    try:
        for model_id, _index, value in generate(EVENTS_PER_MODEL):
            producer.send(OutRecord(topic=topic, key=model_id.encode(), value=value, headers=[]))
        producer.flush()
    finally:
        producer.close()
    print(f"demo: produced {EVENTS_PER_MODEL * 4} events to {topic}")


def run_demo(bootstrap: str, client: str = "kafka-python") -> int:
    run_id = uuid.uuid4().hex[:8]
    # Snapshots need an HMAC key; the demo's state is throwaway, so a generated one will do.
    os.environ.setdefault(STATE_KEY_ENV, secrets.token_hex(32))
    config = _demo_config(bootstrap, run_id, client)
    configure_logging("warning", "console")
    clients = open_transport(config.kafka)
    topic = config.topics.input[0]
    scenario = changes(EVENTS_PER_MODEL)
    started = time.monotonic()

    print(f"streamdrift demo (run {run_id}) on {bootstrap}, with {config.kafka.client}")
    print(
        f"  {len(scenario)} models x {EVENTS_PER_MODEL} events; "
        f"each changes at its model event {scenario[0].at}:"
    )
    for change in scenario:
        print(f"    {change.model_id:<10} {change.description:<34} expected on {change.signal}")
    _create_input(clients, topic)

    stop = threading.Event()
    service = DriftService(config, clients, stop=stop)
    failure: list[BaseException] = []
    produced: list[int] = []

    def serve() -> None:
        try:
            service.run()
        except BaseException as exc:  # surfaced in the main thread below
            failure.append(exc)

    def produce() -> None:
        try:
            produced.append(_produce(clients, topic))
        except BaseException as exc:
            failure.append(exc)

    threads = [
        threading.Thread(target=serve, name="streamdrift-service", daemon=True),
        threading.Thread(target=produce, name="demo-producer", daemon=True),
    ]
    for thread in threads:
        thread.start()
    print(f"\nproducing to {topic} ({INPUT_PARTITIONS} partitions) at about {RATE_PER_S} events/s;")
    print("alerts as they arrive (read_committed from the alerts topic):")
    alerts = _watch(clients, config, service, produced, failure)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    if failure:
        raise failure[0]
    alerts.extend(_drain(clients, config.topics.alerts, len(alerts)))
    _scorecard(scenario, alerts)
    show_in_alertmanager(config, alerts, run_id)
    print(f"\ndone in {time.monotonic() - started:.0f} s")
    return 0


def _demo_config(bootstrap: str, run_id: str, client: str) -> StreamdriftConfig:
    env = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "STREAMDRIFT_DEMO_RUN": run_id,
        "STREAMDRIFT_DEMO_CLIENT": client,
    }  # fmt: skip
    text = resources.files("streamdrift.demo").joinpath("demo.yaml").read_bytes()
    plain = parse_config(text, env=env, origin="streamdrift/demo/demo.yaml")
    with tempfile.TemporaryDirectory(prefix="streamdrift-demo-") as directory:  # read once, at parse
        _write_reference(plain, Path(directory) / "reference.json")
        return parse_config(
            text + REFERENCE.encode(), env=env, origin="streamdrift/demo/demo.yaml", base_dir=Path(directory)
        )


def _write_reference(config: StreamdriftConfig, path: Path) -> None:
    """A profile of the known-good period (before the changes), as `profile build` would write it."""
    decoder = EventDecoder(config.event_fields(), config.event_limits())
    profile = Profile()
    for model_id, index, value in generate(EVENTS_PER_MODEL, seed=REFERENCE_SEED):
        if index < EVENTS_PER_MODEL // 2:
            profile.add(decoder.decode(model_id.encode(), value))
    path.write_bytes(orjson.dumps(profile.document()))


def _create_input(clients: Transport, topic: str) -> None:
    admin = clients.connect()
    try:
        admin.ensure_topics({topic: TopicSpec(partitions=INPUT_PARTITIONS, replication_factor=1)})
    finally:
        admin.close()


def _produce(clients: Transport, topic: str) -> int:
    """Produce the scenario at about RATE_PER_S events/s, so detections appear while it runs."""
    producer = clients.producer()
    count = 0
    started = time.monotonic()
    try:
        for model_id, _index, value in generate(EVENTS_PER_MODEL):
            producer.send(OutRecord(topic=topic, key=model_id.encode(), value=value, headers=[]))
            count += 1
            if count % 400 == 0:
                producer.flush()
                ahead = count / RATE_PER_S - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the demo, not synchronisation
        producer.flush()
        return count
    finally:
        producer.close()


def _watch(
    clients: Transport,
    config: StreamdriftConfig,
    service: DriftService,
    produced: list[int],
    failure: list[BaseException],
) -> list[dict[str, Any]]:
    """Print alerts live until everything produced has been processed and committed."""
    consumer = clients.reader()
    follow(consumer, config.topics.alerts, from_beginning=True, wait_s=FINISH_TIMEOUT_S)
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    try:
        while time.monotonic() < deadline and not failure:
            for records in consumer.poll(0.25).values():
                for record in records:
                    alert = orjson.loads(record.value or b"{}")
                    alerts.append(alert)
                    print(f"  {format_alert(alert)}  (model event {model_event(alert)})")
            if produced and service.counters.totals["events"] >= produced[0] and not service.ledger.pending:
                return alerts
        if not failure:
            raise StreamdriftError(f"the service did not process the demo events within {FINISH_TIMEOUT_S} s")
        return alerts
    finally:
        consumer.close()


def _drain(clients: Transport, alerts_topic: str, already: int) -> list[dict[str, Any]]:
    """Alerts committed after the live view stopped (the service's final checkpoint)."""
    consumer = clients.reader()
    try:
        partitions = follow(consumer, alerts_topic, from_beginning=True)
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not read_to_end(consumer, partitions):
            for records in consumer.poll(0.25).values():
                seen.extend(orjson.loads(record.value or b"{}") for record in records)
        return seen[already:]
    finally:
        consumer.close()


def _scorecard(scenario: list[Change], alerts: list[dict[str, Any]]) -> None:
    index_of = model_event
    windows = [a for a in alerts if a["level"] == "drift" and a["detector"]["type"] in WINDOW_TESTS]
    drifts = sorted(
        (a for a in alerts if a["level"] == "drift" and a["detector"]["type"] not in WINDOW_TESTS),
        key=index_of,
    )
    warnings = [a for a in alerts if a["level"] == "warning"]
    explained: set[str] = set()
    print("\nscorecard")
    print(f"  {'change':<34} {'model':<10} {'signal':<16} {'injected':>8} {'detected':>8} {'delay':>6}")
    for change in scenario:
        hits = [
            a
            for a in drifts
            if a["model_id"] == change.model_id and a["signal"] == change.signal and index_of(a) >= change.at
        ]
        explained.update(a["alert_id"] for a in hits)
        first = f"{index_of(hits[0]):>8}" if hits else f"{'missed':>8}"
        delay = f"{index_of(hits[0]) - change.at:>6}" if hits else f"{'-':>6}"
        print(
            f"  {change.description:<34} {change.model_id:<10} {change.signal:<16} {change.at:>8} "
            f"{first} {delay}"
        )
    false_alarms = [a for a in drifts if a["alert_id"] not in explained]
    detected = sum(
        1 for c in scenario if any(a["model_id"] == c.model_id and a["signal"] == c.signal for a in drifts)
    )
    print(f"  detected {detected}/{len(scenario)} changes; delay = model events after the change")
    print(f"  false alarms (drift alerts not explained by an injected change): {len(false_alarms)}")
    for alert in false_alarms:
        print(f"    {alert['model_id']} {alert['signal']} at model event {index_of(alert)}")
    print(f"  warnings (early signs, not pages): {len(warnings)}")
    print(f"  reference windows over their threshold (500 events vs a known-good period): {len(windows)}")
    for (model_id, signal, test), found in sorted(_grouped(windows).items()):
        print(f"    {model_id} {signal} {test}: {len(found)} windows, from model event {min(found)}")
    resolved = [a for a in alerts if a["level"] == "resolved" and (a.get("stats") or {}).get("reference")]
    for alert in resolved:
        verdict = alert["stats"]["reference"]
        print(
            f"  {alert['model_id']} {alert['signal']} resolved at model event {index_of(alert)}: "
            f"{verdict['ended']} ({verdict['test']} {verdict['statistic']:.3g} of the latest window)"
        )
    sys.stdout.flush()


def _grouped(alerts: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[int]]:
    groups: dict[tuple[str, str, str], list[int]] = {}
    for alert in alerts:
        key = (alert["model_id"], alert["signal"], alert["detector"]["type"])
        groups.setdefault(key, []).append(model_event(alert))
    return groups
