"""The one-time tokens that open file connections: what each allows, and for how long.

Every token lives the same time, so tokens expire in the order they were issued: one ordered
mapping is both the index (token -> ticket) and the expiry queue (oldest first). Issuing,
redeeming and expiring are each O(1) (expiry amortised: each token is dropped once), however
many tokens are outstanding.
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


class TicketBook:
    """Outstanding tokens, each good for one redemption within ``lifetime_seconds``.

    Not thread-safe, on purpose: it belongs to the chat loop, and the file connections reach
    it through that loop (see :mod:`parley.server.transfer`).
    """

    def __init__(self, lifetime_seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._tickets: collections.OrderedDict[str, Ticket] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._tickets)

    def issue(self, *, upload: bool, file_id: str) -> str:
        """A new token for one upload or download of ``file_id``. O(1) amortised."""
        now = self._clock.monotonic()
        self._expire(now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        self._tickets[token] = Ticket(upload, file_id, now + self._lifetime)
        return token

    def redeem(self, token: str) -> Ticket | None:
        """The ticket of ``token``, once; None when it is unknown, used or expired. O(1)."""
        now = self._clock.monotonic()
        self._expire(now)
        ticket = self._tickets.pop(token, None)
        if ticket is None or ticket.expires <= now:
            return None
        return ticket

    def _expire(self, now: float) -> None:
        tickets = self._tickets
        while tickets:
            oldest = next(iter(tickets.values()))
            if oldest.expires > now:
                return
            tickets.popitem(last=False)
