"""Which private messages count as read because they were shown to an online account, and
storing those read markers off the commit path.

A private message shown live to an account is not delivered again at its next login. While a
login is still being sent what it missed, the markers of live messages it gets meanwhile are
held back, so that nothing is marked read before what came earlier has been sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from parley.server.health import StorageHealth
from parley.server.rooms import Peer
from parley.server.tasks import TaskSet
from parley.storage import Storage, StorageUnavailable

# (account key, conversation, seq): the account has seen the conversation up to seq.
Mark = tuple[str, str, int]


class ReadMarkers:
    """``user_of`` gives who is online here under a principal id."""

    def __init__(
        self,
        storage: Storage,
        tasks: TaskSet,
        health: StorageHealth,
        user_of: Callable[[str], Peer | None],
    ) -> None:
        self._storage = storage
        self._tasks = tasks
        self._health = health
        self._user_of = user_of
        # Logins still being sent what they missed -> the markers held back meanwhile.
        self._catching_up: dict[Peer, list[Mark]] = {}

    def shown(
        self, participants: tuple[str, ...], conversation: str, seq: int, read: list[Mark]
    ) -> None:
        """A private message was just published: add to ``read`` the marker of each online
        account in it (or hold it back for one still catching up).
        """
        for principal in participants:
            peer = self._user_of(principal)
            if peer is not None and peer.account:
                mark = (peer.account, conversation, seq)
                held = self._catching_up.get(peer)
                (held if held is not None else read).append(mark)

    def mark(self, read: list[Mark]) -> None:
        """Store ``read`` in the background; markers only move forward, so of one account's
        marks in one conversation only the highest is written.
        """
        if read:
            highest: dict[tuple[str, str], int] = {}
            for account, conversation, seq in read:
                key = (account, conversation)
                highest[key] = max(seq, highest.get(key, 0))
            self.spawn(self.store([(a, c, seq) for (a, c), seq in highest.items()]))

    async def store(self, read: list[Mark]) -> None:
        for account, conversation, seq in read:
            await self._storage.mark_read(account, conversation, seq)

    def hold(self, peer: Peer, read: list[Mark]) -> None:
        """``peer`` is catching up: its live markers go after ``read`` until :meth:`release`."""
        self._catching_up[peer] = read

    def release(self, peer: Peer) -> list[Mark] | None:
        """``peer`` has caught up (or is gone): the markers held for it, None if none were."""
        return self._catching_up.pop(peer, None)

    def spawn(self, work: Awaitable[None]) -> None:
        """Run storage work in the background: a failure counts in the storage health."""

        async def run() -> None:
            try:
                await work
            except StorageUnavailable as exc:
                self._health.failed(exc)

        self._tasks.spawn(run(), name="parley-read-markers")
