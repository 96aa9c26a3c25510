"""The report and progress options of `streamdrift replay`, kept light: building the command line must not
load the detection core."""

from __future__ import annotations

import argparse
from typing import Any

from streamdrift.report.defaults import DEFAULT_MAX_PLOTS, DEFAULT_ROLLING_WINDOW


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The report and progress options of the `replay` subcommand; `report_options` reads them back."""
    parser.add_argument(
        "--report", metavar="DIR",
        help="also write a report into DIR: report.html (self-contained) and plots/*.png "
        "(needs pip install 'streamdrift[report]')",
    )  # fmt: skip
    parser.add_argument(
        "--signals", metavar="GLOB", nargs="+", action="extend",
        help="with --report: plot the signals whose 'model_id/signal' matches a glob (default: those "
        "with alerts, topped up with the busiest to 12)",
    )  # fmt: skip
    parser.add_argument(
        "--rolling-window", metavar="N", type=int, default=DEFAULT_ROLLING_WINDOW,
        help=f"with --report: values per rolling mean in the plots (default {DEFAULT_ROLLING_WINDOW})",
    )  # fmt: skip
    parser.add_argument(
        "--max-plots", metavar="N", type=int, default=DEFAULT_MAX_PLOTS,
        help=f"with --report: at most this many plots (default {DEFAULT_MAX_PLOTS}); "
        "the table lists every signal",
    )  # fmt: skip
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="a progress line on stderr (default: when stderr is a terminal)",
    )  # fmt: skip


def report_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `replay_file` that `add_report_arguments` parsed."""
    return {
        "report_dir": args.report,
        "signals": args.signals,
        "rolling_window": args.rolling_window,
        "max_plots": args.max_plots,
        "progress": args.progress,
    }
