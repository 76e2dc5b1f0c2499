"""Who is online on this node: nicknames and their look-alikes, principals, away and idle
times, and whether a login still stands.

Kept in memory and ended with each login. Nicknames are claimed here for the time a login
takes to come online, so that two logins of look-alike names cannot both get in; the
directory (:mod:`parley.bus`) holds them across nodes, and answers for users on other nodes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator

from parley.bus import Directory
from parley.bus.local import LocalDirectory
from parley.clock import Clock
from parley.protocol import limits
from parley.protocol.errors import ErrorCode, PeerError
from parley.protocol.messages import Notice, UserInfo, encode
from parley.protocol.names import name_skeleton, nick_key, normalize_nick
from parley.protocol.text import check_away
from parley.server.rooms import Peer
from parley.storage import Role, Storage

# Logged under the hub's name, as before it was split: log lines and filters stay the same.
log = logging.getLogger("parley.server.hub")


@dataclasses.dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a nickname stands for: its principal id, the name as spelt, and whether it is
    online (an offline account gets private messages at its next login).
    """

    principal: str
    nick: str
    online: bool


@dataclasses.dataclass(slots=True)
class Activity:
    """What ``whois`` tells of an online user beyond its connection."""

    # When it last sent a chat message (or logged in), in ms since the epoch.
    active_ms: int
    away: str = ""


class Presence:
    """The users online here, by nickname key, by principal id and by name skeleton."""

    def __init__(self, storage: Storage, clock: Clock, directory: Directory | None = None) -> None:
        self._storage = storage
        self._clock = clock
        # Who is online on other nodes; nobody, with one node.
        self._directory: Directory = directory or LocalDirectory()
        self._users: dict[str, Peer] = {}
        # The same users by principal id: private messages and rights go by this.
        self._principals: dict[str, Peer] = {}
        # Nickname key -> activity, for exactly the users in _users.
        self._activity: dict[str, Activity] = {}
        # Name skeleton -> user, for exactly the users in _users: no two online names look alike.
        self._look_alikes: dict[str, Peer] = {}
        # Nickname keys and skeletons claimed by logins on their way in.
        self._claimed_names: set[str] = set()

    def user(self, key: str) -> Peer | None:
        """Who is online under this nickname key."""
        return self._users.get(key)

    def is_online(self, key: str) -> bool:
        return key in self._users

    def is_current(self, peer: Peer) -> bool:
        """``peer`` is online (not gone, nor replaced by a later login of its name)."""
        return self._users.get(peer.nick_key) is peer

    def by_principal(self, principal: str) -> Peer | None:
        return self._principals.get(principal)

    def entries(self) -> list[tuple[str, str, str, str]]:
        """(nick_key, skeleton, principal, nick) of everyone online here."""
        return [
            (peer.nick_key, name_skeleton(peer.nick), peer.principal, peer.nick)
            for peer in self._users.values()
        ]

    def everyone(self) -> list[Peer]:
        return list(self._users.values())

    def online(self) -> list[str]:
        """Nicknames online, sorted case-insensitively. O(users log users)."""
        return sorted((peer.nick for peer in self._users.values()), key=str.casefold)

    def online_pairs(self) -> Iterator[tuple[str, str]]:
        """(nickname key, nickname) of everyone online on this node."""
        return ((key, peer.nick) for key, peer in self._users.items())

    def find_online(self, nick: str) -> Peer | None:
        try:
            return self._users.get(nick_key(normalize_nick(nick)))
        except PeerError:
            return None

    @contextlib.contextmanager
    def claim(self, peer: Peer) -> Iterator[None]:
        """Hold ``peer``'s nickname (and its look-alikes) while its login completes. Raises
        PeerError(NICK_TAKEN) when someone online or arriving has it or one like it.
        """
        key = peer.nick_key
        skeleton = name_skeleton(peer.nick)
        holder = self._users.get(key)
        if holder is not None and peer.account and holder.principal == peer.principal:
            # The owner, with the right password: not someone else's name, their own session.
            raise PeerError(
                ErrorCode.NICK_TAKEN,
                f"{peer.nick} is already logged in on another connection (one per account): "
                "/exit there, or wait for that connection to end, then log in again.",
            )
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
        claims = {key, skeleton}
        self._claimed_names |= claims
        try:
            yield
        finally:
            self._claimed_names -= claims

    def add(self, peer: Peer) -> None:
        """Put ``peer`` online; its name must be claimed (:meth:`claim`)."""
        self._users[peer.nick_key] = peer
        self._principals[peer.principal] = peer
        self._look_alikes[name_skeleton(peer.nick)] = peer
        self._activity[peer.nick_key] = Activity(active_ms=peer.since_ms)

    def remove(self, peer: Peer) -> bool:
        """Take ``peer`` offline; False when it was not online (gone already, or replaced)."""
        if not self.is_current(peer):
            return False
        del self._users[peer.nick_key]
        del self._activity[peer.nick_key]
        if self._principals.get(peer.principal) is peer:
            del self._principals[peer.principal]
        del self._look_alikes[name_skeleton(peer.nick)]
        return True

    def set_away(self, peer: Peer, text: str) -> None:
        """Mark ``peer`` away with ``text``; blank text marks it back. Raises
        PeerError(INVALID_TEXT).
        """
        check_away(text)
        activity = self._activity.get(peer.nick_key)
        if activity is not None and self.is_current(peer):
            activity.away = text if text.strip() else ""

    def away(self, peer: Peer) -> str:
        """The away text of ``peer``, who is online."""
        return self._activity[peer.nick_key].away

    def spoke(self, peer: Peer) -> None:
        """``peer`` sent a chat message: it is not idle."""
        if self.is_current(peer):
            self._activity[peer.nick_key].active_ms = self._clock.now_ms()

    async def resolve_user(self, raw_nick: str) -> tuple[str, str] | None:
        """The principal id a nickname stands for now, with the name as spelt: whoever is
        online under it, else the account of that name. None when neither: a guest who has
        left is no one, and its id is never anyone's again. Raises PeerError(INVALID_NICK).
        """
        found = await self.resolve_recipient(raw_nick)
        return None if found is None else (found.principal, found.nick)

    async def resolve_recipient(self, raw_nick: str) -> Recipient | None:
        """Like :meth:`resolve_user`, also telling whether the user is online (on any node)."""
        key = nick_key(normalize_nick(raw_nick))
        peer = self._users.get(key)
        if peer is not None:
            return Recipient(peer.principal, peer.nick, online=True)
        remote = await self._directory.find(key)
        if remote is not None:
            return Recipient(remote.principal, remote.nick, online=True)
        account = await self._storage.account(key)
        if account is None:
            return None
        return Recipient(account.id, account.name, online=False)

    async def whois(
        self, asker: Peer, raw_nick: str, request_id: int, rooms_of: Callable[[Peer], list[str]]
    ) -> UserInfo:
        """The ``whois`` reply for a nickname: its login if it is online here (in the rooms
        ``rooms_of`` names), else its account (whose role only server moderators and admins
        see). Raises PeerError (INVALID_NICK, NO_SUCH_USER), StorageUnavailable.
        """
        key = nick_key(normalize_nick(raw_nick))
        peer = self._users.get(key)
        remote = await self._directory.find(key) if peer is None else None
        if remote is not None:
            # Online on another node: what this one knows of it.
            account = await self._storage.account(key)
            registered = account is not None and account.id == remote.principal
            return UserInfo(id=request_id, nick=remote.nick, online=True, account=registered)
        if peer is None:
            account = await self._storage.account(key)
            if account is None:
                raise PeerError(
                    ErrorCode.NO_SUCH_USER, f"No user named {raw_nick} is online or registered."
                )
            role = account.role.value if asker.role is not Role.USER else ""
            return UserInfo(id=request_id, nick=account.name, online=False, account=True, role=role)
        activity = self._activity[key]
        rooms = sorted(rooms_of(peer), key=str.casefold)
        return UserInfo(
            id=request_id,
            nick=peer.nick,
            online=True,
            account=bool(peer.account),
            role=peer.role.value if peer.account else "",
            away=activity.away,
            rooms=rooms[: limits.MAX_LISTED_ROOMS],
            connected_ms=peer.since_ms,
            idle_seconds=max(0, self._clock.now_ms() - activity.active_ms) // 1000,
        )

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
        return (
            await self._storage.session_account(peer.token_hash, self._clock.now_ms())
            == peer.account
        )

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
