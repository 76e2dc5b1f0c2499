"""Reading back what was stored: history pages, unread counts, and the private messages an
account missed while it was offline, sent a page at a time after its login.
"""

from __future__ import annotations

import asyncio

from parley.protocol import limits
from parley.protocol.messages import HistoryPage, UnreadCount, encode
from parley.server.conversations import as_event, conversation_principals, is_private
from parley.server.live_rooms import LiveRooms
from parley.server.presence import Presence
from parley.server.read_markers import ReadMarkers
from parley.server.rooms import Peer
from parley.storage import Storage, StoredMessage

# The reply to a history request stays this far below the client's frame limit.
_HISTORY_REPLY_BYTES = limits.MAX_SERVER_FRAME_BYTES - 4096
# Private messages missed while offline go out in pages of about this many bytes, the next
# only once the client has taken the one before: far below the slow-reader limit, however
# many there are.
_MISSED_PAGE_BYTES = 128 * 1024
# How often a catching-up login's queue is looked at while waiting for the client to read,
# and how long it may take nothing before the rest waits for its next login.
_DRAIN_POLL_SECONDS = 0.05
_CATCH_UP_STALL_SECONDS = 60.0

# Private conversation -> (its read marker, its last message when the login began).
Missed = dict[str, tuple[int, int]]


class History:
    """Reads for one node's users; a catch-up runs as a task of its own per login."""

    def __init__(
        self, storage: Storage, presence: Presence, rooms: LiveRooms, markers: ReadMarkers
    ) -> None:
        self._storage = storage
        self._presence = presence
        self._rooms = rooms
        self._markers = markers
        # Set when stopping: catch-ups of missed messages end, leaving the rest unread.
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    async def page(
        self, conversation: str, shown: str, request_id: int, *, after: int | None,
        before: int | None, limit: int,
    ) -> HistoryPage:  # fmt: skip
        """A page of ``conversation`` (named ``shown`` to the reader), cut to fit one frame."""
        records = await self._storage.history(
            conversation, limit=limit + 1, after_seq=after, before_seq=before
        )
        more = len(records) > limit
        if more:
            records = records[:limit] if after is not None else records[1:]
        messages = [as_event(record, history=True) for record in records]
        # Cut to fit one frame, keeping the messages nearest to where the reader is.
        size = sum(len(encode(message)) for message in messages)
        while size > _HISTORY_REPLY_BYTES and messages:
            dropped = messages.pop() if after is not None else messages.pop(0)
            size -= len(encode(dropped))
            more = True
        return HistoryPage(id=request_id, to=shown, messages=messages, more=more)

    async def unread(self, peer: Peer, after: str) -> tuple[list[UnreadCount], str]:
        """One page of the account's conversations with unread messages, rooms first: at most
        MAX_LISTED_UNREAD of them after the conversation ``after`` ("" from the first), and the
        ``after`` of the next page ("" on the last). One range read, and a name lookup for
        each private conversation or room not loaded.
        """
        counts = []
        entries = await self._storage.unread(peer.account, after, limits.MAX_LISTED_UNREAD + 1)
        page = entries[: limits.MAX_LISTED_UNREAD]
        for entry in page:
            if is_private(entry.conversation):
                shown = await self._other_side(peer, entry.conversation)
            else:
                room = self._rooms.get(entry.conversation)
                record = room or await self._storage.room(entry.conversation)
                shown = record.name if record is not None else entry.conversation
            counts.append(UnreadCount(to=shown, count=entry.count, last_seq=entry.last_seq))
        more = len(entries) > limits.MAX_LISTED_UNREAD
        return counts, page[-1].conversation if more else ""

    async def _other_side(self, peer: Peer, conversation: str) -> str:
        """The name of the other side of ``peer``'s private conversation: who is online with
        that id, else its account, else (a guest who has left) the name it last had there.
        """
        principals = conversation_principals(conversation)
        other = next((p for p in principals if p != peer.principal), peer.principal)
        online = self._presence.by_principal(other)
        if online is not None:
            return online.nick
        account = await self._storage.account_by_id(other)
        if account is not None:
            return account.name
        for record in await self._storage.history(conversation, limit=1):
            return record.sender if record.sender != peer.nick else record.to
        return "?"

    # --- what an account missed while offline ----------------------------------------------

    async def missed(self, peer: Peer) -> Missed:
        """The private conversations with messages that arrived while an account was offline.
        One range read per MAX_LISTED_UNREAD conversations with unread messages.
        """
        missed: Missed = {}
        after = ""
        while True:
            entries = await self._storage.unread(peer.account, after, limits.MAX_LISTED_UNREAD)
            missed.update(
                (entry.conversation, (entry.read_seq, entry.last_seq))
                for entry in entries
                if is_private(entry.conversation)
            )
            if len(entries) < limits.MAX_LISTED_UNREAD:
                return missed
            after = entries[-1].conversation

    async def missed_page(self, missed: Missed) -> list[StoredMessage]:
        """The next page of what was missed, at most _MISSED_PAGE_BYTES (or one message),
        oldest conversation first; ``missed`` is moved past what the page holds.
        """
        page: list[StoredMessage] = []
        size = 0
        for conversation, (read_seq, last_seq) in list(missed.items()):
            records = await self._storage.history(
                conversation, limit=limits.MAX_HISTORY_MESSAGES, after_seq=read_seq
            )
            full = False
            progressed = False
            for record in records:
                if record.seq > last_seq:
                    break  # came after the login: it is delivered live
                frame_size = len(encode(as_event(record, history=True)))
                if page and size + frame_size > _MISSED_PAGE_BYTES:
                    full = True
                    break
                page.append(record)
                size += frame_size
                read_seq = record.seq
                progressed = True
            if read_seq >= last_seq or (not progressed and not full):
                del missed[conversation]
            else:
                missed[conversation] = (read_seq, last_seq)
            if full:
                break
        return page

    def catch_up(self, peer: Peer, missed: Missed, page: list[StoredMessage]) -> None:
        """Send the rest of what ``peer`` missed in the background, ``page`` being sent."""
        self._markers.spawn(self._catch_up(peer, missed, page))

    async def _catch_up(self, peer: Peer, missed: Missed, page: list[StoredMessage]) -> None:
        """Mark ``page`` (already sent) read, then send the rest of what ``peer`` missed a page
        at a time, each once the client has taken most of the one before, marking each read
        as it goes. Ends early when the connection does, when the client takes nothing for
        _CATCH_UP_STALL_SECONDS, or at shutdown: what was not sent stays unread.
        """
        try:
            while True:
                last = {r.conversation: r.seq for r in page}  # markers only move forward
                await self._markers.store([(peer.account, c, s) for c, s in last.items()])
                if not missed:
                    break
                # A transport signals only past its high-water mark, where a connection is
                # cut off as a slow reader: below it, looking now and then is all there is.
                waited = 0.0
                while (
                    peer.queued_bytes() > _MISSED_PAGE_BYTES // 4
                    and not peer.closed
                    and not self._stopping
                    and waited < _CATCH_UP_STALL_SECONDS
                ):
                    await asyncio.sleep(_DRAIN_POLL_SECONDS)
                    waited += _DRAIN_POLL_SECONDS
                if peer.closed or self._stopping or waited >= _CATCH_UP_STALL_SECONDS:
                    return
                page = await self.missed_page(missed)
                for record in page:
                    peer.write(encode(as_event(record, history=True)))
        finally:
            held = self._markers.release(peer)
        if held and not peer.closed:
            await self._markers.store(held)
