"""What handlers call: one object that wires presence, live rooms, the commit pipeline,
delivery and history together, and the requests that need more than one of them (a login,
logging out, a history page).

The hub reaches storage only through the Storage seam and other nodes only through the Bus
seam; it never encodes a frame per recipient. Requests that need storage are coroutines; the
connection runs one at a time, in order. Each part is a module of its own:

- ``presence.py``: who is online, nickname claims, principals, whether a login still stands;
- ``live_rooms.py``: rooms in memory (members, operators, mutes), joining and leaving;
- ``room_listing.py``: pages of the ``rooms`` listing, each read at most once a second;
- ``outbox.py``: checking a ``send`` and naming the conversation a ``to`` stands for;
- ``commits.py``: one lane per conversation to storage, then publishing on the bus;
- ``sequencer.py``: each conversation's frames in ``seq`` order, gaps filled from storage;
- ``delivery.py``: fan-out of each published frame to the members on this node;
- ``cluster_events.py``: room state changed on one node, applied on the others;
- ``history.py`` and ``read_markers.py``: reading back, unread counts, offline catch-up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from parley.bus import Bus, Directory, RemoteUser, Roster
from parley.bus.local import LocalDirectory, LocalRoster
from parley.clock import SYSTEM_CLOCK, Clock
from parley.config import ServerConfig
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import (
    HistoryPage,
    Left,
    Message,
    Notice,
    Rooms,
    Send,
    UnreadCount,
    UserInfo,
    decode_server_frame,
    encode,
)
from parley.protocol.names import (
    GENERAL_ROOM,
    is_room,
    name_skeleton,
    nick_key,
    normalize_room,
    room_key,
)
from parley.server.cluster_events import (
    ClusterEvent,
    MembersCame,
    MuteChanged,
    OperatorAdded,
    Removed,
    Told,
    TopicSet,
    decode_event,
    encode_event,
)
from parley.server.commits import Commits
from parley.server.conversations import (
    as_event,
    conversation_principals,
    is_private,
    private_conversation,
)
from parley.server.delivery import Delivery
from parley.server.health import StorageHealth
from parley.server.history import History
from parley.server.live_rooms import LiveRooms, guest_sanction_key, sanction_keys
from parley.server.metrics import ServerMetrics
from parley.server.name_pages import name_page
from parley.server.outbox import Outbox
from parley.server.presence import Presence
from parley.server.read_markers import Mark, ReadMarkers
from parley.server.room_listing import RoomListing
from parley.server.rooms import LiveRoom, Peer
from parley.server.sequencer import Sequencer
from parley.server.tasks import TaskSet
from parley.storage import NewMessage, Room, Storage, StoredMessage

# Re-exported: the names other modules have long imported from here.
__all__ = [
    "Hub",
    "conversation_principals",
    "guest_sanction_key",
    "private_conversation",
    "sanction_keys",
]

log = logging.getLogger(__name__)

# A ``rooms`` page stays this small: a quarter of the slow-reader limit
# (ServerConfig.send_buffer_limit_bytes, 1 MiB by default) and of the client's frame limit.
_ROOMS_REPLY_BYTES = 256 * 1024


class Hub:
    """Users, rooms and the path of every message: validate, store (batched), publish, deliver.

    Everything runs on the event loop's thread. A user logging in holds back the private
    messages published while it reads what it missed.
    """

    def __init__(
        self,
        storage: Storage,
        bus: Bus,
        config: ServerConfig,
        metrics: ServerMetrics,
        clock: Clock = SYSTEM_CLOCK,
        directory: Directory | None = None,
        roster: Roster | None = None,
    ) -> None:
        # Where every time the hub and its parts stamp or compare comes from.
        self.clock = clock
        self._storage = storage
        self._bus = bus
        self._directory: Directory = directory or LocalDirectory()
        self._tasks = TaskSet("parley-hub")
        # Releasing names in the directory: off the logout path, bounded by the directory.
        self._releases = TaskSet("parley-release")
        self.health = StorageHealth(clock)
        self._presence = Presence(storage, clock, self._directory)
        self._markers = ReadMarkers(storage, self._tasks, self.health, self._presence.by_principal)
        self._commits = Commits(storage, bus, self._tasks, self.health, self._markers, metrics)
        self._listing = RoomListing(storage, lambda key: self._rooms.members_in_cluster(key), clock)
        self._rooms = LiveRooms(
            storage,
            bus,
            config,
            self._presence,
            self._commits,
            self._listing,
            clock,
            roster or LocalRoster(),
        )
        self._link_down = False
        self._stopping = False
        self._history = History(storage, self._presence, self._rooms, self._markers)
        self._outbox = Outbox(self._presence, self._rooms, self._commits)
        self._delivery = Delivery(
            self._rooms.members, self._presence.by_principal, self.logout, metrics
        )
        self._sequencer = Sequencer(
            storage,
            self._delivery.deliver,
            self._has_audience,
            lambda key: self._rooms.member_count(key) > 0,
            self._tasks,
            ordered=bus.ordered,
        )
        self._rooms.sequencer = self._sequencer
        # Each node sends its own members a big room's summaries (counting every node's).
        self._rooms.deliver_here = self._delivery.deliver
        bus.subscribe(self._sequencer.deliver)
        bus.on_event(self._on_event)
        bus.on_link(self._on_link)

    async def start(self) -> None:
        """Make sure #general exists and is live. Raises StorageUnavailable."""
        general = room_key(GENERAL_ROOM)
        await self._storage.create_room(
            Room(key=general, name=GENERAL_ROOM, created_ms=self.clock.now_ms())
        )
        await self._rooms.load(general)
        await self._sequencer.catch_up(general, None)

    def local_users(self) -> list[tuple[str, str, str, str]]:
        """(nick_key, skeleton, principal, nick) of everyone online here, for the directory."""
        return self._presence.entries()

    def local_rooms(self) -> dict[str, list[str]]:
        """Room key -> the nicknames in it here, for the roster."""
        return self._rooms.local_members()

    async def stop(self, within_seconds: float) -> None:
        """Store what is queued, waiting up to ``within_seconds``; then cancel what is left
        (its senders are told ``unavailable``).
        """
        self._history.stop()
        # From here on names are not released one by one: the node's lease, ended as it
        # stops, frees them all at once.
        self._stopping = True
        await self._releases.wait(min(within_seconds, 2.0))
        if not await self._tasks.wait(within_seconds):
            log.warning(
                "Storage did not finish within %.1f s: %d conversations not stored",
                within_seconds,
                self._commits.conversations_waiting,
            )
            await self._tasks.cancel()

    @property
    def storage(self) -> Storage:
        return self._storage

    # --- presence ------------------------------------------------------------------------

    async def login(self, peer: Peer, welcome: Callable[[list[str]], None]) -> None:
        """Put ``peer`` (its nick, role and account set) online in #general and, for an
        account, in the rooms it was in; deliver private messages that came while it was away.
        ``welcome`` is called with the room names once it is online, before anything is sent
        to it. Raises PeerError(NICK_TAKEN).
        """
        holder = self._presence.user(peer.nick_key)
        if holder is not None and not await self._presence.still_valid(holder):
            # A login revoked by another process (``parley admin``) that the watch has not
            # reached yet: it does not keep the owner out.
            self._presence.revoke(holder)
        operator_of: dict[str, bool] = {}
        if peer.account:
            operator_of = await self._storage.memberships(peer.account)
        rooms = []
        general = room_key(GENERAL_ROOM)
        for key in [general, *sorted(key for key in operator_of if key != general)]:
            room = await self._rooms.load(key)
            if room is not None:
                await self._rooms.load_mute(peer, room, logging_in=True)
                await self._sequencer.catch_up(key, None)
                rooms.append(room)
        # Private messages published while what was missed is read are held, then sent after
        # the first page of it, less those the pages will bring: each comes once, and no
        # commit waits for a login.
        read: list[Mark] = []
        with self._presence.claim(peer), self._delivery.hold(peer.principal) as held:
            await self._claim_in_cluster(peer)
            try:
                first, paged, missed = await self._read_missed(peer)
            except BaseException:
                self._release_in_cluster(peer)
                raise
            if peer.closed:
                self._release_in_cluster(peer)
                return  # gone while we waited
            # From here on nothing waits: the reply, the arrivals, what was missed, then live.
            self._presence.add(peer)
            welcome([room.name for room in rooms])
            for room in rooms:
                # A room emptied while we waited was dropped: bring it back.
                room = self._rooms.keep(room)
                if operator_of.get(room.key) or peer.principal == room.created_by:
                    room.operators.add(peer.principal)
                self._rooms.enter(peer, room)
            for record in first:
                peer.write(encode(as_event(record, history=True)))
            for conversation, frame in held:
                event = decode_server_frame(frame)
                if isinstance(event, Message):
                    if event.seq <= paged.get(conversation, 0):
                        continue
                    if peer.account:
                        read.append((peer.account, conversation, event.seq))
                peer.write(frame)
        if first:
            # Read markers of live messages wait until the pages before them are sent.
            self._markers.hold(peer, read)
            self._history.catch_up(peer, missed, first)
        else:
            self._markers.mark(read)

    async def _read_missed(
        self, peer: Peer
    ) -> tuple[list[StoredMessage], dict[str, int], dict[str, tuple[int, int]]]:
        """The first page of what an account missed, the last seq the pages will bring per
        conversation, and what was missed."""
        missed = await self._history.missed(peer) if peer.account else {}
        # What the pages will bring, per conversation: up to its last message now.
        paged = {conversation: last for conversation, (_, last) in missed.items()}
        first = await self._history.missed_page(missed) if missed else []
        return first, paged, missed

    async def _claim_in_cluster(self, peer: Peer) -> None:
        """Hold ``peer``'s name on every node. Raises PeerError(NICK_TAKEN)."""
        holder = await self._directory.claim(
            peer.nick_key, name_skeleton(peer.nick), peer.principal, peer.nick
        )
        if holder is None:
            return
        if holder.casefold() == peer.nick.casefold():
            raise PeerError(ErrorCode.NICK_TAKEN, f"The nickname {peer.nick} is already taken.")
        raise PeerError(
            ErrorCode.NICK_TAKEN, f"The nickname {peer.nick} looks like {holder}, who is online."
        )

    def _release_in_cluster(self, peer: Peer) -> None:
        if self._stopping:
            return
        self._releases.spawn(
            self._directory.release(
                peer.nick_key, name_skeleton(peer.nick), peer.principal, peer.nick
            ),
            name="parley-release",
        )

    def logout(self, peer: Peer) -> None:
        """Take ``peer`` offline and tell the rooms it was in. Safe to call more than once.
        Memberships of an account stay in storage: it is back in its rooms at its next login.
        """
        if not self._presence.remove(peer):
            return
        self._release_in_cluster(peer)
        self._markers.release(peer)
        self._rooms.leave_all(peer)

    async def remember_rooms(self, peer: Peer) -> None:
        """A guest just registered: keep its rooms (and operator rights) with the account."""
        await self._rooms.remember(peer)

    def is_online(self, key: str) -> bool:
        return self._presence.is_online(key)

    def user(self, key: str) -> Peer | None:
        """Who is online under this nickname key."""
        return self._presence.user(key)

    async def online(self, after: str, limit: int) -> tuple[list[str], str, int]:
        """A page of who is online on every node (after the key ``after``), its ``next``, and
        how many are online in all.
        """
        names = dict(self._presence.online_pairs())
        for name in await self._directory.online():
            names.setdefault(nick_key(name), name)
        page, following = name_page(names.items(), after, limit)
        return page, following, len(names)

    async def find_remote(self, key: str) -> RemoteUser | None:
        """Who is online under this nickname key on another node."""
        return await self._directory.find(key)

    def announce(self, event: ClusterEvent) -> None:
        """Tell the other nodes about a change this node has applied itself."""
        self._bus.announce(encode_event(event))

    def set_away(self, peer: Peer, text: str) -> None:
        self._presence.set_away(peer, text)

    async def whois(self, asker: Peer, raw_nick: str, request_id: int) -> UserInfo:
        return await self._presence.whois(asker, raw_nick, request_id, self._rooms.names_of)

    async def recheck(self, account_key: str) -> None:
        await self._presence.recheck(account_key)

    # --- rooms ---------------------------------------------------------------------------

    async def join(self, peer: Peer, raw_name: str, request_id: int) -> None:
        await self._rooms.join(peer, raw_name, request_id)

    async def part(self, peer: Peer, raw_name: str) -> None:
        await self._rooms.part(peer, raw_name)

    async def room_info(self, peer: Peer, raw_name: str, request_id: int) -> None:
        await self._rooms.info(peer, raw_name, request_id)

    async def set_topic(self, peer: Peer, raw_name: str, text: str) -> None:
        await self._rooms.set_topic(peer, raw_name, text)

    async def list_rooms(self, request_id: int, after: str, limit: int) -> Rooms:
        """One page of rooms in key order: the first ``limit`` after the room named ``after``
        ("" from the start), cut further to stay under _ROOMS_REPLY_BYTES. ``next`` is the name
        to ask after for the next page, "" on the last. At most one index range read per page
        a second, whatever the number of rooms or of requests (see RoomListing). Raises
        PeerError(INVALID_ROOM) for a bad ``after``.
        """
        after_key = room_key(normalize_room(after)) if after else ""
        page = await self._listing.page(after_key, limit, _ROOMS_REPLY_BYTES)
        total = await self._listing.total()
        return Rooms(id=request_id, rooms=page.rooms, total=total, next=page.next)

    async def who(self, raw_name: str, after: str, limit: int) -> tuple[list[str], str, int]:
        """A page of who is in a room on every node (after the key ``after``), its ``next``,
        and the total.
        """
        return await self._rooms.who(raw_name, after, limit)

    async def room_named(self, raw_name: str) -> LiveRoom:
        return await self._rooms.named(raw_name)

    def remove(self, peer: Peer, room: LiveRoom, left: Left) -> None:
        """Take ``peer`` out of ``room``, telling it and the room with ``left``."""
        self._rooms.leave(peer, room, left)

    # --- messages ------------------------------------------------------------------------

    def submit(self, sender: Peer, request: Send) -> Awaitable[None] | None:
        """Check a ``send`` and queue it for the next storage batch; the sender gets a ``sent``
        reply once it is stored. Raises PeerError (INVALID_TEXT, NOT_IN_ROOM, MUTED,
        NO_SUCH_USER). A private message to someone offline needs a storage lookup first: that
        case returns the coroutine to await.
        """
        return self._outbox.submit(sender, request)

    def post(self, message: NewMessage) -> None:
        """Store and deliver a message the server writes itself (a file's announcement), in
        order with everything else in its conversation. Its ``msg_id`` makes it idempotent.
        """
        self._outbox.post(message)

    async def file_audience(self, peer: Peer, to: str) -> tuple[str, str, list[str]]:
        return await self._outbox.file_audience(peer, to)

    async def conversation_of(self, peer: Peer, to: str) -> str:
        return await self._outbox.conversation_of(peer, to)

    # --- reading back --------------------------------------------------------------------

    async def history(
        self, peer: Peer, to: str, request_id: int, *, after: int | None, before: int | None,
        limit: int,
    ) -> HistoryPage:  # fmt: skip
        """A page of a room's history (members only) or of a private conversation."""
        if is_room(to):
            room = self._rooms.member_room(peer, to)
            conversation, shown = room.key, room.name
        else:
            principal, shown = await self._outbox.other_user(to)
            conversation = private_conversation(peer.principal, principal)
        return await self._history.page(
            conversation, shown, request_id, after=after, before=before, limit=limit
        )

    async def unread(self, peer: Peer, after: str) -> tuple[list[UnreadCount], str]:
        """One page of the account's conversations with unread messages (see
        History.unread) and the ``after`` of the next page ("" on the last).
        """
        return await self._history.unread(peer, after)

    async def mark_read(self, peer: Peer, to: str, seq: int) -> None:
        if is_room(to):
            conversation = self._rooms.member_room(peer, to).key
        else:
            conversation = await self.conversation_of(peer, to)
        await self._storage.mark_read(peer.account, conversation, seq)

    # --- the other nodes -----------------------------------------------------------------

    def _has_audience(self, conversation: str) -> bool:
        """Someone here may receive ``conversation``'s frames: O(1)."""
        if is_private(conversation):
            return any(
                self._presence.by_principal(principal) is not None
                or self._delivery.arriving(principal)
                for principal in conversation_principals(conversation)
            )
        return self._rooms.get(conversation) is not None

    def _on_event(self, data: bytes) -> None:
        """Apply a change another node made to what this node holds in memory."""
        try:
            event = decode_event(data)
        except msgspec.MsgspecError:
            log.warning("An event from another node could not be read; ignored")
            return
        if isinstance(event, Told):
            user = self._presence.by_principal(event.principal)
            if user is not None:
                user.write(encode(Notice(text=event.text)))
            return
        room = self._rooms.get(event.room)
        if room is None:
            return
        if isinstance(event, TopicSet):
            room.topic, room.topic_by = event.text, event.by
            self._listing.forget()
        elif isinstance(event, MuteChanged):
            for key in event.keys:
                if event.lifted:
                    room.muted.pop(key, None)
                else:
                    room.muted[key] = event.until_ms
        elif isinstance(event, OperatorAdded):
            room.operators.add(event.principal)
        elif isinstance(event, MembersCame):
            self._rooms.came_elsewhere(room, event.joined, event.left)
        elif isinstance(event, Removed):
            user = self._presence.by_principal(event.principal)
            if user is not None and user in room.members:
                left = Left(
                    room=room.name, nick=user.nick, reason=event.reason, by=event.by,
                    message=event.message,
                )  # fmt: skip
                self._rooms.leave(user, room, left)

    def _on_link(self, up: bool, why: str) -> None:
        """The link to the other nodes went down or came back: say so once to everyone
        here; once back, read from storage what may have been missed meanwhile.
        """
        if not up:
            if not self._link_down:
                self._link_down = True
                self._tell_everyone(
                    "The link to the other servers of this chat is down: messages from people "
                    "connected to them are late until it is back."
                )
            return
        if self._link_down:
            self._link_down = False
            self._tell_everyone("The link to the other servers is back; nothing was lost.")
        self._sequencer.repair_all()

    def _tell_everyone(self, text: str) -> None:
        frame = encode(Notice(text=text))
        for peer in self._presence.everyone():
            peer.write(frame)
