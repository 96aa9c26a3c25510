"""The HTTP endpoints, served from a daemon thread: /metrics, /healthz and /readyz.

They only read what the processing loop publishes (counters, a heartbeat, a readiness verdict), so a scrape
never touches the Kafka clients, which are not thread-safe, and never waits for the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamdrift.errors import FatalServiceError

# (healthy or ready, the reason in one line)
Probe = Callable[[], tuple[bool, str]]


class Endpoints:
    """An HTTP server on `host:port` (port 0: any free port; `address` tells which)."""

    def __init__(
        self, host: str, port: int, *, registry: CollectorRegistry, healthy: Probe, ready: Probe
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: _probe(healthy),
            "/readyz": lambda: _probe(ready),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the stdlib's name
                route = routes.get(self.path.split("?", 1)[0])
                status, content_type, body = (
                    route() if route else (404, "text/plain", b"not found: /metrics, /healthz, /readyz\n")
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes arrive every few seconds: never one log line per request

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _probe(probe: Probe) -> tuple[int, str, bytes]:
    ok, reason = probe()
    return (200 if ok else 503), "text/plain; charset=utf-8", f"{reason}\n".encode()


class HttpSettings(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...


class Probes(Protocol):
    def liveness(self) -> tuple[bool, str]: ...
    def readiness(self) -> tuple[bool, str]: ...


def serve(settings: HttpSettings, registry: CollectorRegistry, probes: Probes) -> Endpoints | None:
    """Start the endpoints when `http.enabled`; a port that cannot be bound is one line and exit 1."""
    if not settings.enabled:
        return None
    try:
        endpoints = Endpoints(
            settings.host, settings.port, registry=registry, healthy=probes.liveness, ready=probes.readiness
        )
    except OSError as exc:
        raise FatalServiceError(
            f"cannot serve HTTP on {settings.host}:{settings.port} ({exc.strerror or exc}); "
            "set http.port to a free port (0: any) or http.enabled: false"
        ) from exc
    endpoints.start()
    host, port = endpoints.address
    structlog.get_logger("streamdrift.service").info(
        "http listening", host=host, port=port, paths=["/metrics", "/healthz", "/readyz"]
    )
    return endpoints
