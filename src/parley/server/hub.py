"""Who is online, and getting each message stored and to everyone who should see it.

The hub is the only place that knows users and rooms. It reaches storage only through the
Storage seam and other nodes only through the Bus seam; it never encodes a frame per recipient.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Protocol

from parley.bus import Bus
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import Error, Joined, Left, Message, Send, Sent, encode
from parley.protocol.names import GENERAL_ROOM, is_room, nick_key, normalize_nick
from parley.protocol.text import check_message_text
from parley.storage import NewMessage, Storage

log = logging.getLogger(__name__)

Write = Callable[[bytes], None]


class Peer(Protocol):
    """What the hub needs of a logged-in connection."""

    nick: str
    nick_key: str

    def write(self, frame: bytes) -> None:
        """Queue bytes for the client without blocking; a closed connection ignores them."""
        ...


def private_conversation(key_a: str, key_b: str) -> str:
    """The conversation id of two users' private messages, the same whichever one sends.

    Nickname keys cannot contain ':', so the id splits back into the two keys.
    """
    first, second = sorted((key_a, key_b))
    return f"dm:{first}:{second}"


@dataclasses.dataclass(slots=True)
class _Pending:
    message: NewMessage
    sender: Peer
    request_id: int


class Hub:
    """Users, rooms and the path of every message: validate, store (batched), publish, deliver.

    Everything runs on the event loop's thread; only :meth:`run` awaits (the storage).
    """

    def __init__(self, storage: Storage, bus: Bus) -> None:
        self._storage = storage
        self._bus = bus
        self._users: dict[str, Peer] = {}
        # Room name -> member -> that member's write function, so delivering to a room is one
        # C-level call per member: no lookup, no coroutine, no per-member encoding.
        self._rooms: dict[str, dict[Peer, Write]] = {GENERAL_ROOM: {}}
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._stopping = False
        bus.subscribe(self._deliver)

    # --- presence ------------------------------------------------------------------------

    def login(self, peer: Peer, nick: str) -> None:
        """Put ``peer`` online as ``nick`` in #general and tell the room (``peer`` included).

        Raises PeerError(NICK_TAKEN) if someone online has the same nickname key.
        """
        key = nick_key(nick)
        if key in self._users:
            raise PeerError(ErrorCode.NICK_TAKEN, f"The nickname {nick} is already taken.")
        peer.nick, peer.nick_key = nick, key
        self._users[key] = peer
        self._rooms[GENERAL_ROOM][peer] = peer.write
        self._bus.publish(GENERAL_ROOM, encode(Joined(room=GENERAL_ROOM, nick=nick)))

    def logout(self, peer: Peer) -> None:
        """Take ``peer`` offline and tell the rooms it was in. Safe to call more than once."""
        if self._users.get(peer.nick_key) is not peer:
            return
        del self._users[peer.nick_key]
        for name, members in self._rooms.items():
            if members.pop(peer, None) is not None:
                self._bus.publish(name, encode(Left(room=name, nick=peer.nick)))

    def online(self) -> list[str]:
        """Nicknames online, sorted case-insensitively. O(users log users)."""
        return sorted((peer.nick for peer in self._users.values()), key=str.casefold)

    # --- messages ------------------------------------------------------------------------

    def submit(self, sender: Peer, request: Send) -> None:
        """Check a ``send`` and queue it for the next storage batch; the sender gets a ``sent``
        reply once it is stored. Raises PeerError (INVALID_TEXT, NO_SUCH_ROOM, NO_SUCH_USER).
        """
        check_message_text(request.text)
        if is_room(request.to):
            if request.to not in self._rooms:
                raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {request.to}.")
            conversation = to = request.to
        else:
            recipient = self._find(request.to)
            conversation = private_conversation(sender.nick_key, recipient.nick_key)
            to = recipient.nick
        message = NewMessage(
            conversation, sender.nick, sender.nick_key, to, request.text, request.msg_id
        )
        self._pending.append(_Pending(message, sender, request.id))
        self._wakeup.set()

    def _find(self, nick: str) -> Peer:
        try:
            peer = self._users.get(nick_key(normalize_nick(nick)))
        except PeerError:
            peer = None
        if peer is None:
            raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {nick} is online.")
        return peer

    async def run(self) -> None:
        """Store queued messages in batches and publish them, until :meth:`stop`.

        Group commit: everything queued while the previous batch was being stored goes into the
        next one, so one storage round trip serves many messages under load.
        """
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                await self._commit(batch)
            if self._stopping:
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            stored = await self._storage.append([item.message for item in batch])
        except Exception:
            log.exception("Storing %d messages failed", len(batch))
            for item in batch:
                item.sender.write(
                    encode(
                        Error(
                            id=item.request_id,
                            code=ErrorCode.INTERNAL_ERROR,
                            message="The message could not be stored; send it again.",
                        )
                    )
                )
            return
        for item, record in zip(batch, stored, strict=True):
            if not record.duplicate:
                frame = Message(
                    to=record.to,
                    sender=record.sender,
                    text=record.text,
                    seq=record.seq,
                    ts=record.ts,
                    msg_id=record.msg_id,
                )
                self._bus.publish(record.conversation, encode(frame))
            item.sender.write(
                encode(
                    Sent(
                        id=item.request_id, seq=record.seq, ts=record.ts, duplicate=record.duplicate
                    )
                )
            )

    async def stop(self, runner: asyncio.Task[None]) -> None:
        """Store what is queued, then end :meth:`run` (running as ``runner``)."""
        self._stopping = True
        self._wakeup.set()
        with contextlib.suppress(asyncio.CancelledError):
            await runner

    # --- delivery (called by the bus, for frames from any node) --------------------------

    def _deliver(self, conversation: str, frame: bytes) -> None:
        members = self._rooms.get(conversation)
        if members is not None:
            # A copy: a write can push a slow member over its limit, and cutting it off
            # removes it from the room while this loop runs. O(members), far below the writes.
            for write in list(members.values()):
                write(frame)
            return
        if conversation.startswith("dm:"):
            for key in set(conversation[3:].split(":")):
                peer = self._users.get(key)
                if peer is not None:
                    peer.write(frame)
