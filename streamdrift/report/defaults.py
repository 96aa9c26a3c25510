"""Report settings' defaults, apart so that the command line can name them without loading the core."""

from __future__ import annotations

DEFAULT_ROLLING_WINDOW = 200  # values per rolling mean in a plot
DEFAULT_MAX_PLOTS = 50  # plots per report; the table lists every signal
