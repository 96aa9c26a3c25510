"""The result of a run: one table for a person, one JSON file for a machine."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One line of the table: a figure, what it is compared with, and how it compares."""

    measurement: str
    figure: str
    reference: str = ""  # the baseline measured in the same run, or the target
    ratio: str = ""
    met: bool | None = None  # the target, when there is one


@dataclass(slots=True, kw_only=True)
class Outcome:
    """What one measurement produced: table rows and every number behind them."""

    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _verdict(met: bool | None) -> str:
    if met is None:
        return ""
    return "yes" if met else "NO"


def format_table(outcomes: Sequence[Outcome], machine: dict[str, Any]) -> str:
    header = ("measurement", "figure", "baseline / target", "ratio", "target met")
    rows: list[tuple[str, ...]] = []
    for outcome in outcomes:
        if outcome.error is not None:
            rows.append((outcome.name, f"FAILED: {outcome.error}", "", "", ""))
            continue
        rows.extend(
            (row.measurement, row.figure, row.reference, row.ratio, _verdict(row.met)) for row in outcome.rows
        )
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * width for width in widths])]
    out.extend(line(row) for row in rows)
    out.append("")
    out.append(
        f"machine: {machine['nproc']} cores ({machine['cpu_model']}), {machine['ram_gib']} GiB RAM, "
        f"python {machine['python']}, kafka-python {machine['kafka_python']} (crc32c {machine['crc32c']}), "
        f"confluent-kafka {machine.get('confluent_kafka')} (librdkafka {machine.get('librdkafka')}), "
        f"river {machine['river']}, streamdrift {machine['streamdrift']}"
    )
    code = machine.get("code", {})
    if code:
        dirty = code.get("streamdrift_uncommitted_changes") or []
        out.append(
            f"code: commit {code.get('commit')}"
            + (f" plus uncommitted changes to {len(dirty)} streamdrift file(s)" if dirty else "")
        )
    for build in machine.get("service_builds", []):
        if build.get("commit"):
            out.append(
                f"before: {build['ref']} = commit {build['commit'][:12]}, run from {build['code_dir']} "
                "(PYTHONPATH), kafka-python, its config without kafka.client"
            )
    load_start, load_end = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    if load_start and load_end:
        out.append(
            "load average (1/5/15 min) at start "
            + "/".join(f"{x:.2f}" for x in load_start)
            + ", at end "
            + "/".join(f"{x:.2f}" for x in load_end)
            + " (the broker and other work share these cores: expect noise)"
        )
    return "\n".join(out)


def write_json(
    directory: Path, run_id: str, outcomes: Sequence[Outcome], machine: dict[str, Any], options: Any
) -> Path:
    """`<directory>/<run id>.json`; the run id is its start time (UTC) and a random suffix."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run_id}.json"
    document = {
        "run_id": run_id,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "options": options,
        "measurements": {
            outcome.name: {
                "rows": [asdict(row) for row in outcome.rows],
                "details": outcome.details,
                "error": outcome.error,
            }
            for outcome in outcomes
        },
    }
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path


def events_per_s(value: float) -> str:
    return f"{value:,.0f} ev/s"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}" if denominator else "n/a"
