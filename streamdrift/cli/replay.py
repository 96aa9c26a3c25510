"""`streamdrift replay`: the detection core over a JSONL file or a topic range; optionally a report of it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from streamdrift.config import StreamdriftConfig, load_config
from streamdrift.errors import ConfigError
from streamdrift.replay import Line, ReplayStats, SourceRecord, replay_records
from streamdrift.report.collect import ReportCollector, select_signals
from streamdrift.report.defaults import DEFAULT_MAX_PLOTS, DEFAULT_ROLLING_WINDOW
from streamdrift.report.progress import ProgressLine
from streamdrift.report.render import ReportContext, require_matplotlib, write_report

if TYPE_CHECKING:
    from streamdrift.ports import Bound, InRecord


def replay_file(
    config_path: str,
    input_path: str | None,
    output_path: str | None,
    *,
    topic: str | None = None,
    start: str | None = None,
    stop: str | None = None,
    report_dir: str | None = None,
    signals: Sequence[str] | None = None,
    rolling_window: int = DEFAULT_ROLLING_WINDOW,
    max_plots: int = DEFAULT_MAX_PLOTS,
    progress: bool | None = None,
) -> int:
    """Replay `input_path` (JSONL), or `topic` from `start` to `stop` (offsets or times; see bounds.py)."""
    config = load_config(config_path)
    if (input_path is None) == (topic is None):
        raise ConfigError("give either --input FILE or --topic TOPIC")
    if topic is None and (start is not None or stop is not None):
        raise ConfigError("--from and --to need --topic")
    if input_path is not None and not Path(input_path).is_file():
        raise ConfigError(f"--input {input_path}: no such file")
    collector = _report_collector(report_dir, signals, rolling_window, max_plots)
    stats = ReplayStats()
    show_progress = sys.stderr.isatty() if progress is None else progress
    with contextlib.ExitStack() as stack:
        if input_path is not None:
            source = Path(input_path)
            lines = stack.enter_context(source.open("rb"))
            bar = ProgressLine(sys.stderr, total_bytes=source.stat().st_size) if show_progress else None
            records: Iterable[SourceRecord] = _lines(bar.track(lines) if bar is not None else lines)
        else:
            assert topic is not None
            from streamdrift.cli.bounds import parse_bound  # the Kafka adapter only when reading a topic

            first, last = parse_bound("--from", start), parse_bound("--to", stop)
            bar = ProgressLine(sys.stderr) if show_progress else None
            records = topic_records(config, topic, first, last)
            if bar is not None:
                records = bar.track_items(records, lambda record: len(record.value or b""))
        alerts = replay_records(config, records, stats, watcher=collector)
        try:
            if output_path is None:
                _write(alerts, sys.stdout.buffer)
            else:
                try:
                    out = Path(output_path).open("wb")  # noqa: SIM115 -- closed below; opening is what may fail
                except OSError as exc:
                    raise ConfigError(f"--output {output_path}: cannot write: {exc.strerror}") from None
                with out:
                    _write(alerts, out)
        finally:
            if bar is not None:
                bar.finish()  # ends the progress line, so what follows starts on its own
    bad = sum(stats.bad_records.values())
    detail = ", ".join(f"{kind}={n}" for kind, n in sorted(stats.bad_records.items()))
    sys.stderr.write(
        f"replay: {stats.events} events, {stats.alerts} alerts, {bad} bad lines"
        + (f" ({detail})" if bad else "")
        + "\n"
    )
    if collector is not None and report_dir is not None:
        name = input_path or f"topic {topic}" + (f" from {start}" if start else "") + (
            f" to {stop}" if stop else ""
        )
        _write_report(collector, Path(report_dir), signals, max_plots, name, config.config_version, stats)
    return 0


def _report_collector(
    report_dir: str | None, signals: Sequence[str] | None, rolling_window: int, max_plots: int
) -> ReportCollector | None:
    """Check the report options before the replay: a mistake should not cost a long run."""
    if report_dir is None:
        if signals:
            raise ConfigError("--signals needs --report DIR")
        return None
    require_matplotlib()
    if rolling_window < 1:
        raise ConfigError(f"--rolling-window must be at least 1, got {rolling_window}")
    if max_plots < 0:
        raise ConfigError(f"--max-plots must be 0 or more, got {max_plots}")
    target = Path(report_dir)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--report {report_dir}: cannot create the directory: {exc.strerror}") from None
    return ReportCollector(rolling_window=rolling_window)


def _write_report(
    collector: ReportCollector,
    out_dir: Path,
    signals: Sequence[str] | None,
    max_plots: int,
    input_path: str,
    config_version: str,
    stats: ReplayStats,
) -> None:
    histories = collector.histories()
    selection = select_signals(histories, signals, max_plots=max_plots)
    for pattern in selection.unmatched_patterns:
        sys.stderr.write(f"replay: --signals {pattern} matched no signal\n")
    context = ReportContext(
        input_name=input_path,
        config_version=config_version,
        rolling_window=collector.rolling_window,
        events=stats.events,
        alerts=stats.alerts,
        bad_records=sum(stats.bad_records.values()),
    )
    files = write_report(out_dir, histories, selection, context)
    cut = f" of {selection.qualified} that qualified (--max-plots)" if selection.truncated else ""
    sys.stderr.write(
        f"replay: report {files.html}: {len(histories)} signals, {len(files.plots)} plotted{cut}\n"
    )


def _lines(lines: Iterable[bytes]) -> Iterator[Line]:
    for offset, line in enumerate(lines):
        yield Line(line.rstrip(b"\r\n"), offset)


def topic_records(
    config: StreamdriftConfig, topic: str, first: Bound | None, last: Bound | None
) -> Iterator[InRecord]:
    """The range's records, partition after partition."""
    from streamdrift.reading import read_range
    from streamdrift.transports import open_transport

    for batch in read_range(open_transport(config.kafka).reader(max_poll_records=5000), topic, first, last):
        yield from batch


def _write(alerts: Iterator[object], out: BinaryIO) -> None:
    for alert in alerts:
        out.write(alert.to_json() + b"\n")  # type: ignore[attr-defined]
