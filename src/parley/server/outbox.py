"""What users send: checking a ``send``, naming the conversation a request's ``to`` stands
for, and handing messages to the commit pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable

from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.files import FILE_PREFIX
from parley.protocol.messages import Send
from parley.protocol.names import is_room, normalize_room, room_key
from parley.protocol.text import check_message_text
from parley.server.commits import Commits, Pending
from parley.server.conversations import private_conversation
from parley.server.live_rooms import LiveRooms
from parley.server.presence import Presence
from parley.server.rooms import Peer
from parley.storage import NewMessage


class Outbox:
    """Checks each message against the sender's rooms and mutes, then queues it."""

    def __init__(self, presence: Presence, rooms: LiveRooms, commits: Commits) -> None:
        self._presence = presence
        self._rooms = rooms
        self._commits = commits

    def submit(self, sender: Peer, request: Send) -> Awaitable[None] | None:
        """Check a ``send`` and queue it for the next storage batch; the sender gets a ``sent``
        reply once it is stored. Raises PeerError (INVALID_TEXT, NOT_IN_ROOM, MUTED,
        NO_SUCH_USER). A private message to someone offline needs a storage lookup first: that
        case returns the coroutine to await.
        """
        check_message_text(request.text)
        if request.text.startswith(FILE_PREFIX):
            raise PeerError(
                ErrorCode.INVALID_TEXT,
                f"Lines starting with {FILE_PREFIX.strip()} announce shared files; only the "
                "server writes them (use /send to share a file).",
            )
        if is_room(request.to):
            room = self._rooms.member_room(sender, request.to)
            self._rooms.check_not_muted(sender, room)
            self._queue(NewMessage(room.key, sender.nick, sender.nick_key, room.name,
                                   request.text, request.msg_id), sender, request.id)  # fmt: skip
            return None
        recipient = self._presence.find_online(request.to)
        if recipient is not None:
            away = self._presence.away(recipient)
            self._queue_private(sender, recipient.principal, recipient.nick, request, away)
            return None
        return self._submit_offline(sender, request)

    async def _submit_offline(self, sender: Peer, request: Send) -> None:
        try:
            found = await self._presence.resolve_recipient(request.to)
        except PeerError:
            found = None
        if found is None:
            raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {request.to} is online.")
        self._queue_private(sender, found.principal, found.nick, request, offline=not found.online)

    def _queue_private(
        self,
        sender: Peer,
        principal: str,
        name: str,
        request: Send,
        away: str = "",
        *,
        offline: bool = False,
    ) -> None:
        conversation = private_conversation(sender.principal, principal)
        message = NewMessage(
            conversation,
            sender.nick,
            sender.nick_key,
            name,
            request.text,
            request.msg_id,
            participants=tuple(sorted({sender.principal, principal})),
        )
        self._queue(message, sender, request.id, away, offline=offline)

    def _queue(
        self,
        message: NewMessage,
        sender: Peer,
        request_id: int,
        away: str = "",
        *,
        offline: bool = False,
    ) -> None:
        self._presence.spoke(sender)
        self._commits.submit(Pending(message, sender, request_id, away, offline))

    def post(self, message: NewMessage) -> None:
        """Store and deliver a message the server writes itself (a file's announcement), in
        order with everything else in its conversation. Its ``msg_id`` makes it idempotent.
        """
        self._commits.submit(Pending(message, None, -1))

    async def file_audience(self, peer: Peer, to: str) -> tuple[str, str, list[str]]:
        """Where a file shared by ``peer`` with ``to`` goes: its conversation, the name as
        shown, and the principal ids that may read it besides the sender (the room's members
        now, or the other user). Raises PeerError (NO_SUCH_ROOM, NOT_IN_ROOM, MUTED,
        INVALID_NICK, NO_SUCH_USER).
        """
        if is_room(to):
            room = self._rooms.member_room(peer, to)
            self._rooms.check_not_muted(peer, room)
            readers = [member.principal for member in room.members if member is not peer]
            return room.key, room.name, readers
        principal, shown = await self.other_user(to)
        return private_conversation(peer.principal, principal), shown, [principal]

    async def conversation_of(self, peer: Peer, to: str) -> str:
        """The conversation ``to`` names for ``peer`` (membership not checked). Raises
        PeerError (INVALID_ROOM, INVALID_NICK, NO_SUCH_USER).
        """
        if is_room(to):
            return room_key(normalize_room(to))
        principal, _ = await self.other_user(to)
        return private_conversation(peer.principal, principal)

    async def other_user(self, to: str) -> tuple[str, str]:
        """The principal id and name of the user ``to`` names. Raises PeerError
        (INVALID_NICK, NO_SUCH_USER).
        """
        found = await self._presence.resolve_user(to)
        if found is None:
            raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {to}.")
        return found
