"""`streamdrift replay`: the detection core over a JSONL file, no Kafka."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from streamdrift.config import load_config
from streamdrift.errors import ConfigError
from streamdrift.replay import ReplayStats, replay


def replay_file(config_path: str, input_path: str, output_path: str | None) -> int:
    config = load_config(config_path)
    source = Path(input_path)
    if not source.is_file():
        raise ConfigError(f"--input {input_path}: no such file")
    stats = ReplayStats()
    with source.open("rb") as lines:
        if output_path is None:
            _write(replay(config, _values(lines), stats), sys.stdout.buffer)
        else:
            try:
                out = Path(output_path).open("wb")  # noqa: SIM115 -- closed below; opening is what may fail
            except OSError as exc:
                raise ConfigError(f"--output {output_path}: cannot write: {exc.strerror}") from None
            with out:
                _write(replay(config, _values(lines), stats), out)
    bad = sum(stats.bad_records.values())
    detail = ", ".join(f"{kind}={n}" for kind, n in sorted(stats.bad_records.items()))
    sys.stderr.write(
        f"replay: {stats.events} events, {stats.alerts} alerts, {bad} bad lines"
        + (f" ({detail})" if bad else "")
        + "\n"
    )
    return 0


def _values(lines: BinaryIO) -> Iterator[bytes]:
    for line in lines:
        yield line.rstrip(b"\r\n")


def _write(alerts: Iterator[object], out: BinaryIO) -> None:
    for alert in alerts:
        out.write(alert.to_json() + b"\n")  # type: ignore[attr-defined]
