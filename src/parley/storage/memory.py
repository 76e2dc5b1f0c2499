"""In-process storage: sequence numbers and retry detection without a database.

Nothing survives a restart; a bounded window of recent message ids per conversation is kept for
retry detection, so memory stays flat however long the server runs.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Sequence

from parley.storage import NewMessage, StoredMessage

# Retries come within seconds of the original; 10,000 ids per conversation covers that at any
# realistic rate while bounding memory to about a megabyte per busy conversation.
RETRY_WINDOW_MESSAGES = 10_000


class _Conversation:
    __slots__ = ("last_seq", "recent")

    def __init__(self) -> None:
        self.last_seq = 0
        self.recent: OrderedDict[tuple[str, str], StoredMessage] = OrderedDict()


class MemoryStorage:
    """Storage kept in this process's memory. ``append`` costs O(len(batch))."""

    def __init__(self, retry_window_messages: int = RETRY_WINDOW_MESSAGES) -> None:
        self._conversations: dict[str, _Conversation] = {}
        self._window = retry_window_messages

    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        now_ms = time.time_ns() // 1_000_000
        stored: list[StoredMessage] = []
        for message in batch:
            conversation = self._conversations.get(message.conversation)
            if conversation is None:
                conversation = self._conversations[message.conversation] = _Conversation()
            identity = (message.sender_key, message.msg_id)
            earlier = conversation.recent.get(identity)
            if earlier is not None:
                stored.append(dataclasses.replace(earlier, duplicate=True))
                continue
            conversation.last_seq += 1
            record = StoredMessage(
                conversation=message.conversation,
                seq=conversation.last_seq,
                ts=now_ms,
                sender=message.sender,
                to=message.to,
                text=message.text,
                msg_id=message.msg_id,
            )
            conversation.recent[identity] = record
            if len(conversation.recent) > self._window:
                conversation.recent.popitem(last=False)
            stored.append(record)
        return stored

    async def close(self) -> None:
        self._conversations.clear()
