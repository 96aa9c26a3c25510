"""Writing a replay report: one PNG per selected signal and one self-contained HTML page.

The page holds everything it shows (PNGs inlined as data URIs, inline CSS, no script), so it opens from a
ticket attachment or an air-gapped laptop. matplotlib is an optional extra and is imported only here, only
when a report is written.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streamdrift.errors import ConfigError
from streamdrift.report.collect import AlertMark, AlertTally, SignalHistory, SignalSelection

MISSING_MATPLOTLIB = "--report needs matplotlib: pip install 'streamdrift[report]'"
HTML_NAME = "report.html"
PLOTS_DIR = "plots"
PLOT_INCHES = (12.0, 3.2)
PLOT_DPI = 100
PLOT_PIXELS = (round(PLOT_INCHES[0] * PLOT_DPI), round(PLOT_INCHES[1] * PLOT_DPI))
DRIFT_COLOR = "#d62728"
WARNING_COLOR = "#ff7f0e"
MEAN_COLOR = "#1f77b4"

# Grays only: colour on the page comes from the plots, which is how a rendering check tells they loaded.
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
p.note { color: #555; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: right; white-space: nowrap; }
th.name, td.name { text-align: left; }
tr.alerted td { font-weight: 600; }
figure { margin: 16px 0 28px; }
figcaption { color: #555; }
a { color: #222; }
img.signal-plot { display: block; max-width: 100%; height: auto; border: 1px solid #ddd; }
"""
# The browser itself refuses anything the page would fetch.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def require_matplotlib() -> None:
    """Fail before a long replay, not after it, when the report cannot be drawn."""
    try:
        import matplotlib  # noqa: F401, PLC0415 -- an optional extra
    except ImportError:
        raise ConfigError(MISSING_MATPLOTLIB) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportContext:
    """What the page says about the run as a whole."""

    input_name: str
    config_version: str
    rolling_window: int
    events: int
    alerts: int
    bad_records: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportFiles:
    html: Path
    plots: tuple[Path, ...]


def write_report(
    out_dir: Path, histories: Sequence[SignalHistory], selection: SignalSelection, context: ReportContext
) -> ReportFiles:
    """Write `plots/NNN-<model>_<signal>.png` for the selected signals and `report.html` into `out_dir`."""
    require_matplotlib()
    plots_dir = out_dir / PLOTS_DIR
    try:
        plots_dir.mkdir(parents=True, exist_ok=True)
        images: list[tuple[SignalHistory, Path]] = []
        for number, history in enumerate(selection.chosen, start=1):
            path = plots_dir / f"{number:03d}-{_file_slug(history.name)}.png"
            plot_signal(history, path, rolling_window=context.rolling_window)
            images.append((history, path))
        page = render_html(context, histories, selection, [(h, p.read_bytes()) for h, p in images])
        html_path = out_dir / HTML_NAME
        html_path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--report {out_dir}: cannot write: {exc.strerror or exc}") from None
    return ReportFiles(html=html_path, plots=tuple(path for _, path in images))


def plot_signal(history: SignalHistory, path: Path, *, rolling_window: int) -> None:
    """The signal's rolling mean over its observation index, drifts as solid lines, warnings dashed."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 -- optional extra
    from matplotlib.figure import Figure  # noqa: PLC0415

    # A bare Figure on the Agg canvas: no pyplot, so no global figure registry and no GUI backend.
    figure = Figure(figsize=PLOT_INCHES, dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xs, ys = history.rolling.points()
    axes.plot(
        xs, ys, color=MEAN_COLOR, linewidth=1.2, marker="." if len(xs) == 1 else None,
        label=f"rolling mean ({rolling_window} values)",
    )  # fmt: skip
    marked: tuple[tuple[AlertTally, str, str, Literal["solid", "dashed"]], ...] = (
        (history.drifts, "drift", DRIFT_COLOR, "solid"),
        (history.warnings, "warning", WARNING_COLOR, "dashed"),
    )
    for tally, level, color, style in marked:
        if tally.marks:
            axes.vlines(
                [mark.index for mark in tally.marks], 0, 1, transform=axes.get_xaxis_transform(),
                colors=color, linestyles=style, linewidth=1.0, label=_legend(level, tally),
            )  # fmt: skip
    axes.set_xlim(-0.5, max(history.observations - 0.5, 0.5))
    axes.set_xlabel("observation index (values fed to the detector)")
    axes.set_ylabel("rolling mean")
    # Model ids and signal names come from the data: never let matplotlib read `$...$` in them as math.
    counts = (
        _count(history.observations, "observation"), _count(history.drifts.count, "drift"),
        _count(history.warnings.count, "warning"),
    )  # fmt: skip
    axes.set_title(
        f"{history.name}: {', '.join(counts)}",
        loc="left", parse_math=False,
    )  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    figure.savefig(path, format="png", metadata={"Software": None})


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _legend(level: str, tally: AlertTally) -> str:
    if len(tally.marks) < tally.count:
        return f"{level} ({tally.count:,}, first {len(tally.marks):,} drawn)"
    return f"{level} ({tally.count:,})"


def render_html(
    context: ReportContext,
    histories: Sequence[SignalHistory],
    selection: SignalSelection,
    images: Sequence[tuple[SignalHistory, bytes]],
) -> str:
    """The page: run summary, a table of every signal, and each selected signal's plot (PNG bytes inlined)."""
    esc = html.escape
    title = f"streamdrift replay report: {context.input_name} (config {context.config_version})"
    plotted = {history.name: number for number, (history, _) in enumerate(images, start=1)}
    alerted = sum(1 for h in histories if h.alerts)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{esc(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{context.events:,} events ({context.bad_records:,} bad records skipped), "
        f"{context.alerts:,} alerts on {alerted:,} of {len(histories):,} signals. "
        f"Plots: rolling mean over {context.rolling_window:,} values; drift alerts as solid lines, "
        "warnings dashed.</p>",
    ]
    if selection.truncated:
        parts.append(
            f'<p class="note">{selection.qualified:,} signals qualified for a plot; '
            f"showing the {len(selection.chosen):,} with the most alerts.</p>"
        )
    parts.extend(
        f'<p class="note">--signals {esc(pattern)} matched no signal.</p>'
        for pattern in selection.unmatched_patterns
    )
    parts.append("<h2>Signals</h2>")
    parts.append(_summary_table(histories, plotted))
    parts.append("<h2>Plots</h2>")
    for number, (history, png) in enumerate(images, start=1):
        data = base64.b64encode(png).decode("ascii")
        width, height = PLOT_PIXELS
        parts.append(
            f'<figure id="plot-{number}"><img class="signal-plot" data-signal="{esc(history.name)}" '
            f'alt="{esc(history.name)}" width="{width}" height="{height}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(history.name)}</figcaption></figure>"
        )
    if not images:
        parts.append('<p class="note">No signal selected for a plot.</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _summary_table(histories: Sequence[SignalHistory], plotted: dict[str, int]) -> str:
    esc = html.escape
    rows = [
        "<table><thead><tr>"
        '<th class="name">model</th><th class="name">signal</th><th>observations</th><th>drifts</th>'
        "<th>warnings</th><th>suppressed</th><th>first drift: index (offset)</th>"
        '<th>last drift: index (offset)</th><th class="name">plot</th>'
        "</tr></thead><tbody>"
    ]
    for history in histories:
        number = plotted.get(history.name)
        link = f'<a href="#plot-{number}">plot</a>' if number is not None else ""
        row_class = ' class="alerted"' if history.alerts else ""
        rows.append(
            f"<tr{row_class}>"
            f'<td class="name">{esc(history.model_id)}</td><td class="name">{esc(history.signal)}</td>'
            f"<td>{history.observations:,}</td><td>{history.drifts.count:,}</td>"
            f"<td>{history.warnings.count:,}</td><td>{history.suppressed:,}</td>"
            f"<td>{_mark(history.drifts.first)}</td><td>{_mark(history.drifts.last)}</td>"
            f'<td class="name">{link}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _mark(mark: AlertMark | None) -> str:
    return "" if mark is None else f"{mark.index:,} ({mark.offset:,})"


def _file_slug(name: str) -> str:
    """A file name part from a model id and signal, which come from the data: no separators, bounded."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80].strip("._") or "signal"
