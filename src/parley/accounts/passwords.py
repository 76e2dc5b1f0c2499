"""Password hashing with argon2id, off the event loop.

Hashing costs tens of milliseconds of CPU and memory by design; it runs in worker threads, at
most a few at once, so a storm of logins queues instead of stalling every chat or exhausting
memory.
"""

from __future__ import annotations

import asyncio

import argon2

from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError

# Two hashes at once: a third core would only take time from the event loop on small machines.
_CONCURRENT_HASHES = 2


def check_password(password: str) -> None:
    """Raise PeerError(INVALID_PASSWORD) unless ``password`` is 8-256 characters and not blank."""
    if (
        not limits.MIN_PASSWORD_CHARS <= len(password) <= limits.MAX_PASSWORD_CHARS
        or not password.strip()
    ):
        raise PeerError(ErrorCode.INVALID_PASSWORD)


class PasswordHasher:
    def __init__(self, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._slots = asyncio.Semaphore(_CONCURRENT_HASHES)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        """Whether ``password`` matches; and a new hash when the stored one was made with other
        parameters (the caller stores it: accounts move to new settings as their users log in).
        """
        async with self._slots:
            ok = await asyncio.to_thread(self._check, stored_hash, password)
        if ok and self._hasher.check_needs_rehash(stored_hash):
            return True, await self.hash(password)
        return ok, None

    async def verify_nothing(self, password: str) -> None:
        """Spend the time of a verify, for a login to an account that does not exist: the
        answer must not come faster than a wrong password's.
        """
        if self._dummy is None:
            self._dummy = await self.hash("no account has this password")
        await self.verify(self._dummy, password)

    def _check(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
