"""The record of chat messages, behind the :class:`Storage` seam.

The hub never talks to a database directly: it hands batches of new messages to a Storage, which
assigns each conversation's sequence numbers, and stores each message once per client message id.
One module per implementation (memory now; SQLite and PostgreSQL share the same contract).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class NewMessage:
    """A message the hub wants stored.

    ``conversation`` is a room name, or a private conversation's id (see
    parley.server.hub.private_conversation); ``to`` is what recipients see as the target.
    ``(conversation, sender_key, msg_id)`` identifies a message across retries.
    """

    conversation: str
    sender: str
    sender_key: str
    to: str
    text: str
    msg_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as recorded: ``seq`` is 1, 2, 3... within its conversation, without gaps;
    ``ts`` is milliseconds since the Unix epoch; ``duplicate`` says the same message had already
    been stored, in which case the other fields are the original's.
    """

    conversation: str
    seq: int
    ts: int
    sender: str
    to: str
    text: str
    msg_id: str
    duplicate: bool = False


class Storage(Protocol):
    async def append(self, batch: Sequence[NewMessage]) -> list[StoredMessage]:
        """Store ``batch`` atomically, in order; return one StoredMessage per item, in order.

        Returns only once the batch is as durable as the implementation promises, so the caller
        may acknowledge it. A retry of an already stored message is returned with
        ``duplicate=True`` and stored nothing. One round trip to the backend per call.
        """
        ...

    async def close(self) -> None:
        """Flush and release the backend. The storage is unusable afterwards."""
        ...
