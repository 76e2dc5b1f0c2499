"""The rooms live on this node: loading a room at its first join and dropping it when it
empties, creating rooms, joining and leaving, topics, and the mutes held in memory.

The record of each room and its memberships and sanctions are in storage; what is here is
what one node needs to deliver and to check a ``send`` without a storage round trip. Who is in
a room on the other nodes is in the roster (:class:`parley.bus.Roster`): ``who``, member
counts and big rooms' summaries add them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from parley.accounts import throttle
from parley.bus import Bus, Roster
from parley.clock import Clock
from parley.config import ServerConfig
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import (
    Joined,
    Left,
    MembersChanged,
    RoomInfo,
    TopicChanged,
    encode,
)
from parley.protocol.names import GENERAL_ROOM, name_skeleton, nick_key, normalize_room, room_key
from parley.protocol.text import check_topic
from parley.server.address_group import address_group
from parley.server.cluster_events import MembersCame, TopicSet, encode_event
from parley.server.commits import Commits
from parley.server.conversations import as_event
from parley.server.name_pages import name_page
from parley.server.presence import Presence
from parley.server.room_listing import RoomListing
from parley.server.rooms import LiveRoom, Peer, Write
from parley.server.sequencer import Sequencer
from parley.storage import Role, Room, SanctionKind, Storage

# How long the first page of a big room's ``who`` is kept (docs/protocol.md, "Big rooms").
FIRST_PAGE_SECONDS = 1.0


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


class LiveRooms:
    """Room key -> live room, for the rooms with members here (and #general, always)."""

    def __init__(
        self,
        storage: Storage,
        bus: Bus,
        config: ServerConfig,
        presence: Presence,
        commits: Commits,
        listing: RoomListing,
        clock: Clock,
        roster: Roster,
    ) -> None:
        self._storage = storage
        self._roster = roster
        self._clock = clock
        self._bus = bus
        self._config = config
        self._presence = presence
        self._commits = commits
        # Pages of the ``rooms`` listing, read again once a room or topic changes here.
        self._listing = listing
        self._rooms: dict[str, LiveRoom] = {}
        # Set by the hub: where a room's position in its messages is kept.
        self.sequencer: Sequencer | None = None
        # Set by the hub: a frame to a conversation's members on this node alone.
        self.deliver_here: Callable[[str, bytes], None] | None = None

    def get(self, key: str) -> LiveRoom | None:
        return self._rooms.get(key)

    def keep(self, room: LiveRoom) -> LiveRoom:
        """``room``, live again if it was dropped meanwhile (or the one loaded since)."""
        return self._rooms.setdefault(room.key, room)

    def members(self, key: str) -> dict[Peer, Write] | None:
        """The members of the live room ``key`` with their writes; None when it is not live."""
        room = self._rooms.get(key)
        return room.members if room is not None else None

    def member_count(self, key: str) -> int:
        """The number of members of room ``key`` on this node."""
        room = self._rooms.get(key)
        return len(room.members) if room is not None else 0

    def members_in_cluster(self, key: str) -> int:
        """The number of members of room ``key`` on every node (the others' about a second
        old). O(1).
        """
        return self.member_count(key) + self._roster.elsewhere(key)

    def count(self, room: LiveRoom) -> int:
        """The number of members of ``room`` on every node. O(1)."""
        return len(room.members) + self._roster.elsewhere(room.key)

    def local_members(self) -> dict[str, list[str]]:
        """Room key -> the nicknames in it on this node, for the roster."""
        return {key: [peer.nick for peer in room.members] for key, room in self._rooms.items()}

    def names_of(self, peer: Peer) -> list[str]:
        """The names of the rooms ``peer`` is in."""
        return [self._rooms[key].name for key in peer.rooms if key in self._rooms]

    async def load(self, key: str) -> LiveRoom | None:
        """The live room ``key``, loaded from storage if need be; None when there is none."""
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

    async def named(self, raw_name: str) -> LiveRoom:
        """The live room of that name (loaded if need be); raises PeerError (INVALID_ROOM,
        NO_SUCH_ROOM).
        """
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key) or await self.load(key)
        if room is None:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {raw_name}.")
        return room

    def member_room(self, peer: Peer, raw_name: str) -> LiveRoom:
        """The live room ``peer`` names, which it must be in. Raises PeerError (NO_SUCH_ROOM,
        NOT_IN_ROOM).
        """
        try:
            key = room_key(normalize_room(raw_name))
        except PeerError:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {raw_name}.") from None
        room = self._rooms.get(key)
        if room is None:
            # Nobody is in it here, so neither is the user: say what to do about it.
            raise PeerError(
                ErrorCode.NO_SUCH_ROOM, f"You are not in {raw_name}: join it first (/join)."
            )
        if peer not in room.members:
            raise PeerError(
                ErrorCode.NOT_IN_ROOM, f"You are not in {room.name}: join it first (/join)."
            )
        return room

    def check_not_muted(self, peer: Peer, room: LiveRoom) -> None:
        """Raises PeerError(MUTED) when ``peer`` may not speak (or share files) in ``room``."""
        if room.muted and any(
            room.is_muted(key, self._clock.now_ms()) for key in sanction_keys(peer)
        ):
            raise PeerError(ErrorCode.MUTED, f"You are muted in {room.name}.")

    async def load_mute(self, peer: Peer, room: LiveRoom, *, logging_in: bool = False) -> None:
        keys = sanction_keys(peer)
        if logging_in and not peer.account:
            # A guest's principal id is minted for this login: nothing can be held against it
            # yet, only against its name. One storage round trip less per guest login.
            keys = [guest_sanction_key(peer.nick)]
        for key in keys:
            mute = await self._storage.sanction(
                room.key, key, SanctionKind.MUTE, self._clock.now_ms()
            )
            if mute is not None:
                room.muted[key] = mute.until_ms

    async def join(self, peer: Peer, raw_name: str, request_id: int) -> None:
        """Join (creating if allowed) and reply ``room``, then the room's latest messages as
        history, then live traffic. Raises PeerError (INVALID_ROOM, BANNED, NOT_PERMITTED).
        """
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key) or await self.load(key)
        if room is not None and peer in room.members:
            self._reply(peer, room, request_id)
            return
        if len(peer.rooms) >= limits.MAX_ROOMS_PER_USER:
            raise PeerError(
                ErrorCode.NOT_PERMITTED, f"You are in {len(peer.rooms)} rooms, the most allowed."
            )
        if room is None:
            room = await self._create(peer, normalize_room(raw_name))
        for target in sanction_keys(peer):
            if await self._storage.sanction(key, target, SanctionKind.BAN, self._clock.now_ms()):
                raise PeerError(ErrorCode.BANNED, f"You are banned from {room.name}.")
        if peer.account and peer.principal == room.created_by:
            room.operators.add(peer.principal)
        if peer.account:
            await self._storage.add_member(
                key, peer.account, operator=peer.principal in room.operators
            )
        await self.load_mute(peer, room)
        async with self._commits.in_order(key):
            records = await self._storage.history(key, limit=self._config.history_on_join)
            if self.sequencer is not None:
                # Members here see every message up to the last one the joiner is shown.
                seen = records[-1].seq if records else None
                await self.sequencer.catch_up(key, seen if self._config.history_on_join else None)
            if not self._presence.is_current(peer):
                return  # gone while we waited
            # The last member may have left meanwhile, dropping the live room: bring it back
            # (or take the one another join loaded since).
            room = self._rooms.setdefault(key, room)
            self._reply(peer, room, request_id, joining=True)
            for record in records:
                peer.write(encode(as_event(record, history=True)))
            self.enter(peer, room)

    async def part(self, peer: Peer, raw_name: str) -> None:
        room = self.member_room(peer, raw_name)
        if peer.account:
            await self._storage.remove_member(room.key, peer.account)
        self.leave(peer, room, Left(room=room.name, nick=peer.nick))

    async def remember(self, peer: Peer) -> None:
        """A guest just registered: keep its rooms (and operator rights) with the account."""
        for key in sorted(peer.rooms):
            room = self._rooms.get(key)
            operator = room is not None and peer.principal in room.operators
            await self._storage.add_member(key, peer.account, operator=operator)

    async def info(self, peer: Peer, raw_name: str, request_id: int) -> None:
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key)
        if room is not None:
            self._reply(peer, room, request_id)
            return
        record = await self._storage.room(key)
        if record is None:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"There is no room {raw_name}.")
        info = RoomInfo(
            id=request_id,
            room=record.name,
            topic=record.topic,
            topic_by=record.topic_by,
            members=self._roster.elsewhere(key),
        )
        peer.write(encode(info))

    async def set_topic(self, peer: Peer, raw_name: str, text: str) -> None:
        room = self.member_room(peer, raw_name)
        check_topic(text)
        if not room.may_moderate(peer):
            raise PeerError(ErrorCode.NOT_PERMITTED, "Only the room's operators set its topic.")
        await self._storage.set_topic(room.key, text, peer.nick, self._clock.now_ms())
        room.topic, room.topic_by = text, peer.nick
        self._listing.forget()
        self._bus.announce(encode_event(TopicSet(room=room.key, text=text, by=peer.nick)))
        self._bus.publish(room.key, encode(TopicChanged(room=room.name, text=text, by=peer.nick)))

    async def who(self, raw_name: str, after: str, limit: int) -> tuple[list[str], str, int]:
        """One page of the members of the room on every node (see parley.server.name_pages),
        its ``next``, and how many members it has. O(members log limit), and one read of the
        roster. Raises PeerError(NO_SUCH_ROOM).
        """
        key = room_key(normalize_room(raw_name))
        room = self._rooms.get(key)
        now = self._clock.monotonic()
        kept = room.first_page if room is not None else None
        if (
            room is not None
            and not after
            and kept is not None
            and kept[1] == limit
            and now - kept[0] < FIRST_PAGE_SECONDS
        ):
            # Everyone coming into a big room asks for its first page: one walk of the
            # members a second serves them all, not one each.
            return kept[2], kept[3], self.count(room)
        # The pages after the first may share a read of the other nodes (a second old at most).
        elsewhere = await self._roster.members_elsewhere(key, fresh=not after)
        room = self._rooms.get(key)
        if room is None and not elsewhere:
            raise PeerError(ErrorCode.NO_SUCH_ROOM, f"Nobody is in {raw_name}.")
        members = room.members if room is not None else {}
        if elsewhere:
            names = {member.nick_key: member.nick for member in members}
            for nick in elsewhere:
                names.setdefault(nick_key(nick), nick)
            page, following = name_page(names.items(), after, limit)
            total = len(names)
        else:
            pairs = ((member.nick_key, member.nick) for member in members)
            page, following = name_page(pairs, after, limit)
            total = len(members)
        if room is not None and not after and self.quiet(total):
            room.first_page = (now, limit, page, following)
        return page, following, total

    def enter(self, peer: Peer, room: LiveRoom) -> None:
        room.members[peer] = peer.write
        peer.rooms = (*peer.rooms, room.key)
        self._roster.joined(room.key, peer.nick)
        joined = encode(Joined(room=room.name, nick=peer.nick))
        if self.quiet(self.count(room)):
            # The joiner alone hears of it at once (its client opens the room); the others
            # in the next summary. O(1) per join, not O(members).
            peer.write(joined)
            room.joined_since += 1
            self._summarize_later(room)
        else:
            self._bus.publish(room.key, joined)

    def leave(self, peer: Peer, room: LiveRoom, left: Left) -> None:
        """Take ``peer`` out of ``room``, telling it and the room with ``left`` (a big room
        without a reason: in the next summary).
        """
        members_before = self.count(room)
        if room.members.pop(peer, None) is None:
            return
        self._roster.left(room.key, peer.nick)
        peer.rooms = tuple(key for key in peer.rooms if key != room.key)
        # The one who left sees it too: its client knows it is out.
        peer.write(encode(left))
        if left.reason or not self.quiet(members_before):
            # A kick or ban is news however big the room: moderators act one at a time.
            self._bus.publish(room.key, encode(left))
        else:
            room.left_since += 1
            self._summarize_later(room)
        if not peer.account:
            # A guest's rights end with it: the room it made has no operator until a server
            # moderator appoints one (``op``).
            room.operators.discard(peer.principal)
        if not room.members and room.key != room_key(GENERAL_ROOM):
            del self._rooms[room.key]
            if self.sequencer is not None:
                self.sequencer.forget(room.key)

    def quiet(self, members: int) -> bool:
        """A room of ``members`` here hears of joins and parts as summaries."""
        return members > self._config.room_announce_limit

    def _summarize_later(self, room: LiveRoom) -> None:
        """Send ``room`` its ``members`` summary in room_summary_seconds, once for every join
        and part until then: a storm of them costs each member one frame per period.
        """
        if room.summary_due:
            return
        room.summary_due = True
        asyncio.get_running_loop().call_later(
            self._config.room_summary_seconds, self._summarize, room
        )

    def came_elsewhere(self, room: LiveRoom, joined: int, left: int) -> None:
        """Another node's summary of ``room``: its members here hear of it in the next one."""
        room.joined_elsewhere += joined
        room.left_elsewhere += left
        self._summarize_later(room)

    def _summarize(self, room: LiveRoom) -> None:
        room.summary_due = False
        joined, left = room.joined_since, room.left_since
        if joined or left:
            # The other nodes' members count them in their next summaries.
            self._bus.announce(encode_event(MembersCame(room=room.key, joined=joined, left=left)))
        joined += room.joined_elsewhere
        left += room.left_elsewhere
        room.joined_since = room.left_since = room.joined_elsewhere = room.left_elsewhere = 0
        if self._rooms.get(room.key) is not room or not room.members:
            return  # dropped meanwhile: nobody to tell
        if self.deliver_here is None:
            return
        summary = MembersChanged(room=room.name, members=self.count(room), joined=joined, left=left)
        self.deliver_here(room.key, encode(summary))

    def leave_all(self, peer: Peer) -> None:
        """``peer`` logged out: tell the rooms it was in."""
        for key in list(peer.rooms):
            room = self._rooms.get(key)
            if room is not None:
                self.leave(peer, room, Left(room=room.name, nick=peer.nick))

    def _reply(self, peer: Peer, room: LiveRoom, request_id: int, *, joining: bool = False) -> None:
        # Sent just before the joiner is added: count it already.
        members = self.count(room) + joining
        info = RoomInfo(
            id=request_id,
            room=room.name,
            topic=room.topic,
            topic_by=room.topic_by,
            members=members,
            quiet=self.quiet(members),
        )
        peer.write(encode(info))

    async def _create(self, peer: Peer, name: str) -> LiveRoom:
        policy = self._config.room_creation
        if (policy == "accounts" and not peer.account) or (
            policy == "moderators" and peer.role is Role.USER
        ):
            raise PeerError(ErrorCode.NOT_PERMITTED, f"You may not create rooms; {name} is new.")
        if peer.role is Role.USER:
            now = self._clock.now_ms()
            by, from_address = throttle.room_keys(peer.principal, address_group(peer.host))
            # Counted in storage, for every node; both only when both allow: a refusal by one
            # does not use up the other.
            limits = [
                (by, self._config.rooms_per_principal_per_hour),
                (from_address, self._config.rooms_per_address_per_hour),
            ]
            if not await self._storage.take_window_slots(
                limits, now, now - throttle.LIMIT_WINDOW_MS
            ):
                # Not rate-limited: that tells a client to retry shortly, and this lasts.
                raise PeerError(
                    ErrorCode.NOT_PERMITTED,
                    f"Too many new rooms from you or your address; {name} was not created. "
                    "Join an existing room, or try again in an hour.",
                )
        key = room_key(name)
        created = await self._storage.create_room(
            Room(key=key, name=name, created_by=peer.principal, created_ms=self._clock.now_ms())
        )
        room = await self.load(key)
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
                ts=self._clock.now_ms(), actor=peer.nick, action="create-room", room=name
            )
        return room
