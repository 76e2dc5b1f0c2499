"""How a running server learns that an account changed somewhere else, and acts on it at once.

``parley admin reset``, ``delete`` and ``role`` run in another process (later, other nodes
change accounts too). Storage records every change to an account's password, role, sessions or
existence (``account_changes``); the watch reads what is new every revocation_poll_seconds and
has the hub re-check the login of each changed account: cut it (a ``closing`` with code
``revoked``) when its account or session is gone, or give it its new role.

Why a short poll and not a check on every request: one indexed read per interval costs the same
with ten users or fifty thousand and adds nothing to any request's latency, and it reaches a
connection that is only listening. The price is that a revoked login may go on for up to one
interval (a second by default); the owner logging in meanwhile is not kept out (Hub.login
checks the holder of the name itself).
"""

from __future__ import annotations

import asyncio
import logging

from parley.server.hub import Hub
from parley.storage import Storage, StorageUnavailable

log = logging.getLogger("parley.server")

# Changes read per poll; more wait for the next round.
_BATCH = 1000


class RevocationWatch:
    def __init__(self, storage: Storage, hub: Hub, interval_seconds: float) -> None:
        self._storage = storage
        self._hub = hub
        self._interval = interval_seconds
        self._seen = 0

    async def start(self) -> None:
        """Begin after the changes recorded so far (no login is older than them). Raises
        StorageUnavailable.
        """
        self._seen = await self._storage.last_account_change()

    async def run(self) -> None:
        """Poll until cancelled; a storage fault is logged and the next round tries again."""
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll()
            except StorageUnavailable as exc:
                # One line when it starts failing and one when it recovers, not one a poll.
                if not failing:
                    log.warning("Checking for revoked logins failed, retrying: %s", exc)
                failing = True
            else:
                if failing:
                    log.warning("Checking for revoked logins works again")
                failing = False

    async def poll(self) -> int:
        """Re-check the logins of accounts changed since the last poll; how many changes."""
        changes = await self._storage.account_changes(self._seen, _BATCH)
        for seq, account_key in changes:
            await self._hub.recheck(account_key)
            self._seen = seq
        return len(changes)
