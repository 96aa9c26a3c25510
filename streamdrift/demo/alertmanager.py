"""The demo's last step: its alerts routed to a local Prometheus Alertmanager by `alerts route` (README:
Routing alerts), and what Alertmanager then shows, read from its own API. Skipped, with a line saying how to
see it, when prometheus-alertmanager is not installed (`make demo` installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from streamdrift.config.model import StreamdriftConfig
from streamdrift.config.routes import RoutesConfig
from streamdrift.errors import FatalServiceError
from streamdrift.routing.delivery import sender
from streamdrift.routing.router import Current, route_until
from streamdrift.routing.worker import RouteMetrics

READY_WITHIN_S = 30.0
SHOWN_WITHIN_S = 30.0


def show_in_alertmanager(config: StreamdriftConfig, alerts: Sequence[dict[str, Any]], run_id: str) -> None:
    binary = shutil.which("prometheus-alertmanager")
    print("\nrouted to Alertmanager (streamdrift alerts route):")
    if binary is None:
        print("  skipped: prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)")
        return
    with running_alertmanager(binary) as url:
        routes = RoutesConfig.model_validate(
            {"kafka": config.kafka, "alerts_topic": config.topics.alerts, "group_id": f"demo-router-{run_id}",
             "from_beginning": True, "http": {"enabled": False},
             "routes": [{"name": "oncall", "alertmanager": {"url": url}}]}
        )  # fmt: skip
        stop, reload = threading.Event(), threading.Event()
        current = Current(f"demo-router-{run_id}")
        router = threading.Thread(
            target=route_until,
            args=(routes, [sender(r) for r in routes.routes], RouteMetrics(CollectorRegistry()), current),
            kwargs={"stop": stop, "reload": reload},
            name="demo-router",
            daemon=True,
        )
        router.start()
        expected = firing(alerts)
        deadline = time.monotonic() + SHOWN_WITHIN_S
        shown: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(shown) < expected:
            shown = _get(f"{url}/api/v2/alerts?active=true")
            time.sleep(0.5)  # polling Alertmanager's API
        stop.set()
        router.join(timeout=30)
    print(
        f"  {len(shown)} alerts firing in Alertmanager ({expected} episodes still open, warnings included):"
    )
    for alert in sorted(shown, key=lambda a: (a["labels"]["model_id"], a["labels"]["signal"])):
        labels = alert["labels"]
        print(
            f"    {labels['severity']:<5} {labels['model_id']:<10} {labels['signal']:<26} "
            f"{labels['level']:<8} episode {labels['episode_id'][:8]}"
        )
    print("  (episodes that resolved were sent too, and ended their Alertmanager alerts)")


def firing(alerts: Sequence[dict[str, Any]]) -> int:
    """Alertmanager alerts the demo's alerts leave firing: one per episode not resolved, one per warning
    outside an episode."""
    opened = {a["alert_id"] for a in alerts if a["level"] == "drift" and a.get("episode_id") == a["alert_id"]}
    resolved = {a["episode_id"] for a in alerts if a["level"] == "resolved"}
    lone_warnings = {a["alert_id"] for a in alerts if a["level"] == "warning" and a.get("episode_id") is None}
    return len(opened - resolved) + len(lone_warnings)


@contextmanager
def running_alertmanager(binary: str) -> Iterator[str]:
    """A real Alertmanager on a free loopback port, without clustering, while the block runs: its base URL.
    (The integration tests of `alerts route` run theirs with it too.)"""
    with tempfile.TemporaryDirectory(prefix="streamdrift-demo-am-") as home:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = Path(home) / "alertmanager.yml"
        config.write_text("route: {receiver: nobody}\nreceivers: [{name: nobody}]\n")
        with (Path(home) / "alertmanager.log").open("wb") as log:
            process = subprocess.Popen(  # noqa: S603  # the binary found on PATH, fixed arguments
                [binary, f"--config.file={config}", f"--storage.path={home}",
                 f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_WITHIN_S
            while not _ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    said = (Path(home) / "alertmanager.log").read_text().strip().splitlines()[-1:]
                    raise FatalServiceError(f"the demo's Alertmanager did not start: {' '.join(said)}")
                time.sleep(0.2)  # waiting for it to listen
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:  # noqa: S310  # loopback http
            return bool(response.status == 200)
    except OSError:
        return False


def _get(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310  # loopback http
        found: list[dict[str, Any]] = orjson.loads(response.read())
    return found
