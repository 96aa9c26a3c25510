"""`streamdrift alerts route` against a real Prometheus Alertmanager (Debian's prometheus-alertmanager,
started here on loopback; `make test` installs it) and a loopback webhook receiver. Alertmanager's own API
is the oracle: drift alerts appear with their labels, and an episode's `resolved` alert ends its
Alertmanager alert. The webhook receiver's requests are checked against an HMAC computed here with the
secret; the outage test stops the receiver for 60 s while alerts are still arriving and counts every alert
delivered at least once."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamdrift.core.alert import DriftAlert, RecordSource, alert_id
from streamdrift.demo.alertmanager import running_alertmanager
from tests.conftest import KAFKA_CLIENT_ENV, KafkaClients, TopicFactory, unique_name
from tests.integration.runs import committed_total, read_all
from tests.integration.test_kafka_script import free_ports
from tests.integration.test_subscriber import write

STREAMDRIFT = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "streamdrift")
WAIT_S = 60.0
AWAY_S = 60


def wait_until(done: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.2)  # polling interval


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # a loopback http URL
        return orjson.loads(response.read())


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[str]:
    """A real Alertmanager on a free loopback port (the demo's launcher); its base URL."""
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "prometheus-alertmanager is not installed (make test installs it)"
    with running_alertmanager(binary) as url:
        yield url


def make_alert(
    model_id: str, signal_name: str, level: str, offset: int, *, episode: str | None = None,
    signals: tuple[str, ...] | None = None,
) -> DriftAlert:  # fmt: skip
    source = RecordSource(offset, "inference-events", 0, int(time.time() * 1000))
    return DriftAlert(
        alert_id=alert_id(model_id, signal_name, level, source),
        level=level,  # type: ignore[arg-type]  # one of the levels
        model_id=model_id,
        model_version="3",
        signal=signal_name,
        detector_type="model" if signals else "adwin",
        detector_params={},
        source=source,
        observations=offset + 1,
        stats={},
        event_time_ms=None,
        config_version="0123456789ab",
        episode_id=episode,
        signals=signals,
    )


class Router:
    """`streamdrift alerts route` as a process of its own, on a routes file."""

    def __init__(self, tmp_path: Path, routes: str) -> None:
        self.config = tmp_path / "routes.yaml"
        self.config.write_text(routes)
        self.log_path = tmp_path / "router.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [STREAMDRIFT, "alerts", "route", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> None:
        assert self.process is not None and self.process.poll() is None, self.log_path.read_text()

    def metric(self, name: str, route: str) -> float:
        ports = [e["port"] for e in self.events() if e.get("event") == "http listening"]
        if not ports:
            return 0.0
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/metrics", timeout=10) as response:
            text = response.read().decode()
        prefix = f'{name}{{route="{route}"}} '
        return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{"):
                found.append(orjson.loads(line))
        return found

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def routes_file(bootstrap_servers: str, topic: str, group: str, receiver: str) -> str:
    return (
        f'kafka: {{bootstrap_servers: "{bootstrap_servers}", client: "${{{KAFKA_CLIENT_ENV}}}"}}\n'
        f"alerts_topic: {topic}\ngroup_id: {group}\nfrom_beginning: true\nhttp: {{port: 0}}\n"
        f"routes:\n{receiver}"
    )


def test_drift_alerts_fire_in_alertmanager_with_their_labels_and_resolved_ends_them(
    bootstrap_servers: str,
    kafka_client: str,
    kafka_admin: Any,
    kafka_clients: KafkaClients,
    new_topic: TopicFactory,
    alertmanager: str,
    tmp_path: Path,
) -> None:
    topic, group = new_topic(1), unique_name("router")
    model = unique_name("fraud")  # Alertmanager is shared by the tests: labels of this test's own
    drift = make_alert(model, "feature:amount", "drift", 10, episode=None)
    drift = make_alert(model, "feature:amount", "drift", 10, episode=drift.alert_id)
    warning = make_alert(model, "score", "warning", 11)
    grouped = make_alert(model, "model", "drift", 12, signals=("feature:amount", "score"))
    grouped = make_alert(model, "model", "drift", 12, episode=grouped.alert_id, signals=grouped.signals)
    resolved = make_alert(model, "feature:amount", "resolved", 40, episode=drift.alert_id)
    write(bootstrap_servers, kafka_client, topic, [([a.to_json() for a in (drift, warning, grouped)], True)])
    router = Router(
        tmp_path,
        routes_file(
            bootstrap_servers, topic, group,
            f"  - name: oncall\n    alertmanager: {{url: \"{alertmanager}\", labels: {{team: risk}}}}\n"
            '    title: "{model_id}: {signal} {level}"\n',
        ),
    )  # fmt: skip
    router.start()

    def firing() -> dict[str, dict[str, str]]:
        router.alive()
        alerts = get_json(f"{alertmanager}/api/v2/alerts?filter=model_id%3D%22{model}%22")
        return {a["labels"]["signal"]: a for a in alerts if a["status"]["state"] == "active"}

    wait_until(lambda: len(firing()) == 3, "three alerts firing in Alertmanager")
    shown = firing()
    common = {"alertname": "StreamdriftDrift", "model_id": model, "team": "risk"}
    assert {signal_name: alert["labels"] for signal_name, alert in shown.items()} == {
        "feature:amount": {**common, "signal": "feature:amount", "level": "drift", "severity": "info",
                           "episode_id": drift.alert_id},
        "score": {**common, "signal": "score", "level": "warning", "severity": "info",
                  "episode_id": warning.alert_id},
        "model": {**common, "signal": "model", "level": "drift", "severity": "page",
                  "episode_id": grouped.alert_id},
    }  # fmt: skip
    assert shown["feature:amount"]["annotations"]["summary"] == f"{model}: feature:amount drift"

    write(bootstrap_servers, kafka_client, topic, [([resolved.to_json()], True)])
    wait_until(lambda: set(firing()) == {"score", "model"}, "the resolved episode no longer firing")
    assert router.metric("streamdrift_route_delivered_total", "oncall") == 4
    assert router.stop() == 0
    last = max(record.offset for record in read_all(kafka_clients, topic))
    assert committed_total(kafka_admin, group) == last + 1, "what was delivered is committed"


class Receiver:
    """A loopback webhook receiver: keeps each request's headers and body; can be stopped and started
    again on the same port."""

    def __init__(self) -> None:
        (self.port,) = free_ports(1)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with received.lock:
                    received.requests.append((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def alert_ids(self) -> list[str]:
        with self.lock:
            return [headers["X-Streamdrift-Alert-Id"] for headers, _ in self.requests]


def test_a_webhook_gets_each_alert_signed_once_and_nothing_is_lost_while_it_is_away(
    bootstrap_servers: str, kafka_client: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    topic = new_topic(1)
    secret = "correct horse battery staple"
    (tmp_path / "secret").write_text(secret + "\n")
    receiver = Receiver()
    receiver.start()
    alerts = [make_alert(f"m{i % 3}", "score", "drift", i) for i in range(40)]
    first, later = alerts[:20], alerts[20:]
    # The first batch holds one alert twice (as an at-least-once run can write it): delivered once.
    write(bootstrap_servers, kafka_client, topic, [([a.to_json() for a in [*first, first[5]]], True)])
    router = Router(
        tmp_path,
        routes_file(
            bootstrap_servers, topic, unique_name("router"),
            f'  - name: audit\n    webhook: {{url: "http://127.0.0.1:{receiver.port}/hook", '
            f'secret_file: "{tmp_path / "secret"}", timeout_s: 2}}\n'
            "    retry: {initial_s: 0.5, max_s: 4}\n    max_pending: 5\n",
        ),
    )  # fmt: skip
    router.start()
    try:
        wait_until(lambda: (router.alive(), len(receiver.alert_ids()) >= 20)[1], "the first batch delivered")
        assert receiver.alert_ids() == [a.alert_id for a in first]
        for headers, body in receiver.requests:
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["X-Streamdrift-Signature"], expected)
        payload = orjson.loads(receiver.requests[0][1])
        assert payload["alert"] == first[0].to_dict() and payload["route"] == "audit"

        receiver.stop()  # away for 60 s, with alerts still arriving
        away_since = time.monotonic()
        for start in range(0, len(later), 5):
            write(
                bootstrap_servers,
                kafka_client,
                topic,
                [([a.to_json() for a in later[start : start + 5]], True)],
            )
        wait_until(
            lambda: router.metric("streamdrift_route_failed_attempts_total", "audit") > 0, "a failed attempt"
        )
        assert router.metric("streamdrift_route_pending", "audit") > 0, (
            "nothing was in flight while it was away"
        )
        time.sleep(max(0.0, AWAY_S - (time.monotonic() - away_since)))  # the outage itself
        router.alive()
        receiver.start()
        wait_until(lambda: set(receiver.alert_ids()) >= {a.alert_id for a in alerts}, "every alert delivered")
        assert router.stop() == 0
        # max_pending 5: the alerts written while it was away filled the route, and reading paused till then.
        said = [e["event"] for e in router.events() if e.get("event", "").startswith("reading")]
        assert said[:2] == ["reading paused: routes with max_pending alerts waiting", "reading resumed"], said
    finally:
        if receiver.server is not None:
            receiver.stop()
    ids = receiver.alert_ids()
    assert set(ids) == {a.alert_id for a in alerts}  # none lost, nothing else
    assert len(ids) - len(set(ids)) <= 1  # at most the one in flight when the receiver went away, again


def test_sighup_reloads_the_routes_and_a_bad_file_keeps_the_ones_in_force(
    bootstrap_servers: str, kafka_client: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    topic, group = new_topic(1), unique_name("router")
    before, after = Receiver(), Receiver()
    before.start()
    after.start()

    def to(receiver: Receiver) -> str:
        return routes_file(
            bootstrap_servers, topic, group,
            f'  - name: hook\n    webhook: {{url: "http://127.0.0.1:{receiver.port}/hook"}}\n',
        )  # fmt: skip

    alerts = [make_alert("m", "score", "drift", i) for i in range(9)]
    router = Router(tmp_path, to(before))
    router.start()
    try:
        write(bootstrap_servers, kafka_client, topic, [([a.to_json() for a in alerts[:3]], True)])
        wait_until(lambda: (router.alive(), len(before.alert_ids()) == 3)[1], "the first alerts delivered")

        def reloads(event: str) -> int:
            return sum(1 for e in router.events() if e.get("event") == event)

        router.config.write_text(to(after))
        assert router.process is not None
        router.process.send_signal(signal.SIGHUP)
        wait_until(lambda: reloads("routes reloaded") == 1, "the routes reloaded")
        write(bootstrap_servers, kafka_client, topic, [([a.to_json() for a in alerts[3:6]], True)])
        wait_until(lambda: len(after.alert_ids()) == 3, "the next alerts delivered under the new routes")

        router.config.write_text("routes: [")
        router.process.send_signal(signal.SIGHUP)
        wait_until(lambda: reloads("routes file not reloaded: the routes in force stay") == 1, "the refusal")
        write(bootstrap_servers, kafka_client, topic, [([a.to_json() for a in alerts[6:]], True)])
        wait_until(lambda: len(after.alert_ids()) == 6, "the last alerts delivered under the routes in force")
        router.alive()
        assert router.stop() == 0
    finally:
        before.stop()
        after.stop()
    assert before.alert_ids() == [a.alert_id for a in alerts[:3]]
    assert after.alert_ids() == [a.alert_id for a in alerts[3:]]


def test_an_apprise_route_notifies_with_the_routes_title_and_text(
    bootstrap_servers: str, kafka_client: str, new_topic: TopicFactory, tmp_path: Path
) -> None:
    """apprise's json:// service posts {title, message, type} to a URL: the loopback receiver gets them."""
    topic = new_topic(1)
    receiver = Receiver()
    receiver.start()
    drift = make_alert("fraud", "score", "drift", 1)
    drift = make_alert("fraud", "score", "drift", 1, episode=drift.alert_id)
    resolved = make_alert("fraud", "score", "resolved", 9, episode=drift.alert_id)
    write(bootstrap_servers, kafka_client, topic, [([drift.to_json(), resolved.to_json()], True)])
    router = Router(
        tmp_path,
        routes_file(
            bootstrap_servers, topic, unique_name("router"),
            f'  - name: chat\n    apprise: {{urls: ["json://127.0.0.1:{receiver.port}/notify"]}}\n'
            '    title: "{model_id} {level}"\n    text: "{signal} at offset {offset}"\n',
        ),
    )  # fmt: skip
    router.start()
    try:
        wait_until(lambda: (router.alive(), len(receiver.requests) >= 2)[1], "two notifications")
        assert router.stop() == 0
    finally:
        receiver.stop()
    notified = [orjson.loads(body) for _, body in receiver.requests]
    assert [(n["title"], n["message"], n["type"]) for n in notified] == [
        ("fraud drift", "score at offset 1", "failure"),
        ("fraud resolved", "score at offset 9", "success"),
    ]
