"""The one source of time for the server, its storage and the admin command.

Everything that stamps or compares times takes a :class:`Clock` (``SYSTEM_CLOCK`` unless a
test gives it another), so a test can move time on without patching module globals.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time: milliseconds since the Unix epoch (what is stored)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never goes back (for intervals and windows)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()
