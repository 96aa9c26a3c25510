"""`streamdrift tune`: measure detector settings on a reference sample and recommend one, no Kafka."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from streamdrift.errors import ConfigError

if TYPE_CHECKING:
    from streamdrift.tune import Evaluation, Recommendation

DEFAULT_SHIFTS = "0.5,1,2"


def add_tune_parser(commands: argparse._SubParsersAction[Any]) -> None:
    """Add the `tune` command to a parser's subcommands."""
    tune = commands.add_parser(
        "tune",
        help="measure false alarms and detection delay of detector settings on a reference sample",
        description="Resample known-good events to measure, for each detector setting of a grid, the "
        "false alarms per 10,000 events and how often and how fast injected changes are detected; "
        "recommend the setting to paste into the config's models list.",
    )
    tune.add_argument(
        "--config", required=True, metavar="FILE", help="YAML config file (for its fields and limits)"
    )
    tune.add_argument(
        "--reference",
        required=True,
        metavar="FILE",
        help="JSONL file of known-good inference events, one per line",
    )
    tune.add_argument(
        "--signal",
        action="append",
        required=True,
        help="signal to tune: feature:<name>, missing:<name>, prediction, prediction:<class>, score or "
        "error (repeatable)",
    )
    tune.add_argument(
        "--model", metavar="MODEL_ID", help="use only this model's events (default: every event)"
    )
    tune.add_argument(
        "--detector",
        required=True,
        metavar="TYPE",
        help="detector type: adwin, page_hinkley, kswin, ddm, eddm, hddm_a, hddm_w or fhddm",
    )
    tune.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="values of one detector parameter (repeatable; every combination is measured). "
        "Default: the detector's main parameter around River's default",
    )
    tune.add_argument(
        "--target-false-alarms",
        type=float,
        metavar="PER_10K",
        default=1.0,
        help="false alarms per 10,000 events a recommended setting may raise (default: 1)",
    )
    tune.add_argument(
        "--shift",
        default=DEFAULT_SHIFTS,
        metavar="SD,...",
        help=f"mean shifts to detect, in reference standard deviations (default: {DEFAULT_SHIFTS})",
    )
    tune.add_argument(
        "--variance-ratio",
        default="2",
        metavar="RATIO,...",
        help="variance changes to detect, as ratios (default: 2)",
    )
    tune.add_argument(
        "--error-rise",
        default="0.1",
        metavar="RISE,...",
        help="for 0/1 signals: rises in the rate of 1s to detect, instead of shifts (default: 0.1)",
    )
    tune.add_argument(
        "--runs", type=int, default=50, metavar="N", help="simulated streams per setting (default: 50)"
    )
    tune.add_argument(
        "--length",
        type=int,
        default=5000,
        metavar="N",
        help="events per stream; the change is at the middle (default: 5000)",
    )
    tune.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the resampling (default: 0)")
    tune.add_argument(
        "--output", metavar="FILE", help="write the recommended config YAML here (default: print it)"
    )
    tune.set_defaults(handler=tune_command)


def tune_command(args: argparse.Namespace) -> int:
    from streamdrift.config import load_config
    from streamdrift.tune import (
        Signal,
        Simulation,
        changes_for,
        check_distinct_keys,
        check_target,
        default_grid,
        evaluate,
        parse_grid,
        read_reference,
        recommend,
        recommendation_yaml,
    )

    # Everything that can be checked without the reference is, so a typo fails in a second.
    config = load_config(args.config)
    signals = list({signal.name: signal for signal in map(Signal.parse, args.signal)}.values())
    check_distinct_keys(signals)
    grid = parse_grid(args.detector, args.grid) if args.grid else None
    simulation = Simulation(runs=args.runs, length=args.length, seed=args.seed)
    check_target(args.target_false_alarms)
    shifts = _numbers("--shift", args.shift)
    variance_ratios = _numbers("--variance-ratio", args.variance_ratio)
    rate_rises = _numbers("--error-rise", args.error_rise)
    if args.output is not None:
        _check_writable(Path(args.output))
    try:
        lines = Path(args.reference).open("rb")  # noqa: SIM115 -- closed below; opening is what may fail
    except OSError as exc:
        raise ConfigError(f"--reference {args.reference}: cannot read: {exc.strerror}") from None
    with lines:
        reference = read_reference(config, _records(lines), signals, args.detector, model=args.model)
    _report_reference(reference.events, reference.bad_records, reference.skipped)

    recommendations = []
    for signal in signals:
        sample = reference.samples[signal.name]
        changes = changes_for(sample, shifts=shifts, variance_ratios=variance_ratios, rate_rises=rate_rises)
        settings = grid if grid is not None else default_grid(args.detector, sample)
        evaluation = evaluate(sample, settings, changes, simulation, _progress(signal.name, args.runs))
        recommendation = recommend(evaluation, args.target_false_alarms)
        recommendations.append(recommendation)
        table = format_table(evaluation, recommendation, model=args.model, per_day=reference.events_per_day)
        sys.stdout.write(table + "\n")
    fleet = config.fleet_budget()  # with a budget: what it implies for the fleet, beside the table
    if fleet is not None:
        sys.stdout.write(fleet.summary() + "\n\n")

    document = recommendation_yaml(recommendations, args.model)
    if args.output is None:
        sys.stdout.write(document)
        return 0
    try:
        Path(args.output).write_text(document, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {args.output}: cannot write: {exc.strerror}") from None
    sys.stderr.write(f"tune: recommended config written to {args.output}\n")
    return 0


def _check_writable(path: Path) -> None:
    """Fail before minutes of evaluation, not after, when the output obviously cannot be written."""
    if path.is_dir():
        raise ConfigError(f"--output {path}: cannot write: Is a directory")
    if not path.parent.is_dir():
        raise ConfigError(f"--output {path}: cannot write: no directory {path.parent}")


def _numbers(option: str, text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text}: expected numbers separated by commas, e.g. 0.5,1,2") from None


def _records(lines: BinaryIO) -> Iterator[bytes]:
    for line in lines:
        yield line.rstrip(b"\r\n")


def _report_reference(events: int, bad_records: dict[str, int], skipped: dict[str, int]) -> None:
    def listed(counts: dict[str, int]) -> str:
        return ", ".join(f"{kind}={n}" for kind, n in sorted(counts.items()))

    line = f"tune: {events} reference events"
    if bad_records:
        line += f", {sum(bad_records.values())} bad lines ({listed(bad_records)})"
    if skipped:
        line += f", values skipped: {listed(skipped)}"
    sys.stderr.write(line + "\n")


def _progress(signal: str, runs: int) -> Callable[[int], None] | None:
    """A progress line on a terminal (a grid of slow detectors takes minutes); nothing otherwise."""
    if not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        end = "\r\033[K" if done == runs else ""  # erase the line once the table follows
        sys.stderr.write(f"\rtune: {signal}: run {done}/{runs}{end}")
        sys.stderr.flush()

    return show


# --- the table -----------------------------------------------------------------------------------------

_COLUMN_GAP = "  "


def format_table(
    evaluation: Evaluation, recommendation: Recommendation, *, model: str | None, per_day: float | None = None
) -> str:
    """A header saying what was measured, one row per setting, and the recommendation under it; with the
    reference's event rate (`per_day` events), the false alarms per day of each setting too."""
    from streamdrift.tune import describe_setting

    sample, simulation = evaluation.sample, evaluation.simulation
    of_model = f" of model {model}" if model is not None else " of every model"
    spread = (
        f"rate of 1s {sample.mean:.2%}" if sample.binary else f"mean {sample.mean:.4g}, sd {sample.std:.4g}"
    )
    detector_type = evaluation.results[0].spec.type
    lines = [
        f"{sample.signal.name}{of_model}: {detector_type} on {sample.values.shape[0]} reference values "
        f"({spread})",
        f"{simulation.runs} runs of {simulation.length} events resampled from them (seed {simulation.seed}). "
        "False alarms: one detector per setting over every run back to back, as in production.",
        f"Changes at event {simulation.change_at} of each run, a fresh detector per run: detect = share of "
        "runs with a drift at or after the change, delay = median events from the change to it.",
        "",
    ]
    settings = [describe_setting(result.spec) for result in evaluation.results]
    daily = [] if per_day is None else ["per day"]
    rows: list[list[str]] = [
        ["", "setting", "false alarms", *[""] * len(daily), *(change.label for change in evaluation.changes)],
        ["", "", "per 10k", *daily, *(_pair("detect", "delay") for _ in evaluation.changes)],
    ]
    for setting, result in zip(settings, evaluation.results, strict=True):
        mark = "*" if result is recommendation.result else ""
        cells = [_pair(f"{o.detection_probability:.0%}", _delay(o.median_delay)) for o in result.outcomes]
        day = [] if per_day is None else [f"{result.false_alarms_per_10k * per_day / 10_000:.3g}"]
        rows.append([mark, setting, f"{result.false_alarms_per_10k:.2f}", *day, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append(_COLUMN_GAP.join(cells).rstrip())
    lines += ["", _verdict(recommendation, describe_setting(recommendation.result.spec))]
    return "\n".join(lines) + "\n"


def _pair(detect: str, delay: str) -> str:
    return f"{detect:>6} {delay:>6}"


def _delay(median: float | None) -> str:
    return "-" if median is None else f"{median:.1f}".removesuffix(".0")


def _verdict(recommendation: Recommendation, setting: str) -> str:
    result, target = recommendation.result, recommendation.target_false_alarms
    smallest = result.outcomes[0]
    detects = f"detects {smallest.change.label} in {smallest.detection_probability:.0%} of runs" + (
        "" if smallest.median_delay is None else f", median delay {_delay(smallest.median_delay)} events"
    )
    rate = f"{result.false_alarms_per_10k:.2f} false alarms per 10k"
    if recommendation.meets_target:
        return f"* recommended: {setting} ({rate}, target {target:g}; {detects})"
    return (
        f"* no setting meets the target of {target:g} false alarms per 10k; fewest: {setting} "
        f"({rate}; {detects}). Widen the grid toward fewer alarms."
    )
