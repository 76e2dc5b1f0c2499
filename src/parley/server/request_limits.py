"""Request rate limits that outlive a connection: per address group, per principal, for the
guests of an address group together, and the cooling-off after a connection is cut for flooding.

Flood control (parley.server.flood) holds one connection to a rate; a client cut off for
flooding could connect again at once with a fresh burst, and many connections from one address
(or one account) could each use a burst of their own. These limits are kept by key instead:

* every request is charged to its connection's address group (an IPv4 address, an IPv6 /64)
  and, once logged in, to its principal (an account id or a guest id). Each key has a token
  bucket of cost units: a burst, then a steady rate. A request is carried out only when every
  bucket it is charged to holds its cost; a refused one is not charged, so a user sharing a NAT
  with a flooder gets through again as soon as the flooder's connections are cut.
* a guest id is new at every login, so a guest's own bucket would start full again each time
  the same host logs in as another guest. A guest's requests are therefore also charged to one
  bucket shared by all the guests of its address group (tighter than the address's own, looser
  than one principal's): logging in again buys nothing.
* a connection cut for flooding penalizes whom it was: an account may not log in again for
  ``penalty_seconds``, from anywhere; its address group gets a strike. An address group with
  ``penalty_strikes`` strikes within ``penalty_seconds`` is refused new connections for
  ``penalty_seconds``. One flooder behind a NAT thus does not lock out its neighbours, while a
  host that floods as guest after guest (guests cannot be held by name) soon is held by address.

Requests that make the server read or encode much (``rooms``, ``who``, ``list``, ``history``,
``files``) cost more than the rest (:func:`request_cost`).

:class:`RequestLimits` is the seam: the server asks it, never a dict of its own. The in-process
:class:`LocalRequestLimits` serves one node; several nodes can share one implementation of the
same interface (kept in Redis, say) without the callers changing. It is asked on the event loop
for every request, so its answers are synchronous: a shared implementation would answer from a
local copy and settle with the others in the background. Time comes from a parley.clock.Clock.
"""

from __future__ import annotations

import collections
import enum
from typing import Protocol

from parley.clock import SYSTEM_CLOCK, Clock
from parley.protocol.messages import History, ListFiles, ListRooms, ListUsers, Request, Who

# Requests whose reply is a listing: they cost ``expensive_cost`` each, the rest 1.
EXPENSIVE_REQUESTS: frozenset[type[Request]] = frozenset(
    {ListRooms, Who, ListUsers, History, ListFiles}
)
# Keys kept at most; past it the least recently used go first (a bucket forgotten is full
# again, so this bounds memory, not fairness, and is far above the keys active at once).
MAX_KEYS = 100_000


class Refusal(enum.Enum):
    """Which budget refused a request."""

    ADDRESS = "address"
    GUESTS = "guests"
    PRINCIPAL = "principal"


def request_cost(request: Request, expensive_cost: int) -> int:
    """What ``request`` costs in every bucket it is charged to."""
    return expensive_cost if type(request) in EXPENSIVE_REQUESTS else 1


class RequestLimits(Protocol):
    """Per address group, per principal and per guests-of-an-address budgets, and flood
    penalties.
    """

    def charge(self, group: str, principal: str, cost: int, *, guest: bool) -> Refusal | None:
        """Charge a request of ``cost`` to ``group`` and to ``principal`` ("" before login),
        and, for a ``guest``, to the guests of ``group``. None when it may be carried out (all
        charged), else which budget refused it (none charged).
        """
        ...

    def penalize(self, group: str, account: str) -> None:
        """A connection of ``group``, logged in as ``account`` ("" for a guest or nobody), was
        cut for flooding: hold the account back, and count a strike against the group.
        """
        ...

    def penalty_left(self, group: str) -> float:
        """Seconds until ``group`` may connect again (0.0: it may now)."""
        ...

    def account_penalty_left(self, account: str) -> float:
        """Seconds until ``account`` may log in again (0.0: it may now)."""
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


class _Until:
    """When something ends, by key, kept in order of ending (every entry lasts ``seconds``
    from when it was set, so setting one moves it to the end). O(1) amortised per call.
    """

    __slots__ = ("_ends", "_max_keys", "_seconds")

    def __init__(self, seconds: float, max_keys: int) -> None:
        self._seconds = seconds
        self._max_keys = max_keys
        # key -> (when it ends, a count kept with it)
        self._ends: collections.OrderedDict[str, tuple[float, int]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._ends)

    def set(self, key: str, now: float, count: int = 0) -> None:
        ends = self._ends
        ends.pop(key, None)
        ends[key] = (now + self._seconds, count)
        self._expire(now)
        while len(ends) > self._max_keys:
            ends.popitem(last=False)

    def get(self, key: str, now: float) -> tuple[float, int]:
        """Seconds left for ``key`` (0.0 when it ended) and its count (0 once it ended)."""
        entry = self._ends.get(key)
        if entry is None:
            return 0.0, 0
        until, count = entry
        if until <= now:
            del self._ends[key]
            return 0.0, 0
        return until - now, count

    def _expire(self, now: float) -> None:
        ends = self._ends
        while ends:
            key, (until, _) = next(iter(ends.items()))
            if until > now:
                return
            del ends[key]


class LocalRequestLimits:
    """:class:`RequestLimits` in this process's memory (one node). O(1) per call."""

    def __init__(
        self,
        *,
        address_burst: int,
        address_rate_per_second: float,
        principal_burst: int,
        principal_rate_per_second: float,
        guests_burst: int,
        guests_rate_per_second: float,
        penalty_seconds: float,
        penalty_strikes: int,
        clock: Clock = SYSTEM_CLOCK,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._clock = clock
        self._groups = _Buckets(address_burst, address_rate_per_second, max_keys)
        self._principals = _Buckets(principal_burst, principal_rate_per_second, max_keys)
        self._guests = _Buckets(guests_burst, guests_rate_per_second, max_keys)
        self._penalty_seconds = penalty_seconds
        self._penalty_strikes = penalty_strikes
        self._group_penalties = _Until(penalty_seconds, max_keys)
        self._account_penalties = _Until(penalty_seconds, max_keys)
        # group -> strikes within penalty_seconds of the latest
        self._strikes = _Until(penalty_seconds, max_keys)

    def charge(self, group: str, principal: str, cost: int, *, guest: bool) -> Refusal | None:
        now = self._clock.monotonic()
        group_left = self._groups.available(group, now) - cost
        if group_left < 0.0:
            return Refusal.ADDRESS
        guests_left = 0.0
        if guest:
            guests_left = self._guests.available(group, now) - cost
            if guests_left < 0.0:
                return Refusal.GUESTS
        principal_left = 0.0
        if principal:
            principal_left = self._principals.available(principal, now) - cost
            if principal_left < 0.0:
                return Refusal.PRINCIPAL
            self._principals.spend(principal, principal_left, now)
        if guest:
            self._guests.spend(group, guests_left, now)
        self._groups.spend(group, group_left, now)
        return None

    def penalize(self, group: str, account: str) -> None:
        if self._penalty_seconds <= 0.0:
            return
        now = self._clock.monotonic()
        if account:
            self._account_penalties.set(account, now)
        _, strikes = self._strikes.get(group, now)
        strikes += 1
        self._strikes.set(group, now, strikes)
        if strikes >= self._penalty_strikes:
            self._group_penalties.set(group, now)

    def penalty_left(self, group: str) -> float:
        return self._group_penalties.get(group, self._clock.monotonic())[0]

    def account_penalty_left(self, account: str) -> float:
        return self._account_penalties.get(account, self._clock.monotonic())[0]
