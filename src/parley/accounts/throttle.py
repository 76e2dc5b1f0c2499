"""Login throttling and registration limits: pure bookkeeping, the time passed in.

Kept in memory: a restart forgets failures, which costs a guesser nothing it did not already
have (five free tries) and keeps every login free of storage writes.
"""

from __future__ import annotations

import collections
import dataclasses

FREE_FAILURES = 5
BASE_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 900.0
# Entries kept at most; the oldest go first. Bounds memory against a spray of names.
MAX_ENTRIES = 100_000


@dataclasses.dataclass(slots=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """After FREE_FAILURES failures for an account or from an address, each further attempt
    waits BASE_DELAY_SECONDS, doubling with every failure, up to MAX_DELAY_SECONDS.
    """

    def __init__(
        self,
        free_failures: int = FREE_FAILURES,
        base_delay: float = BASE_DELAY_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._free = free_failures
        self._base = base_delay
        self._max = max_delay
        self._max_entries = max_entries
        self._failures: collections.OrderedDict[str, _Failures] = collections.OrderedDict()

    def retry_after(self, account_key: str, address: str, now: float) -> float:
        """Seconds to wait before the next attempt may be checked; 0.0 when it may be now."""
        return max(self._wait(f"a:{account_key}", now), self._wait(f"h:{address}", now))

    def failed(self, account_key: str, address: str, now: float) -> None:
        for key in (f"a:{account_key}", f"h:{address}"):
            entry = self._failures.pop(key, None)
            if entry is None or now - entry.last > self._max:
                entry = _Failures(0, now)
            entry.count += 1
            entry.last = now
            self._failures[key] = entry
        while len(self._failures) > self._max_entries:
            self._failures.popitem(last=False)

    def succeeded(self, account_key: str, address: str) -> None:
        self._failures.pop(f"a:{account_key}", None)
        self._failures.pop(f"h:{address}", None)

    def _wait(self, key: str, now: float) -> float:
        entry = self._failures.get(key)
        if entry is None or entry.count < self._free:
            return 0.0
        if now - entry.last > self._max:
            del self._failures[key]
            return 0.0
        delay = min(self._max, self._base * 2.0 ** (entry.count - self._free))
        return max(0.0, entry.last + delay - now)


class RegistrationLimiter:
    """At most ``limit`` registrations per address per ``window_seconds``."""

    def __init__(
        self, limit: int = 3, window_seconds: float = 3600.0, max_entries: int = MAX_ENTRIES
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._max_entries = max_entries
        self._recent: collections.OrderedDict[str, list[float]] = collections.OrderedDict()

    def allow(self, address: str, now: float) -> bool:
        """Count a registration from ``address`` and say whether it may go ahead."""
        times = [t for t in self._recent.pop(address, []) if now - t < self._window]
        allowed = len(times) < self._limit
        if allowed:
            times.append(now)
        self._recent[address] = times
        while len(self._recent) > self._max_entries:
            self._recent.popitem(last=False)
        return allowed
