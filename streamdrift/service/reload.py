"""Config hot reload: on SIGHUP, or when the file changes under `run --watch`.

Only detection settings are applied to a running service: `defaults`, `models`, `mute` and `model_alerts`.
Everything else (Kafka connection, topics, processing, fields, categorical, quality, labels, http, logging)
shapes clients and state that only a restart can rebuild; a reload that changes it logs which sections were
left as they were.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Final

import structlog

from streamdrift.config import StreamdriftConfig, load_config
from streamdrift.errors import ConfigError

RELOADABLE: Final = frozenset({"defaults", "models", "mute", "model_alerts"})
WATCH_EVERY_S: Final = 1.0


class ReloadTrigger:
    """Says when to reload: a SIGHUP arrived, or (with `watch`) the file's size or mtime changed."""

    def __init__(self, path: str | Path, *, watch: bool) -> None:
        self.path = Path(path)
        self.watch = watch
        self.requested = threading.Event()
        self.checked_at = 0.0
        self.seen = self._stamp()

    def install_signal_handler(self) -> None:
        def handle(_signum: int, _frame: FrameType | None) -> None:
            self.requested.set()

        signal.signal(signal.SIGHUP, handle)

    def due(self, now: float) -> bool:
        """Whether to reload now (consumes the request)."""
        if self.watch and now - self.checked_at >= WATCH_EVERY_S:
            self.checked_at = now
            stamp = self._stamp()
            if stamp != self.seen:
                self.seen = stamp
                self.requested.set()
        if self.requested.is_set():
            self.requested.clear()
            return True
        return False

    def _stamp(self) -> tuple[int, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None  # mid-replacement by an editor: the next check sees the new file
        return status.st_mtime_ns, status.st_size


def merge_reloadable(
    current: StreamdriftConfig, new: StreamdriftConfig
) -> tuple[StreamdriftConfig, list[str]]:
    """The config to run on after a reload, and the sections whose changes need a restart (not applied).

    When nothing reloadable changed, `current` itself is returned (its config_version stays).
    """
    sections = set(StreamdriftConfig.model_fields) - {"config_version"}
    ignored = sorted(name for name in sections - RELOADABLE if getattr(current, name) != getattr(new, name))
    if all(getattr(current, name) == getattr(new, name) for name in RELOADABLE):
        return current, ignored
    update = {name: getattr(new, name) for name in RELOADABLE}
    update["config_version"] = new.config_version
    return current.model_copy(update=update), ignored


def reloaded_config(trigger: ReloadTrigger, current: StreamdriftConfig) -> StreamdriftConfig | None:
    """The config file read again, merged into `current` (detection settings only); None when nothing is to
    be applied: a bad file (each problem logged, the running config kept) or no detection setting changed."""
    log = structlog.get_logger("streamdrift.service")
    try:
        new = load_config(trigger.path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config reload refused", problem=problem)
        log.warning(
            "config reload refused; running on the previous config",
            config_version=current.config_version,
            problems=len(exc.problems),
        )
        return None
    merged, ignored = merge_reloadable(current, new)
    if ignored:
        log.warning("config changes that need a restart were not applied", sections=ignored)
    if merged is current:
        log.info("config reloaded: no detection setting changed", config_version=merged.config_version)
        return None
    return merged
