"""The HTTP endpoints, served from a daemon thread: /metrics, /healthz and /readyz.

They only read what the processing loop publishes (counters, a heartbeat, a readiness verdict), so a scrape
never touches the Kafka clients, which are not thread-safe, and never waits for the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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

            def log_message(self, format: str, *args: Any) -> None:
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
