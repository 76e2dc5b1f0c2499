"""Read markers: how far the user has seen each conversation, told to the server a few seconds
at a time, so that /unread and the next login count only what was not shown.
"""

from __future__ import annotations

import asyncio
import contextlib

from parley.client.conversations import conversation_of
from parley.client.core import ChatClient, ConnectionLost
from parley.protocol.errors import RequestRefused
from parley.protocol.messages import Message

# Often enough for /unread, rarely enough to cost nothing.
READ_MARK_INTERVAL_SECONDS = 2.0


class ReadMarkers:
    """For an account, tells the server how far the user has seen each conversation, a few
    seconds at a time, so that /unread and the next login count only what was not shown.
    """

    def __init__(self, client: ChatClient) -> None:
        self._client = client
        # Conversation key -> (name to mark it by, highest seq shown).
        self._due: dict[str, tuple[str, int]] = {}

    def shown(self, message: Message) -> None:
        if not self._client.is_account:
            return
        key, target = conversation_of(message, self._client.nick)
        self.seen(key, target, message.seq)

    def seen(self, key: str, target: str, seq: int) -> None:
        """Conversation ``key`` (named ``target``) was seen up to ``seq``."""
        if not self._client.is_account:
            return
        due = self._due.get(key)
        if due is None or seq > due[1]:
            self._due[key] = (target, seq)

    async def flush(self) -> None:
        """Send what is due. Raises ConnectionLost."""
        due, self._due = self._due, {}
        for target, seq in due.values():
            with contextlib.suppress(RequestRefused):  # left the room meanwhile
                await self._client.mark_read(target, seq)

    async def run(self) -> None:
        with contextlib.suppress(ConnectionLost):
            while True:
                await asyncio.sleep(READ_MARK_INTERVAL_SECONDS)
                await self.flush()
