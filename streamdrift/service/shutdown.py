"""Graceful shutdown: the first SIGTERM/SIGINT finishes the batch and commits; a second forces exit."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import structlog

FORCED_EXIT_CODE = 130


def install_stop_handlers(stop: threading.Event) -> None:
    log = structlog.get_logger("streamdrift.service")

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning(
                "second signal: exiting without a final checkpoint", signal=signal.Signals(signum).name
            )
            os._exit(FORCED_EXIT_CODE)
        stop.set()  # before logging: a second signal may arrive while this handler runs
        log.info("stopping: finishing the batch and committing", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
