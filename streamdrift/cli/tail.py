"""`streamdrift alerts tail`: a readable live view of the alerts topic (read_committed)."""

from __future__ import annotations

import sys

import orjson

from streamdrift.alert_text import format_alert
from streamdrift.config import load_config
from streamdrift.reading import follow
from streamdrift.transports import open_transport


def tail_alerts(config_path: str, *, from_beginning: bool, as_json: bool, limit: int | None) -> int:
    config = load_config(config_path)
    reader = open_transport(config.kafka).reader()
    follow(reader, config.topics.alerts, from_beginning=from_beginning)
    shown = 0
    try:
        while limit is None or shown < limit:
            for records in reader.poll(0.5).values():
                for record in records:
                    if limit is not None and shown >= limit:
                        break
                    value = record.value or b"null"
                    if as_json:
                        sys.stdout.write(value.decode() + "\n")
                    else:
                        sys.stdout.write(format_alert(orjson.loads(value)) + "\n")
                    shown += 1
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0
