"""Whether storage is working, told to the log once per change of state, never once per
failure: a database that is down for a minute writes two lines, not a thousand.
"""

from __future__ import annotations

import logging

from parley.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("parley.server")


class StorageHealth:
    """Counts storage failures while storage is degraded; logs the first and the recovery."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._since: float | None = None
        self._failures = 0
        self._refused = 0

    @property
    def degraded(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, *, messages: int = 0) -> None:
        """A storage call failed; ``messages`` senders were answered ``unavailable``."""
        if self._since is None:
            self._since = self._clock.monotonic()
            log.warning("Storage degraded: %s", exc)
        self._failures += 1
        self._refused += messages

    def succeeded(self) -> None:
        """A storage call worked: if storage was degraded, it has recovered."""
        if self._since is None:
            return
        log.warning(
            "Storage recovered after %.1f s: %d operations failed, %d messages refused",
            self._clock.monotonic() - self._since,
            self._failures,
            self._refused,
        )
        self._since = None
        self._failures = self._refused = 0
