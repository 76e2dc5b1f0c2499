"""The one-time tokens that open file connections: what each allows, and for how long.

The tokens live in storage, so that a token given on one node opens a file connection on any
node sharing the database (behind a load balancer the file connection may land elsewhere).
Storage keeps only each token's SHA-256: a copy of the database opens nothing. Issuing is one
write (the holder's cap checked in it, on an index), redeeming one write by the primary key
(deleted as it is read, so exactly one node redeems it), expiring one indexed range delete run
by the file purge: each O(1) in the number of tokens outstanding.

A holder found at its cap is remembered on this node for FULL_MEMO_SECONDS: its further
requests are refused from memory, before any task or storage read, so a hoarder asking again
and again costs next to nothing. A token of its redeemed on this node ends that at once; one
redeemed on another node is seen here within FULL_MEMO_SECONDS.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets

from parley.accounts.throttle import KnownWaits
from parley.clock import SYSTEM_CLOCK, Clock
from parley.storage import FileTicket, Storage

# Random bits in a token: never guessed, even with millions outstanding.
TOKEN_BYTES = 24
# How long a holder found at its cap is refused from memory (see the module's docstring).
FULL_MEMO_SECONDS = 5.0


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
        # Holders found at their cap, until when (bounded in entries).
        self._full = KnownWaits()

    def known_full(self, holder: str) -> bool:
        """Whether ``holder`` was found at its cap on this node in the last FULL_MEMO_SECONDS
        (and none of its tokens was redeemed here since). O(1), no storage.
        """
        return self._full.wait((holder,), self._clock.monotonic()) > 0

    async def held(self, holder: str, most_held: int) -> int:
        """How many unused, unexpired tokens ``holder`` has (remembered as full when that is
        ``most_held`` or more). One indexed read.
        """
        count = await self._storage.tickets_held(holder, self._clock.now_ms())
        if count >= most_held:
            self._note_full(holder)
        return count

    def _note_full(self, holder: str) -> None:
        self._full.learn(holder, self._clock.monotonic() + FULL_MEMO_SECONDS)

    async def issue(self, *, upload: bool, file_id: str, holder: str, most_held: int) -> str | None:
        """A new token for one upload or download of ``file_id``, held by ``holder``; None when
        ``holder`` holds ``most_held`` unused ones already. One write.
        """
        now = self._clock.now_ms()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        ticket = FileTicket(upload, file_id, holder, now + self._lifetime_ms)
        if not await self._storage.add_ticket(token_hash(token), ticket, most_held, now):
            self._note_full(holder)
            return None
        return token

    async def peek(self, token: str) -> Ticket | None:
        """The ticket of ``token`` without using it up; None when unknown, used or expired.
        One read by the primary key.
        """
        stored = await self._storage.ticket(token_hash(token), self._clock.now_ms())
        if stored is None:
            return None
        return Ticket(stored.upload, stored.file_id, stored.expires_ms, stored.holder)

    async def redeem(self, token: str) -> Ticket | None:
        """The ticket of ``token``, once, on whichever node; None when it is unknown, used or
        expired. One write.
        """
        stored = await self._storage.take_ticket(token_hash(token), self._clock.now_ms())
        if stored is None:
            return None
        self._full.forget(stored.holder)
        return Ticket(stored.upload, stored.file_id, stored.expires_ms, stored.holder)

    async def forget_expired(self) -> int:
        """Delete the expired tokens; how many."""
        return await self._storage.forget_tickets(self._clock.now_ms())
