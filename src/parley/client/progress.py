"""Progress of a transfer as people read it: percentage, bytes, rate and time left; and how
often to say so (a terminal redraws a bar freely; a pipe gets a line every few seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from parley.client.transfer import Progress
from parley.protocol.files import human_size

# A pipe gets a progress line at most this often (plus the first and the last).
LINE_INTERVAL_SECONDS = 2.0
BAR_CELLS = 20


class Meter:
    """Turns a stream of Progress reports into rate and time left."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: float | None = None
        self._first_done = 0
        self._last_line = float("-inf")

    def rate(self, progress: Progress) -> float:
        """Bytes per second since the first report (what was resumed does not count)."""
        now = self._clock()
        if self._started is None:
            self._started, self._first_done = now, progress.done
        elapsed = now - self._started
        return (progress.done - self._first_done) / elapsed if elapsed > 0 else 0.0

    def due(self, progress: Progress) -> bool:
        """Time for a line in a pipe: the first report, the last, or every few seconds."""
        now = self._clock()
        if progress.done >= progress.total or now - self._last_line >= LINE_INTERVAL_SECONDS:
            self._last_line = now
            return True
        return False


def describe(progress: Progress, rate: float, bar: bool = False) -> str:
    """``↑ report.pdf [#####     ] 45% 1.1 MB of 2.4 MB, 3.2 MB/s, 1s left``."""
    share = progress.done / progress.total if progress.total else 1.0
    arrow = "↑" if progress.upload else "↓"
    cells = round(share * BAR_CELLS)
    drawn = f" [{'#' * cells}{' ' * (BAR_CELLS - cells)}]" if bar else ""
    left = ""
    if rate > 0 and progress.done < progress.total:
        left = f", {_duration((progress.total - progress.done) / rate)} left"
    speed = f", {human_size(int(rate))}/s" if rate > 0 else ""
    return (
        f"{arrow} {progress.name}{drawn} {share:.0%} {human_size(progress.done)} of "
        f"{human_size(progress.total)}{speed}{left}"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.999)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02}m"
