"""Request rate limits that outlive a connection: per address group, per principal, and the
cooling-off of an address group whose connections were cut for flooding.

Flood control (parley.server.flood) holds one connection to a rate; a client cut off for
flooding could connect again at once with a fresh burst, and many connections from one address
(or one account) could each use a burst of their own. These limits are kept by key instead:

* every request is charged to its connection's address group (an IPv4 address, an IPv6 /64)
  and, once logged in, to its principal (an account id or a guest id). Each key has a token
  bucket of cost units: a burst, then a steady rate. A request is carried out only when both
  buckets hold its cost; a refused one is not charged, so a user sharing a NAT with a flooder
  gets through again as soon as the flooder's connections are cut.
* an address group with a connection cut for flooding is refused new connections for a while.

Requests that make the server read or encode much (``rooms``, ``who``, ``list``, ``history``,
``files``) cost more than the rest (:func:`request_cost`).

:class:`RequestLimits` is the seam: the server asks it, never a dict of its own. The in-process
:class:`LocalRequestLimits` serves one node; several nodes can share one implementation of the
same interface (kept in Redis, say) without the callers changing. It is asked on the event loop
for every request, so its answers are synchronous: a shared implementation would answer from a
local copy and settle with the others in the background.
"""

from __future__ import annotations

import collections
from typing import Protocol

from parley.protocol.messages import History, ListFiles, ListRooms, ListUsers, Request, Who

# Requests whose reply is a listing: they cost ``expensive_cost`` each, the rest 1.
EXPENSIVE_REQUESTS: frozenset[type[Request]] = frozenset(
    {ListRooms, Who, ListUsers, History, ListFiles}
)
# Keys kept at most; past it the least recently used go first (a bucket forgotten is full
# again, so this bounds memory, not fairness, and is far above the keys active at once).
MAX_KEYS = 100_000


def request_cost(request: Request, expensive_cost: int) -> int:
    """What ``request`` costs in every bucket it is charged to."""
    return expensive_cost if type(request) in EXPENSIVE_REQUESTS else 1


class RequestLimits(Protocol):
    """Per address group and per principal request budgets, and flood penalties."""

    def charge(self, group: str, principal: str, cost: int, now: float) -> str | None:
        """Charge a request of ``cost`` to ``group`` and to ``principal`` ("" before login).
        None when it may be carried out (both charged), else which limit refused it:
        "address" or "principal" (neither charged).
        """
        ...

    def penalize(self, group: str, now: float) -> None:
        """A connection of ``group`` was cut for flooding: refuse its new ones for a while."""
        ...

    def penalty_left(self, group: str, now: float) -> float:
        """Seconds until ``group`` may connect again (0.0: it may now)."""
        ...


class _Buckets:
    """Token buckets of cost units by key, least recently used first. No debt: a request
    that does not fit is refused and costs nothing.
    """

    __slots__ = ("_burst", "_max_keys", "_rate", "_state")

    def __init__(self, burst: int, rate_per_second: float, max_keys: int) -> None:
        self._burst = float(burst)
        self._rate = rate_per_second
        self._max_keys = max_keys
        # key -> (tokens, when they were counted)
        self._state: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def available(self, key: str, now: float) -> float:
        state = self._state.get(key)
        if state is None:
            return self._burst
        tokens, stamp = state
        return min(self._burst, tokens + (now - stamp) * self._rate)

    def spend(self, key: str, tokens_left: float, now: float) -> None:
        state = self._state
        state[key] = (tokens_left, now)
        state.move_to_end(key)
        if len(state) > self._max_keys:
            state.popitem(last=False)


class LocalRequestLimits:
    """:class:`RequestLimits` in this process's memory (one node). O(1) per call."""

    def __init__(
        self,
        *,
        address_burst: int,
        address_rate_per_second: float,
        principal_burst: int,
        principal_rate_per_second: float,
        penalty_seconds: float,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._groups = _Buckets(address_burst, address_rate_per_second, max_keys)
        self._principals = _Buckets(principal_burst, principal_rate_per_second, max_keys)
        self._penalty_seconds = penalty_seconds
        self._max_keys = max_keys
        # group -> when its penalty ends; in order of ending, as every penalty lasts the same.
        self._penalties: collections.OrderedDict[str, float] = collections.OrderedDict()

    def charge(self, group: str, principal: str, cost: int, now: float) -> str | None:
        group_left = self._groups.available(group, now) - cost
        if group_left < 0.0:
            return "address"
        if principal:
            principal_left = self._principals.available(principal, now) - cost
            if principal_left < 0.0:
                return "principal"
            self._principals.spend(principal, principal_left, now)
        self._groups.spend(group, group_left, now)
        return None

    def penalize(self, group: str, now: float) -> None:
        if self._penalty_seconds <= 0.0:
            return
        penalties = self._penalties
        penalties.pop(group, None)
        penalties[group] = now + self._penalty_seconds
        self._expire(now)
        while len(penalties) > self._max_keys:
            penalties.popitem(last=False)

    def penalty_left(self, group: str, now: float) -> float:
        until = self._penalties.get(group)
        if until is None:
            return 0.0
        if until <= now:
            del self._penalties[group]
            return 0.0
        return until - now

    def _expire(self, now: float) -> None:
        penalties = self._penalties
        while penalties:
            group, until = next(iter(penalties.items()))
            if until > now:
                return
            del penalties[group]
