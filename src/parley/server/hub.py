"""Who is online, which rooms they are in, and getting each message stored and to everyone who
should see it.

The hub is the only place that knows users and rooms. It reaches storage only through the
Storage seam and other nodes only through the Bus seam; it never encodes a frame per recipient.
Requests that need storage are coroutines; the connection runs one at a time, in order.
Messages go to storage through one lane per conversation: each lane commits its own batches in
order, and lanes do not wait for one another.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from parley.accounts.throttle import WindowLimiter
from parley.bus import Bus
from parley.config import ServerConfig
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.files import FILE_PREFIX
from parley.protocol.messages import (
    Error,
    HistoryPage,
    Joined,
    Left,
    Message,
    Notice,
    RoomInfo,
    Rooms,
    Send,
    Sent,
    TopicChanged,
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
    normalize_nick,
    normalize_room,
    room_key,
)
from parley.protocol.text import check_away, check_message_text, check_topic
from parley.server.address_group import address_group
from parley.server.health import StorageHealth
from parley.server.metrics import ServerMetrics
from parley.server.room_listing import RoomListing
from parley.server.rooms import LiveRoom, Peer
from parley.server.tasks import TaskSet
from parley.storage import (
    CommitUncertain,
    NewMessage,
    Role,
    Room,
    SanctionKind,
    Storage,
    StorageUnavailable,
    StoredMessage,
)

log = logging.getLogger(__name__)

# The reply to a history request stays this far below the client's frame limit.
_HISTORY_REPLY_BYTES = limits.MAX_SERVER_FRAME_BYTES - 4096
# A ``rooms`` page stays this small: a quarter of the slow-reader limit
# (ServerConfig.send_buffer_limit_bytes, 1 MiB by default) and of the client's frame limit.
_ROOMS_REPLY_BYTES = 256 * 1024
# Private messages missed while offline go out in pages of about this many bytes, the next
# only once the client has taken the one before: far below the slow-reader limit, however
# many there are.
_MISSED_PAGE_BYTES = 128 * 1024
# How often a catching-up login's queue is looked at while waiting for the client to read,
# and how long it may take nothing before the rest waits for its next login.
_DRAIN_POLL_SECONDS = 0.05
_CATCH_UP_STALL_SECONDS = 60.0
# Conversations with a commit in flight at once. Below the PostgreSQL pool's size, so that
# logins, joins and history reads always find a connection, whatever the commits wait on.
_CONCURRENT_COMMITS = 4
# Messages whose commit ended in doubt, remembered so that a retry finding them stored
# publishes them (they were never delivered). Bounded: past it the oldest are forgotten.
_MAX_DOUBTFUL = 10_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def private_conversation(principal_a: str, principal_b: str) -> str:
    """The conversation id of two principals' private messages, the same whichever one sends.

    Principal ids cannot contain ':', so the id splits back into the two ids. A guest's id is
    never given again, so no later holder of its name ever reads its conversations.
    """
    first, second = sorted((principal_a, principal_b))
    return f"dm:{first}:{second}"


def guest_sanction_key(nick: str) -> str:
    """What a sanction of a guest by the nickname ``nick`` is stored under. A guest is a new
    principal at every login, so a ban of its id alone would end with a reconnect: guests are
    also held by the name they used, by its skeleton, so that a look-alike of it is held too.
    Accounts never are (they are held by their id alone).
    """
    return f"guest:{name_skeleton(nick)}"


def sanction_keys(peer: Peer) -> list[str]:
    """Every key a sanction against ``peer`` may be stored under."""
    if peer.account:
        return [peer.principal]
    return [peer.principal, guest_sanction_key(peer.nick)]


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


@dataclasses.dataclass(slots=True)
class _Pending:
    message: NewMessage
    # None for what the server writes itself (a file's announcement): no one to reply to.
    sender: Peer | None
    request_id: int
    # The recipient's away text, for the sender's ``sent``.
    away: str = ""


@dataclasses.dataclass(slots=True, eq=False)
class _Lane:
    """One conversation's way to storage: the messages waiting for its next commit, and the
    lock that keeps its commits, and a join's history read, one at a time and in order.
    """

    pending: list[_Pending] = dataclasses.field(default_factory=list)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    # A task is storing what is pending (it takes what arrives meanwhile too).
    draining: bool = False
    # Holders (the draining task, joins): the lane is dropped when none is left.
    users: int = 0


@dataclasses.dataclass(slots=True)
class _Presence:
    """What ``whois`` tells of an online user beyond its connection. Kept in memory only: it
    ends with the login.
    """

    # When it last sent a chat message (or logged in), in ms since the epoch.
    active_ms: int
    away: str = ""


class Hub:
    """Users, rooms and the path of every message: validate, store (batched), publish, deliver.

    Everything runs on the event loop's thread. Storing a conversation's batch and publishing
    it happen under its lane's lock, and so does a join's history read with the member's
    arrival: a joining member sees every message exactly once, in history or live. A user
    logging in holds back the private messages published while it reads what it missed.
    """

    def __init__(
        self, storage: Storage, bus: Bus, config: ServerConfig, metrics: ServerMetrics
    ) -> None:
        self._storage = storage
        self._metrics = metrics
        self._bus = bus
        self._config = config
        self._users: dict[str, Peer] = {}
        # The same users by principal id: private messages and rights go by this.
        self._principals: dict[str, Peer] = {}
        # Logins still being sent what they missed, with the read markers of live private
        # messages they got meanwhile: held back, so that nothing is marked read before what
        # came earlier has been sent.
        self._catching_up: dict[Peer, list[tuple[str, str, int]]] = {}
        # Nickname key -> presence, for exactly the users in _users.
        self._presence: dict[str, _Presence] = {}
        # Name skeleton -> user, for exactly the users in _users: no two online names look alike.
        self._look_alikes: dict[str, Peer] = {}
        self._rooms: dict[str, LiveRoom] = {}
        # Conversation -> its lane, while anything is queued or held in it.
        self._lanes: dict[str, _Lane] = {}
        self._commit_slots = asyncio.Semaphore(_CONCURRENT_COMMITS)
        # With storage that writes one transaction at a time, one task drains every lane.
        self._draining_together = False
        # (conversation, sender key, msg_id) of messages whose commit ended in doubt.
        self._doubtful: collections.OrderedDict[tuple[str, str, str], bool] = (
            collections.OrderedDict()
        )
        # Principal -> private frames held for a user logging in, while it reads what it missed;
        # and the nickname keys and skeletons those logins have claimed meanwhile.
        self._arriving: dict[str, list[tuple[str, bytes]]] = {}
        self._claimed_names: set[str] = set()
        # Frames published while a delivery is under way wait here, so that every member sees
        # one frame before the next (a member cut off mid-delivery publishes its `left`).
        self._deferred: collections.deque[tuple[str, bytes]] = collections.deque()
        self._delivering = False
        self._tasks = TaskSet("parley-hub")
        self.health = StorageHealth()
        # Set when stopping: catch-ups of missed messages end, leaving the rest unread.
        self._stopping = False
        self._rooms_by_principal = WindowLimiter(config.rooms_per_principal_per_hour, 3600.0)
        self._rooms_by_address = WindowLimiter(config.rooms_per_address_per_hour, 3600.0)
        self._listing = RoomListing(storage, self._members_online)
        bus.subscribe(self._deliver)

    async def start(self) -> None:
        """Make sure #general exists and is live. Raises StorageUnavailable."""
        general = room_key(GENERAL_ROOM)
        await self._storage.create_room(Room(key=general, name=GENERAL_ROOM, created_ms=now_ms()))
        await self._live_room(general)

    # --- presence ------------------------------------------------------------------------

    def is_online(self, key: str) -> bool:
        return key in self._users

    async def login(self, peer: Peer, welcome: Callable[[list[str]], None]) -> None:
        """Put ``peer`` (its nick, role and account set) online in #general and, for an
        account, in the rooms it was in; deliver private messages that came while it was away.
        ``welcome`` is called with the room names once it is online, before anything is sent
        to it. Raises PeerError(NICK_TAKEN).
        """
        holder = self._users.get(peer.nick_key)
        if holder is not None and not await self.still_valid(holder):
            # A login revoked by another process (``parley admin``) that the watch has not
            # reached yet: it does not keep the owner out.
            self.revoke(holder)
        operator_of: dict[str, bool] = {}
        if peer.account:
            operator_of = await self._storage.memberships(peer.account)
        rooms = []
        general = room_key(GENERAL_ROOM)
        for key in [general, *sorted(key for key in operator_of if key != general)]:
            room = await self._live_room(key)
            if room is not None:
                await self._load_mute(peer, room)
                rooms.append(room)
        key = peer.nick_key
        skeleton = name_skeleton(peer.nick)
        if key in self._users or key in self._claimed_names:
            raise PeerError(ErrorCode.NICK_TAKEN, f"The nickname {peer.nick} is already taken.")
        if skeleton in self._look_alikes:
            raise PeerError(
                ErrorCode.NICK_TAKEN,
                f"The nickname {peer.nick} looks like {self._look_alikes[skeleton].nick}, "
                "who is online.",
            )
        if skeleton in self._claimed_names:
            raise PeerError(ErrorCode.NICK_TAKEN, f"The nickname {peer.nick} is already taken.")
        # Private messages published while what was missed is read are held, then sent after
        # the first page of it, less those the pages will bring: each comes once, and no
        # commit waits for a login.
        held: list[tuple[str, bytes]] = []
        self._arriving[peer.principal] = held
        claims = {key, skeleton}
        self._claimed_names |= claims
        read: list[tuple[str, str, int]] = []
        try:
            missed = await self._missed_private(peer) if peer.account else {}
            # What the pages will bring, per conversation: up to its last message now.
            paged = {conversation: last for conversation, (_, last) in missed.items()}
            first = await self._missed_page(peer, missed) if missed else []
            if peer.closed:
                return  # gone while we waited
            # From here on nothing waits: the reply, the arrivals, what was missed, then live.
            self._users[key] = peer
            self._principals[peer.principal] = peer
            self._look_alikes[skeleton] = peer
            self._presence[key] = _Presence(active_ms=peer.since_ms)
            welcome([room.name for room in rooms])
            for room in rooms:
                if operator_of.get(room.key) or peer.principal == room.created_by:
                    room.operators.add(peer.principal)
                self._enter(peer, room)
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
        finally:
            del self._arriving[peer.principal]
            self._claimed_names -= claims
        if first:
            # Read markers of live messages wait until the pages before them are sent.
            self._catching_up[peer] = read
            self._spawn(self._catch_up(peer, missed, first))
        elif read:
            self._spawn(self._mark_delivered(read))

    async def remember_rooms(self, peer: Peer) -> None:
        """A guest just registered: keep its rooms (and operator rights) with the account."""
        for key in sorted(peer.rooms):
            room = self._rooms.get(key)
            operator = room is not None and peer.principal in room.operators
            await self._storage.add_member(key, peer.account, operator=operator)

    def logout(self, peer: Peer) -> None:
        """Take ``peer`` offline and tell the rooms it was in. Safe to call more than once.
        Memberships of an account stay in storage: it is back in its rooms at its next login.
        """
        if self._users.get(peer.nick_key) is not peer:
            return
        del self._users[peer.nick_key]
        del self._presence[peer.nick_key]
        if self._principals.get(peer.principal) is peer:
            del self._principals[peer.principal]
        self._catching_up.pop(peer, None)
        del self._look_alikes[name_skeleton(peer.nick)]
        for key in list(peer.rooms):
            room = self._rooms.get(key)
            if room is not None:
                self._leave(peer, room, Left(room=room.name, nick=peer.nick))

    def online(self) -> list[str]:
        """Nicknames online, sorted case-insensitively. O(users log users)."""
        return sorted((peer.nick for peer in self._users.values()), key=str.casefold)

    def find_online(self, nick: str) -> Peer | None:
        try:
            return self._users.get(nick_key(normalize_nick(nick)))
        except PeerError:
            return None

    def set_away(self, peer: Peer, text: str) -> None:
        """Mark ``peer`` away with ``text``; blank text marks it back. Raises
        PeerError(INVALID_TEXT).
        """
        check_away(text)
        presence = self._presence.get(peer.nick_key)
        if presence is not None and self._users.get(peer.nick_key) is peer:
            presence.away = text if text.strip() else ""

    async def resolve_user(self, raw_nick: str) -> tuple[str, str] | None:
        """The principal id a nickname stands for now, with the name as spelt: whoever is
        online under it, else the account of that name. None when neither: a guest who has
        left is no one, and its id is never anyone's again. Raises PeerError(INVALID_NICK).
        """
        key = nick_key(normalize_nick(raw_nick))
        peer = self._users.get(key)
        if peer is not None:
            return peer.principal, peer.nick
        account = await self._storage.account(key)
        if account is None:
            return None
        return account.id, account.name

    async def whois(self, asker: Peer, raw_nick: str, request_id: int) -> UserInfo:
        """The ``whois`` reply for a nickname: its login if it is online here, else its account
        (whose role only server moderators and admins see). Raises PeerError (INVALID_NICK,
        NO_SUCH_USER), StorageUnavailable.
        """
        key = nick_key(normalize_nick(raw_nick))
        peer = self._users.get(key)
        if peer is None:
            account = await self._storage.account(key)
            if account is None:
                raise PeerError(
                    ErrorCode.NO_SUCH_USER, f"No user named {raw_nick} is online or registered."
                )
            role = account.role.value if asker.role is not Role.USER else ""
            return UserInfo(id=request_id, nick=account.name, online=False, account=True, role=role)
        presence = self._presence[key]
        rooms = sorted(
            (self._rooms[room].name for room in peer.rooms if room in self._rooms),
            key=str.casefold,
        )
        return UserInfo(
            id=request_id,
            nick=peer.nick,
            online=True,
            account=bool(peer.account),
            role=peer.role.value if peer.account else "",
            away=presence.away,
            rooms=rooms[: limits.MAX_LISTED_ROOMS],
            connected_ms=peer.since_ms,
            idle_seconds=max(0, now_ms() - presence.active_ms) // 1000,
        )

    # --- rooms ---------------------------------------------------------------------------

    async def join(self, peer: Peer, raw_name: str, request_id: int) -> None:
        """Join (creating if allowed) and reply ``room``, then the room's latest messages as
        history, then live traffic. Raises PeerError (INVALID_ROOM, BANNED, NOT_PERMITTED).
        """
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key) or await self._live_room(key)
        if room is not None and peer in room.members:
            self._reply_room(peer, room, request_id)
            return
        if len(peer.rooms) >= limits.MAX_ROOMS_PER_USER:
            raise PeerError(
                ErrorCode.NOT_PERMITTED, f"You are in {len(peer.rooms)} rooms, the most allowed."
            )
        if room is None:
            room = await self._create_room(peer, normalize_room(raw_name))
        for target in sanction_keys(peer):
            if await self._storage.sanction(key, target, SanctionKind.BAN, now_ms()):
                raise PeerError(ErrorCode.BANNED, f"You are banned from {room.name}.")
        if peer.account and peer.principal == room.created_by:
            room.operators.add(peer.principal)
        if peer.account:
            await self._storage.add_member(
                key, peer.account, operator=peer.principal in room.operators
            )
        await self._load_mute(peer, room)
        async with self._in_order(key):
            records = await self._storage.history(key, limit=self._config.history_on_join)
            if self._users.get(peer.nick_key) is not peer:
                return  # gone while we waited
            # The last member may have left meanwhile, dropping the live room: bring it back
            # (or take the one another join loaded since).
            room = self._rooms.setdefault(key, room)
            self._reply_room(peer, room, request_id, joining=True)
            for record in records:
                peer.write(encode(as_event(record, history=True)))
            self._enter(peer, room)

    async def part(self, peer: Peer, raw_name: str) -> None:
        room = self._member_room(peer, raw_name)
        if peer.account:
            await self._storage.remove_member(room.key, peer.account)
        self._leave(peer, room, Left(room=room.name, nick=peer.nick))

    async def room_info(self, peer: Peer, raw_name: str, request_id: int) -> None:
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key)
        if room is not None:
            self._reply_room(peer, room, request_id)
            return
        record = await self._storage.room(key)
        if record is None:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {raw_name}.")
        peer.write(
            encode(
                RoomInfo(
                    id=request_id,
                    room=record.name,
                    topic=record.topic,
                    topic_by=record.topic_by,
                    members=0,
                )
            )
        )

    async def set_topic(self, peer: Peer, raw_name: str, text: str) -> None:
        room = self._member_room(peer, raw_name)
        check_topic(text)
        if not room.may_moderate(peer):
            raise PeerError(ErrorCode.NOT_PERMITTED, "Only the room's operators set its topic.")
        await self._storage.set_topic(room.key, text, peer.nick, now_ms())
        room.topic, room.topic_by = text, peer.nick
        self._listing.forget()
        self._bus.publish(room.key, encode(TopicChanged(room=room.name, text=text, by=peer.nick)))

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

    def _members_online(self, key: str) -> int:
        live = self._rooms.get(key)
        return len(live.members) if live is not None else 0

    def who(self, raw_name: str) -> list[str]:
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key)
        if room is None:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"Nobody is in {raw_name}.")
        return sorted((member.nick for member in room.members), key=str.casefold)

    # --- used by moderation --------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        return self._storage

    def user(self, key: str) -> Peer | None:
        """Who is online under this nickname key."""
        return self._users.get(key)

    async def room_named(self, raw_name: str) -> LiveRoom:
        """The live room of that name (loaded if need be); raises PeerError (INVALID_ROOM,
        NO_SUCH_ROOM).
        """
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key) or await self._live_room(key)
        if room is None:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {raw_name}.")
        return room

    def remove(self, peer: Peer, room: LiveRoom, left: Left) -> None:
        """Take ``peer`` out of ``room``, telling it and the room with ``left``."""
        self._leave(peer, room, left)

    # --- messages ------------------------------------------------------------------------

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
            room = self._member_room(sender, request.to)
            self.check_not_muted(sender, room)
            self._queue(NewMessage(room.key, sender.nick, sender.nick_key, room.name,
                                   request.text, request.msg_id), sender, request.id)  # fmt: skip
            return None
        recipient = self.find_online(request.to)
        if recipient is not None:
            away = self._presence[recipient.nick_key].away
            self._queue_private(sender, recipient.principal, recipient.nick, request, away)
            return None
        return self._submit_offline(sender, request)

    def check_not_muted(self, peer: Peer, room: LiveRoom) -> None:
        """Raises PeerError(MUTED) when ``peer`` may not speak (or share files) in ``room``."""
        if room.muted and any(room.is_muted(key, now_ms()) for key in sanction_keys(peer)):
            raise PeerError(ErrorCode.MUTED, f"You are muted in {room.name}.")

    async def _submit_offline(self, sender: Peer, request: Send) -> None:
        try:
            found = await self.resolve_user(request.to)
        except PeerError:
            found = None
        if found is None:
            raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {request.to} is online.")
        self._queue_private(sender, *found, request)

    def _queue_private(
        self, sender: Peer, principal: str, name: str, request: Send, away: str = ""
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
        self._queue(message, sender, request.id, away)

    def _queue(self, message: NewMessage, sender: Peer, request_id: int, away: str = "") -> None:
        if self._users.get(sender.nick_key) is sender:
            self._presence[sender.nick_key].active_ms = now_ms()
        self._enqueue(_Pending(message, sender, request_id, away))

    def post(self, message: NewMessage) -> None:
        """Store and deliver a message the server writes itself (a file's announcement), in
        order with everything else in its conversation. Its ``msg_id`` makes it idempotent.
        """
        self._enqueue(_Pending(message, None, -1))

    async def file_audience(self, peer: Peer, to: str) -> tuple[str, str, list[str]]:
        """Where a file shared by ``peer`` with ``to`` goes: its conversation, the name as
        shown, and the principal ids that may read it besides the sender (the room's members
        now, or the other user). Raises PeerError (NO_SUCH_ROOM, NOT_IN_ROOM, MUTED,
        INVALID_NICK, NO_SUCH_USER).
        """
        if is_room(to):
            room = self._member_room(peer, to)
            self.check_not_muted(peer, room)
            readers = [member.principal for member in room.members if member is not peer]
            return room.key, room.name, readers
        found = await self.resolve_user(to)
        if found is None:
            raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {to}.")
        principal, shown = found
        return private_conversation(peer.principal, principal), shown, [principal]

    async def conversation_of(self, peer: Peer, to: str) -> str:
        """The conversation ``to`` names for ``peer`` (membership not checked). Raises
        PeerError (INVALID_ROOM, INVALID_NICK, NO_SUCH_USER).
        """
        if is_room(to):
            return room_key(normalize_room(to))
        found = await self.resolve_user(to)
        if found is None:
            raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {to}.")
        return private_conversation(peer.principal, found[0])

    async def history(
        self, peer: Peer, to: str, request_id: int, *, after: int | None, before: int | None,
        limit: int,
    ) -> HistoryPage:  # fmt: skip
        """A page of a room's history (members only) or of a private conversation."""
        if is_room(to):
            room = self._member_room(peer, to)
            conversation, shown = room.key, room.name
        else:
            found = await self.resolve_user(to)
            if found is None:
                raise PeerError(ErrorCode.NO_SUCH_USER, f"No user named {to}.")
            conversation, shown = private_conversation(peer.principal, found[0]), found[1]
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

    async def unread(self, peer: Peer) -> tuple[list[UnreadCount], bool]:
        """The account's conversations with unread messages, rooms first, at most
        MAX_LISTED_UNREAD of them, and whether there were more.
        """
        counts = []
        entries = await self._storage.unread(peer.account)
        for entry in entries[: limits.MAX_LISTED_UNREAD]:
            if entry.conversation.startswith("dm:"):
                shown = await self._other_side(peer, entry.conversation)
            else:
                room = self._rooms.get(entry.conversation)
                record = room or await self._storage.room(entry.conversation)
                shown = record.name if record is not None else entry.conversation
            counts.append(UnreadCount(to=shown, count=entry.count, last_seq=entry.last_seq))
        return counts, len(entries) > limits.MAX_LISTED_UNREAD

    async def _other_side(self, peer: Peer, conversation: str) -> str:
        """The name of the other side of ``peer``'s private conversation: who is online with
        that id, else its account, else (a guest who has left) the name it last had there.
        """
        principals = conversation_principals(conversation)
        other = next((p for p in principals if p != peer.principal), peer.principal)
        online = self._principals.get(other)
        if online is not None:
            return online.nick
        account = await self._storage.account_by_id(other)
        if account is not None:
            return account.name
        for record in await self._storage.history(conversation, limit=1):
            return record.sender if record.sender != peer.nick else record.to
        return "?"

    async def mark_read(self, peer: Peer, to: str, seq: int) -> None:
        if is_room(to):
            conversation = self._member_room(peer, to).key
        else:
            conversation = await self.conversation_of(peer, to)
        await self._storage.mark_read(peer.account, conversation, seq)

    def _enqueue(self, item: _Pending) -> None:
        conversation = item.message.conversation
        lane = self._lanes.get(conversation)
        if lane is None:
            lane = self._lanes[conversation] = _Lane()
        lane.pending.append(item)
        if self._storage.serial_writes:
            if not self._draining_together:
                self._draining_together = True
                self._tasks.spawn(self._drain_together(), name="parley-commit")
        elif not lane.draining:
            lane.draining = True
            lane.users += 1
            self._tasks.spawn(self._drain(conversation, lane), name="parley-commit")

    async def _drain(self, conversation: str, lane: _Lane) -> None:
        """Store a conversation's queued messages until none is left, a batch at a time.

        Group commit: everything queued while a batch was being stored goes into the next one,
        so one storage round trip serves many messages of a busy conversation.
        """
        try:
            while lane.pending:
                async with lane.lock:
                    batch, lane.pending = lane.pending, []
                    async with self._commit_slots:
                        await self._commit(batch)
        finally:
            lane.draining = False
            self._release(conversation, lane)

    async def _drain_together(self) -> None:
        """Like :meth:`_drain`, for storage that writes one transaction at a time anyway
        (SQLite): every conversation with messages waiting goes into one batch, one commit,
        as long as its lane is free (a join may hold it: then it waits for the next batch).
        """
        try:
            while waiting := [(c, lane) for c, lane in self._lanes.items() if lane.pending]:
                held: list[tuple[str, _Lane]] = []
                try:
                    for index, (conversation, lane) in enumerate(waiting):
                        if index and lane.lock.locked():
                            continue
                        lane.users += 1
                        try:
                            await lane.lock.acquire()  # at once, but for the first one
                        except BaseException:
                            self._release(conversation, lane)
                            raise
                        held.append((conversation, lane))
                    batch = [item for _, lane in held for item in lane.pending]
                    for _, lane in held:
                        lane.pending = []
                    await self._commit(batch)
                finally:
                    for conversation, lane in held:
                        lane.lock.release()
                        self._release(conversation, lane)
        finally:
            self._draining_together = False

    @contextlib.asynccontextmanager
    async def _in_order(self, conversation: str) -> AsyncIterator[None]:
        """Hold ``conversation``'s lane: no batch of it is stored or published meanwhile."""
        lane = self._lanes.get(conversation)
        if lane is None:
            lane = self._lanes[conversation] = _Lane()
        lane.users += 1
        try:
            async with lane.lock:
                yield
        finally:
            self._release(conversation, lane)

    def _release(self, conversation: str, lane: _Lane) -> None:
        lane.users -= 1
        if not lane.users and not lane.pending:
            del self._lanes[conversation]

    async def _commit(self, batch: list[_Pending]) -> None:
        """Store one conversation's batch, publish what is new, answer the senders. Never
        raises but CancelledError (its senders are then told ``unavailable``).
        """
        try:
            with self._metrics.append_seconds.time():
                stored = await self._storage.append([item.message for item in batch])
        except StorageUnavailable as exc:
            if isinstance(exc, CommitUncertain):
                for item in batch:
                    self._doubt(item.message)
            self.health.failed(exc, messages=len(batch))
            self._refuse(batch, ErrorCode.UNAVAILABLE)
            return
        except asyncio.CancelledError:
            self._refuse(batch, ErrorCode.UNAVAILABLE)
            raise
        except Exception:
            log.exception("Bug: storing %d messages failed", len(batch))
            self._refuse(batch, ErrorCode.INTERNAL_ERROR)
            return
        self.health.succeeded()
        self._metrics.committed(len(batch), sum(not record.duplicate for record in stored))
        read: list[tuple[str, str, int]] = []
        for item, record in zip(batch, stored, strict=True):
            message = item.message
            # A retry of a message whose first commit ended in doubt was never published.
            identity = (message.conversation, message.sender_key, message.msg_id)
            if not record.duplicate or self._doubtful.pop(identity, False):
                try:
                    self._bus.publish(record.conversation, encode(as_event(record)))
                except Exception:
                    log.exception("Bug: publishing to %s failed", record.conversation)
                for principal in message.participants:
                    peer = self._principals.get(principal)
                    if peer is not None and peer.account:
                        mark = (peer.account, record.conversation, record.seq)
                        held = self._catching_up.get(peer)
                        (held if held is not None else read).append(mark)
            if item.sender is None:
                continue
            item.sender.write(
                encode(
                    Sent(
                        id=item.request_id,
                        seq=record.seq,
                        ts=record.ts,
                        duplicate=record.duplicate,
                        away=item.away,
                    )
                )
            )
        if read:
            # A private message shown to an online account counts as read: it is not delivered
            # again at the next login. Off the commit path; markers only move forward.
            self._spawn(self._mark_delivered(read))

    def _doubt(self, message: NewMessage) -> None:
        self._doubtful[(message.conversation, message.sender_key, message.msg_id)] = True
        while len(self._doubtful) > _MAX_DOUBTFUL:
            self._doubtful.popitem(last=False)

    def _refuse(self, batch: list[_Pending], code: ErrorCode) -> None:
        for item in batch:
            if item.sender is None:
                log.error("A file announcement was not stored: %s", item.message.msg_id)
                continue
            item.sender.write(
                encode(
                    Error(
                        id=item.request_id,
                        code=code,
                        message="The message could not be stored; send it again.",
                    )
                )
            )

    async def _mark_delivered(self, read: list[tuple[str, str, int]]) -> None:
        for account, conversation, seq in read:
            await self._storage.mark_read(account, conversation, seq)

    async def _missed_private(self, peer: Peer) -> dict[str, tuple[int, int]]:
        """The private conversations with messages that arrived while an account was offline:
        conversation -> (its read marker, its last message now).
        """
        return {
            entry.conversation: (entry.read_seq, entry.last_seq)
            for entry in await self._storage.unread(peer.account)
            if entry.conversation.startswith("dm:")
        }

    async def _missed_page(
        self, peer: Peer, missed: dict[str, tuple[int, int]]
    ) -> list[StoredMessage]:
        """The next page of what ``peer`` missed, at most _MISSED_PAGE_BYTES (or one message),
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

    async def _catch_up(
        self, peer: Peer, missed: dict[str, tuple[int, int]], page: list[StoredMessage]
    ) -> None:
        """Mark ``page`` (already sent) read, then send the rest of what ``peer`` missed a page
        at a time, each once the client has taken most of the one before, marking each read
        as it goes. Ends early when the connection does, when the client takes nothing for
        _CATCH_UP_STALL_SECONDS, or at shutdown: what was not sent stays unread.
        """
        try:
            while True:
                last = {r.conversation: r.seq for r in page}  # markers only move forward
                await self._mark_delivered([(peer.account, c, s) for c, s in last.items()])
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
                page = await self._missed_page(peer, missed)
                for record in page:
                    peer.write(encode(as_event(record, history=True)))
        finally:
            held = self._catching_up.pop(peer, None)
        if held and not peer.closed:
            await self._mark_delivered(held)

    async def stop(self, within_seconds: float) -> None:
        """Store what is queued, waiting up to ``within_seconds``; then cancel what is left
        (its senders are told ``unavailable``).
        """
        self._stopping = True
        if not await self._tasks.wait(within_seconds):
            log.warning(
                "Storage did not finish within %.1f s: %d conversations not stored",
                within_seconds,
                len(self._lanes),
            )
            await self._tasks.cancel()

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except StorageUnavailable as exc:
                self.health.failed(exc)

        self._tasks.spawn(run(), name="parley-read-markers")

    # --- revocation ----------------------------------------------------------------------

    async def still_valid(self, peer: Peer) -> bool:
        """Whether ``peer``'s login still stands: a guest's always; an account's while the
        account exists with the same id and the login's session has not been revoked. At most
        two storage reads.
        """
        if not peer.account:
            return True
        account = await self._storage.account(peer.account)
        if account is None or account.id != peer.principal:
            return False
        return await self._storage.session_account(peer.token_hash, now_ms()) == peer.account

    async def recheck(self, account_key: str) -> None:
        """Bring the login of an account that changed (in any process) in line: cut it when
        the account is gone or its session revoked, give it its new role otherwise.
        """
        peer = self._users.get(account_key)
        if peer is None or peer.account != account_key:
            return
        if not await self.still_valid(peer):
            self.revoke(peer)
            return
        account = await self._storage.account(account_key)
        if account is not None and account.role is not peer.role and not peer.closed:
            log.info(
                "%s is now %s",
                peer.nick,
                account.role.value,
                extra={"nick_key": peer.nick_key, "event": "role"},
            )
            peer.role = account.role
            peer.write(encode(Notice(text=f"Your role on this server is now {account.role}.")))

    def revoke(self, peer: Peer) -> None:
        """Cut a login that no longer stands, telling it why."""
        log.info(
            "Disconnected %s: login revoked",
            peer.nick,
            extra={"nick_key": peer.nick_key, "reason": "revoked"},
        )
        peer.close(ErrorCode.REVOKED)

    # --- delivery (called by the bus, for frames from any node) --------------------------

    def _deliver(self, conversation: str, frame: bytes) -> None:
        if self._delivering:
            self._deferred.append((conversation, frame))
            return
        self._delivering = True
        try:
            self._deliver_now(conversation, frame)
            while self._deferred:
                self._deliver_now(*self._deferred.popleft())
        finally:
            self._delivering = False

    def _deliver_now(self, conversation: str, frame: bytes) -> None:
        room = self._rooms.get(conversation)
        if room is not None:
            # A copy: a write can push a slow member over its limit, and cutting it off
            # removes it from the room while this loop runs. O(members), far below the writes.
            self._metrics.deliveries.inc(len(room.members))
            for peer, write in list(room.members.items()):
                try:
                    write(frame)
                except Exception as exc:
                    self._write_failed(peer, exc)
            return
        if conversation.startswith("dm:"):
            for principal in conversation_principals(conversation):
                user = self._principals.get(principal)
                if user is not None:
                    self._metrics.deliveries.inc()
                    try:
                        user.write(frame)
                    except Exception as exc:
                        self._write_failed(user, exc)
                elif principal in self._arriving:
                    self._arriving[principal].append((conversation, frame))

    def _write_failed(self, peer: Peer, exc: Exception) -> None:
        """One member's write raised: log it once and cut that member, not the delivery."""
        log.error("Bug: writing to %s failed; disconnecting it", peer.nick, exc_info=exc)
        try:
            peer.abort()
        except Exception:
            log.exception("Bug: disconnecting %s failed", peer.nick)
            self.logout(peer)

    # --- internals -----------------------------------------------------------------------

    def _member_room(self, peer: Peer, raw_name: str) -> LiveRoom:
        try:
            key = room_key(normalize_room(raw_name))
        except PeerError:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {raw_name}.") from None
        room = self._rooms.get(key)
        if room is None:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {raw_name} open.")
        if peer not in room.members:
            raise PeerError(ErrorCode.NOT_IN_ROOM, f"You are not in {room.name}.")
        return room

    def _reply_room(
        self, peer: Peer, room: LiveRoom, request_id: int, *, joining: bool = False
    ) -> None:
        info = RoomInfo(
            id=request_id,
            room=room.name,
            topic=room.topic,
            topic_by=room.topic_by,
            # Sent just before the joiner is added: count it already.
            members=len(room.members) + joining,
        )
        peer.write(encode(info))

    async def _live_room(self, key: str) -> LiveRoom | None:
        room = self._rooms.get(key)
        if room is not None:
            return room
        record = await self._storage.room(key)
        if record is None:
            return None
        # Another join may have loaded it while we waited.
        room = self._rooms.get(key)
        if room is None:
            room = self._rooms[key] = LiveRoom(
                key=key,
                name=record.name,
                topic=record.topic,
                topic_by=record.topic_by,
                created_by=record.created_by,
            )
        return room

    async def _create_room(self, peer: Peer, name: str) -> LiveRoom:
        policy = self._config.room_creation
        if (policy == "accounts" and not peer.account) or (
            policy == "moderators" and peer.role is Role.USER
        ):
            raise PeerError(ErrorCode.NOT_PERMITTED, f"You may not create rooms; {name} is new.")
        if peer.role is Role.USER:
            now = time.monotonic()
            # Both counted only when both allow: a refusal by one does not use up the other.
            if not self._rooms_by_principal.would_allow(peer.principal, now) or not (
                self._rooms_by_address.allow(address_group(peer.host), now)
            ):
                # Not rate-limited: that tells a client to retry shortly, and this lasts.
                raise PeerError(
                    ErrorCode.NOT_PERMITTED,
                    f"Too many new rooms from you or your address; {name} was not created. "
                    "Join an existing room, or try again in an hour.",
                )
            self._rooms_by_principal.allow(peer.principal, now)
        key = room_key(name)
        created = await self._storage.create_room(
            Room(key=key, name=name, created_by=peer.principal, created_ms=now_ms())
        )
        room = await self._live_room(key)
        if room is None:
            similar = await self._storage.room_like(name)
            if similar is not None:
                raise PeerError(
                    ErrorCode.ROOM_TAKEN, f"{name} looks like {similar.name}: join that room."
                )
            raise PeerError(ErrorCode.UNAVAILABLE)
        if created:
            self._listing.forget()
            room.operators.add(peer.principal)
            await self._storage.record_audit(
                ts=now_ms(), actor=peer.nick, action="create-room", room=name
            )
        return room

    async def _load_mute(self, peer: Peer, room: LiveRoom) -> None:
        for key in sanction_keys(peer):
            mute = await self._storage.sanction(room.key, key, SanctionKind.MUTE, now_ms())
            if mute is not None:
                room.muted[key] = mute.until_ms

    def _enter(self, peer: Peer, room: LiveRoom) -> None:
        room.members[peer] = peer.write
        peer.rooms.add(room.key)
        self._bus.publish(room.key, encode(Joined(room=room.name, nick=peer.nick)))

    def _leave(self, peer: Peer, room: LiveRoom, left: Left) -> None:
        if room.members.pop(peer, None) is None:
            return
        peer.rooms.discard(room.key)
        # The one who left sees it too: its client knows it is out.
        peer.write(encode(left))
        self._bus.publish(room.key, encode(left))
        if not peer.account:
            # A guest's rights end with it: the room it made has no operator until a server
            # moderator appoints one (``op``).
            room.operators.discard(peer.principal)
        if not room.members and room.key != room_key(GENERAL_ROOM):
            del self._rooms[room.key]
