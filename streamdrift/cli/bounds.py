"""`--from` / `--to` of `replay --topic`: an offset, or an RFC 3339 time with a zone."""

from __future__ import annotations

from datetime import datetime

from streamdrift.errors import ConfigError
from streamdrift.ports import Bound


def parse_bound(option: str, text: str | None) -> Bound | None:
    """
    >>> parse_bound("--from", "1200")
    Bound(offset=1200, time_ms=None)
    >>> parse_bound("--to", "2026-11-28T10:00:00Z")
    Bound(offset=None, time_ms=1795860000000)
    """
    if text is None:
        return None
    if text.isdigit():
        return Bound(offset=int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(
            f"{option} {text}: expected an offset (e.g. 1200) "
            "or a time with a zone (e.g. 2026-11-28T10:00:00Z)"
        )
    return Bound(time_ms=round(moment.timestamp() * 1000))
