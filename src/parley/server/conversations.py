"""Conversation ids, and how a stored message reads on the wire.

A room's conversation is its key; a private conversation is ``dm:`` and its two principal ids.
"""

from __future__ import annotations

from parley.protocol.messages import Message
from parley.storage import StoredMessage


def private_conversation(principal_a: str, principal_b: str) -> str:
    """The conversation id of two principals' private messages, the same whichever one sends.

    Principal ids cannot contain ':', so the id splits back into the two ids. A guest's id is
    never given again, so no later holder of its name ever reads its conversations.
    """
    first, second = sorted((principal_a, principal_b))
    return f"dm:{first}:{second}"


def is_private(conversation: str) -> bool:
    return conversation.startswith("dm:")


def conversation_principals(conversation: str) -> list[str]:
    """The principal ids of a private conversation (one when it is with oneself)."""
    return list(dict.fromkeys(conversation[3:].split(":")))


def as_event(record: StoredMessage, *, history: bool = False) -> Message:
    return Message(
        to=record.to,
        sender=record.sender,
        text=record.text,
        seq=record.seq,
        ts=record.ts,
        msg_id=record.msg_id,
        history=history,
    )
