"""A one-line progress report for long replays: records read, records per second and, when the input's size
is known, how much of it has been read. Redrawn in place with a carriage return; no dependency."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

Item = TypeVar("Item")


class ProgressLine:
    """Counts the raw lines of an input as they are read and redraws at most every `interval_s`.

    >>> import io
    >>> clock = iter([0.0, 0.0, 1.0, 2.0, 2.0, 2.0]).__next__
    >>> out = io.StringIO()
    >>> progress = ProgressLine(out, total_bytes=7, interval_s=0.5, clock=clock)
    >>> list(progress.track([b"ab\\n", b"cde\\n"]))
    [b'ab\\n', b'cde\\n']
    >>> progress.finish()
    >>> for line in out.getvalue().split("\\r")[1:]:
    ...     print(repr(line))
    'replay: 1 events, 1 events/s, 42%'
    'replay: 2 events, 1 events/s, 100%'
    'replay: 2 events, 1 events/s, 100%\\n'
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        total_bytes: int | None = None,
        label: str = "replay",
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total_bytes = total_bytes if total_bytes else None  # 0 or unknown: no percentage
        self.label = label
        self.interval_s = interval_s
        self.records = 0
        self.bytes_read = 0
        self._clock = clock
        self._started = clock()
        self._next_draw = self._started
        self._width = 0

    def track(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        """Yield `lines` unchanged, counting them and their bytes."""
        return self.track_items(lines, len)

    def track_items(self, items: Iterable[Item], size: Callable[[Item], int]) -> Iterator[Item]:
        """Yield `items` unchanged, counting them and their `size` in bytes."""
        clock = self._clock
        for item in items:
            self.records += 1
            self.bytes_read += size(item)
            yield item
            if clock() >= self._next_draw:
                self._draw()

    def finish(self) -> None:
        """Draw the final figures and end the line, so what follows starts on a line of its own."""
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        now = self._clock()
        self._next_draw = now + self.interval_s
        elapsed = now - self._started
        rate = self.records / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {self.records:,} events, {rate:,.0f} events/s"
        if self.total_bytes is not None:
            text += f", {min(100 * self.bytes_read // self.total_bytes, 100)}%"
        # Pad over the previous line: a shorter redraw must not leave its tail on screen.
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)
