"""The one-time tokens that open file connections: what each allows, and for how long.

Every token lives the same time, so tokens expire in the order they were issued: one ordered
mapping is both the index (token -> ticket) and the expiry queue (oldest first). Issuing,
redeeming and expiring are each O(1) (expiry amortised: each token is dropped once), however
many tokens are outstanding. Each token's holder (a principal) is kept with it, and how many
each holds unused, so that a requester can be held to a number of them.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets

from parley.clock import SYSTEM_CLOCK, Clock

# Random bits in a token: never guessed, even with millions outstanding.
TOKEN_BYTES = 24


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """What a token on a file connection allows: one upload or one download of a file."""

    upload: bool
    file_id: str
    expires: float  # on the book's clock
    holder: str = ""  # the principal it was issued to


class TicketBook:
    """Outstanding tokens, each good for one redemption within ``lifetime_seconds``.

    Not thread-safe, on purpose: it belongs to the chat loop, and the file connections reach
    it through that loop (see :mod:`parley.server.transfer`).
    """

    def __init__(self, lifetime_seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._tickets: collections.OrderedDict[str, Ticket] = collections.OrderedDict()
        # Unused, unexpired tokens by holder; holders with none are not kept.
        self._held: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._tickets)

    def held(self, holder: str) -> int:
        """How many unused, unexpired tokens ``holder`` has. O(1) amortised."""
        self._expire(self._clock.monotonic())
        return self._held.get(holder, 0)

    def issue(self, *, upload: bool, file_id: str, holder: str = "") -> str:
        """A new token for one upload or download of ``file_id``, held by ``holder``. O(1)
        amortised.
        """
        now = self._clock.monotonic()
        self._expire(now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._tickets[token] = Ticket(upload, file_id, now + self._lifetime, holder)
        self._held[holder] += 1
        return token

    def peek(self, token: str) -> Ticket | None:
        """The ticket of ``token`` without using it up; None when unknown, used or expired.
        O(1) amortised.
        """
        self._expire(self._clock.monotonic())
        return self._tickets.get(token)

    def redeem(self, token: str) -> Ticket | None:
        """The ticket of ``token``, once; None when it is unknown, used or expired. O(1)."""
        now = self._clock.monotonic()
        self._expire(now)
        ticket = self._tickets.pop(token, None)
        if ticket is None:
            return None
        self._release(ticket.holder)
        return ticket if ticket.expires > now else None

    def _expire(self, now: float) -> None:
        tickets = self._tickets
        while tickets:
            oldest = next(iter(tickets.values()))
            if oldest.expires > now:
                return
            tickets.popitem(last=False)
            self._release(oldest.holder)

    def _release(self, holder: str) -> None:
        left = self._held[holder] - 1
        if left > 0:
            self._held[holder] = left
        else:
            del self._held[holder]
