"""`streamdrift alerts tail`: a readable live view of the alerts topic (read_committed, each alert once),
built on the subscriber API (streamdrift/subscriber.py). With `--group` it resumes where the group left
off."""

from __future__ import annotations

import sys

import orjson

from streamdrift.alert_text import format_alert
from streamdrift.config import load_config
from streamdrift.subscriber import AlertSubscriber


def tail_alerts(
    config_path: str, *, from_beginning: bool, as_json: bool, limit: int | None, group_id: str | None = None
) -> int:
    config = load_config(config_path)
    shown = 0
    with AlertSubscriber(
        config.kafka, config.topics.alerts, group_id=group_id, from_beginning=from_beginning
    ) as alerts:
        try:
            while limit is None or shown < limit:
                batch = alerts.poll(0.5, max_alerts=None if limit is None else limit - shown)
                for alert in batch:
                    fields = alert.to_dict()
                    line = orjson.dumps(fields).decode() if as_json else format_alert(fields)
                    sys.stdout.write(line + "\n")
                shown += len(batch)
                sys.stdout.flush()
                alerts.commit()
        except KeyboardInterrupt:
            pass
    return 0
