"""Login throttling and the limits per hour: pure bookkeeping, the time passed in.

Login attempts are counted in storage (:meth:`parley.storage.Storage.count_attempts`), so the
counts hold across concurrent requests, restarts and, later, several nodes. Every attempt is
counted *before* its password is checked, under three keys:

* the address: FREE_ATTEMPTS free, then each attempt must come BASE_DELAY_SECONDS after the one
  before, doubling with every further attempt up to MAX_DELAY_SECONDS. An attempt made too
  early is refused without a check and counts too, so hammering never gets through. Once a
  node knows a wait (:class:`KnownWaits`) it refuses further attempts until then from memory,
  without counting them: a guesser hammering away costs the server no storage write;
* the account from that address: the same. A stranger guessing elsewhere never locks the owner
  out, because the owner's address has counts of its own;
* the account from anywhere: past GLOBAL_FREE_ATTEMPTS, every check waits GLOBAL_DELAY_SECONDS
  first. A slow-down, never a refusal: it caps how fast many addresses together can guess
  without letting them lock the owner out.

A check that succeeds gives back its own attempt on its keys, and touches no other count: a
guesser who owns an account cannot clear its address's count by logging in to it.

Registrations and rooms created are limited per address (and rooms per user) in any
LIMIT_WINDOW_MS, counted in storage too (:meth:`parley.storage.Storage.take_window_slots`):
every node counts the same events, and a burst of requests through several nodes at once gets
no more than the limit between them.
"""

from __future__ import annotations

import collections

FREE_ATTEMPTS = 5
BASE_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 900.0
# Counts untouched this long start again from zero (and may be deleted).
FORGET_AFTER_SECONDS = MAX_DELAY_SECONDS
GLOBAL_FREE_ATTEMPTS = 50
GLOBAL_DELAY_SECONDS = 1.0
# Known waits are kept in memory: this many keys at most; the oldest go first.
MAX_ENTRIES = 100_000
# Registrations and rooms created are limited per this window (an hour).
LIMIT_WINDOW_MS = 3_600_000


def registration_key(address_group: str) -> str:
    """The window key of registrations from an address (its group: an IPv6 /64)."""
    return f"register:{address_group}"


def room_keys(principal: str, address_group: str) -> tuple[str, str]:
    """The window keys of rooms created by a user, and by every user of its address."""
    return f"room-by:{principal}", f"room-from:{address_group}"


def attempt_keys(account_key: str, address: str) -> tuple[str, str, str]:
    """The storage keys of an attempt on ``account_key`` from ``address``: the address, the
    account from that address, the account from anywhere (in that order).
    """
    return f"address:{address}", f"account:{account_key}@{address}", f"account:{account_key}"


def _delay(count: int) -> float:
    """How long the ``count``-th attempt must come after the one before it."""
    if count <= FREE_ATTEMPTS:
        return 0.0
    # Capped before raising 2 to it: counts can run into the thousands.
    doublings = min(count - FREE_ATTEMPTS - 1, 32)
    return min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2.0**doublings)


def wait_seconds(count: int, previous_ms: int, now_ms: int) -> float:
    """How long an attempt, the ``count``-th, made at ``now_ms`` came too early (0.0: it may be
    checked), when the one before it was made at ``previous_ms``.
    """
    return max(0.0, previous_ms / 1000 + _delay(count) - now_ms / 1000)


def retry_after_seconds(count: int) -> float:
    """After the ``count``-th attempt was refused for coming too early: how long from now until
    the next may be checked. The refused one counted, so the next is timed from it, with the
    delay of the (``count`` + 1)-th: the wait a user is told, which retrying then honours.
    """
    return _delay(count + 1)


def slow_down_seconds(account_count: int) -> float:
    """How long to wait before checking an account that has had ``account_count`` attempts
    from all addresses together.
    """
    return GLOBAL_DELAY_SECONDS if account_count > GLOBAL_FREE_ATTEMPTS else 0.0


class KnownWaits:
    """Waits already learnt from storage, per key, on this node: until one ends, attempts under
    its key are refused without asking storage. The oldest go first past ``max_entries``.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        self._until: collections.OrderedDict[str, float] = collections.OrderedDict()

    def wait(self, keys: tuple[str, ...], now: float) -> float:
        """Seconds until an attempt under every one of ``keys`` may be counted (0.0: now)."""
        longest = 0.0
        for key in keys:
            until = self._until.get(key)
            if until is None:
                continue
            if until <= now:
                del self._until[key]
            else:
                longest = max(longest, until - now)
        return longest

    def learn(self, key: str, until: float) -> None:
        self._until.pop(key, None)
        self._until[key] = until
        while len(self._until) > self._max_entries:
            self._until.popitem(last=False)

    def forget(self, key: str) -> None:
        """The wait under ``key`` is over early (what it waited for has happened)."""
        self._until.pop(key, None)
