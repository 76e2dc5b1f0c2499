"""The one-time tokens that open file connections: what each allows, and for how long.

The tokens live in storage, so that a token given on one node opens a file connection on any
node sharing the database (behind a load balancer the file connection may land elsewhere).
Storage keeps only each token's SHA-256: a copy of the database opens nothing. Issuing is one
write (the holder's cap checked in it, on an index), redeeming one write by the primary key
(deleted as it is read, so exactly one node redeems it), expiring one indexed range delete run
by the file purge: each O(1) in the number of tokens outstanding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets

from parley.clock import SYSTEM_CLOCK, Clock
from parley.storage import FileTicket, Storage

# Random bits in a token: never guessed, even with millions outstanding.
TOKEN_BYTES = 24


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """What a token on a file connection allows: one upload or one download of a file."""

    upload: bool
    file_id: str
    expires_ms: int
    holder: str = ""  # the principal it was issued to


def token_hash(token: str) -> str:
    """What storage keeps of ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


class TicketBook:
    """Outstanding tokens, each good for one redemption within ``lifetime_seconds``. Every
    method raises StorageUnavailable when storage does.
    """

    def __init__(self, storage: Storage, lifetime_seconds: float, clock: Clock = SYSTEM_CLOCK):
        self._storage = storage
        self._lifetime_ms = int(lifetime_seconds * 1000)
        self._clock = clock

    async def held(self, holder: str) -> int:
        """How many unused, unexpired tokens ``holder`` has. One indexed read."""
        return await self._storage.tickets_held(holder, self._clock.now_ms())

    async def issue(self, *, upload: bool, file_id: str, holder: str, most_held: int) -> str | None:
        """A new token for one upload or download of ``file_id``, held by ``holder``; None when
        ``holder`` holds ``most_held`` unused ones already. One write.
        """
        now = self._clock.now_ms()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        ticket = FileTicket(upload, file_id, holder, now + self._lifetime_ms)
        if not await self._storage.add_ticket(token_hash(token), ticket, most_held, now):
            return None
        return token

    async def redeem(self, token: str) -> Ticket | None:
        """The ticket of ``token``, once, on whichever node; None when it is unknown, used or
        expired. One write.
        """
        stored = await self._storage.take_ticket(token_hash(token), self._clock.now_ms())
        if stored is None:
            return None
        return Ticket(stored.upload, stored.file_id, stored.expires_ms, stored.holder)

    async def forget_expired(self) -> int:
        """Delete the expired tokens; how many."""
        return await self._storage.forget_tickets(self._clock.now_ms())
