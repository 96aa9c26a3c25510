"""Logs are events with context: JSON lines in production, readable console lines on a terminal."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


def configure_logging(
    level: str = "info", fmt: Literal["auto", "json", "console"] = "auto", *, stream: object = None
) -> None:
    out = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and getattr(out, "isatty", lambda: False)())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=False) if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # kafka-python logs through the standard library and repeats every retry; streamdrift reports what
    # matters itself (one line per failure), so its chatter shows only at debug level. Below that its
    # warnings still reach the Kafka adapter's watch for failures no retry can fix (bad credentials,
    # an untrusted certificate), which turns them into one line and an exit.
    logging.basicConfig(level=logging.WARNING if level != "debug" else logging.INFO, stream=out)  # type: ignore[arg-type]
    # librdkafka's own log (the confluent transport) likewise: its errors reach the adapter as events.
    for name, verbose in (("kafka", logging.INFO), ("streamdrift.confluent", logging.DEBUG)):
        library_log = logging.getLogger(name)
        library_log.setLevel(logging.WARNING if level != "debug" else verbose)
        library_log.propagate = level == "debug"
        library_log.addHandler(logging.NullHandler())
