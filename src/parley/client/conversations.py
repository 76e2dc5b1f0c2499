"""Which messages of each conversation the client has seen: pure bookkeeping, no I/O.

The server numbers the messages of every conversation 1, 2, 3... (``seq``). The same message
can reach a client twice: the history sent after a ``join`` overlaps what was seen before
leaving, and a reconnecting client asks for what it missed while live traffic already flows.
This is the client half of the no-duplicates contract: a message whose seq was seen is dropped.

A private conversation belongs to two principals, not two names: when a guest leaves and
someone comes back under its name (the guest reconnecting is someone new too), the server
starts a new conversation, numbered from 1 again, that the client still finds under the same
name. A seq seen before with another ``msg_id`` says so, and the old numbers are forgotten.
"""

from __future__ import annotations

import dataclasses

from parley.protocol.messages import Message
from parley.protocol.names import is_room, nick_key, room_key

# Seqs remembered below the highest one seen, per conversation. A message further back than
# this is older than anything a join's history (50) or a reconnect's overlap can bring.
SEEN_WINDOW = 1024


def conversation_of(message: Message, me: str) -> tuple[str, str]:
    """The conversation ``message`` belongs to, seen by user ``me``: its key and the name to
    ask the server for its history by. A room's key is its room key (it starts with '#'); a
    private conversation's is the other user's nickname key (which cannot).
    """
    if is_room(message.to):
        return room_key(message.to), message.to
    mine = bool(me) and nick_key(message.sender) == nick_key(me)
    other = message.to if mine else message.sender
    return nick_key(other), other


@dataclasses.dataclass(slots=True)
class _Seen:
    target: str
    last: int = 0
    # Lowest seq seen: where paging back through history starts.
    first: int = 0
    # Seq -> msg_id of the messages seen lately.
    recent: dict[int, str] = dataclasses.field(default_factory=dict)


class Conversations:
    """The seqs seen per conversation. Survives a reconnect: hand it to the next connection."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def accept(self, key: str, target: str, seq: int, msg_id: str | None = None) -> bool:
        """Record ``seq`` as seen in conversation ``key``; False if it had been seen already
        (then the message is a duplicate to drop). With ``msg_id``, a seq seen before under
        another msg_id means the conversation started anew (see above). O(1), amortised.
        """
        seen = self._seen.get(key)
        if seen is not None and msg_id and seen.recent.get(seq, msg_id) not in ("", msg_id):
            seen = None  # a new conversation under the same name
        if seen is None:
            seen = self._seen[key] = _Seen(target)
        seen.target = target
        if seq in seen.recent or (seen.last and seq <= seen.last - SEEN_WINDOW):
            return False
        seen.recent[seq] = msg_id or ""
        seen.last = max(seen.last, seq)
        seen.first = min(seen.first, seq) if seen.first else seq
        if len(seen.recent) > 2 * SEEN_WINDOW:
            floor = seen.last - SEEN_WINDOW
            seen.recent = {n: m for n, m in seen.recent.items() if n > floor}
        return True

    def forget_seqs(self) -> None:
        """Forget every seq seen, keeping the conversations (:meth:`known` lists them with
        last seq 0): the server's numbering cannot be trusted any more (its history epoch
        changed), and a resume cut short must still find what to reload.
        """
        self._seen = {key: _Seen(seen.target) for key, seen in self._seen.items()}

    def last_seq(self, key: str) -> int:
        """The highest seq seen in ``key``; 0 when none."""
        seen = self._seen.get(key)
        return seen.last if seen is not None else 0

    def first_seq(self, key: str) -> int:
        """The lowest seq seen in ``key``; 0 when none."""
        seen = self._seen.get(key)
        return seen.first if seen is not None else 0

    def known(self) -> list[tuple[str, str, int]]:
        """(key, target, last seq) of every conversation with a message seen (before
        :meth:`forget_seqs`, if it was called)."""
        return [(key, seen.target, seen.last) for key, seen in self._seen.items()]
