"""A room as one node holds it in memory: who is in it, who runs it, who is muted.

The record of a room (name, topic, retention) is in storage; this is the live part, loaded when
someone joins and dropped when the last member leaves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from parley.protocol.errors import ErrorCode
from parley.storage import Role

Write = Callable[[bytes], None]

# How much each role may do; a moderator action needs a higher rank than its target's.
RANK = {Role.USER: 0, Role.MODERATOR: 1, Role.ADMIN: 2}


class Peer(Protocol):
    """What the hub needs of a logged-in connection."""

    nick: str
    nick_key: str
    # Whom rights and data belong to: the account's id, or a guest id minted for this login.
    principal: str
    role: Role
    # The account key when logged in to an account, "" for a guest.
    account: str
    # Session token hash of this login, "" when none.
    token_hash: str
    host: str
    # When this login began, in ms since the epoch.
    since_ms: int
    # Keys of the rooms this peer is in: a tuple, replaced on each join and part (at most
    # 100, and usually one: a set is 216 bytes, a tuple of one 48, on every connection).
    rooms: tuple[str, ...]

    @property
    def closed(self) -> bool:
        """The connection has ended (or is ending)."""
        ...

    def write(self, frame: bytes) -> None:
        """Queue bytes for the client without blocking; a closed connection ignores them."""
        ...

    def queued_bytes(self) -> int:
        """Bytes written but not yet taken by the client."""
        ...

    def close(self, code: ErrorCode | None = None, detail: str = "") -> None:
        """Leave the chat, tell the client why (if ``code``), flush what is queued, close."""

    def abort(self) -> None:
        """Drop the connection at once (it logs out)."""
        ...


@dataclasses.dataclass(slots=True, eq=False)
class LiveRoom:
    key: str
    name: str
    topic: str = ""
    topic_by: str = ""
    # The principal id that created the room: an account runs it for good, a guest while it is
    # online (its id is never anyone's again).
    created_by: str = ""
    # Member -> that member's write function, so delivering to a room is one C-level call per
    # member: no lookup, no coroutine, no per-member encoding.
    members: dict[Peer, Write] = dataclasses.field(default_factory=dict)
    # Principal ids of operators: accounts from storage, and a guest who created the room
    # (for as long as it is online).
    operators: set[str] = dataclasses.field(default_factory=set)
    # Principal id -> end of the mute in ms since the epoch (None: until lifted).
    muted: dict[str, int | None] = dataclasses.field(default_factory=dict)
    # In a room past room_announce_limit: joins and parts since the last ``members`` summary,
    # and whether that summary is scheduled.
    joined_since: int = 0
    left_since: int = 0
    # The same on the other nodes, as they announced them.
    joined_elsewhere: int = 0
    left_elsewhere: int = 0
    summary_due: bool = False
    # The first page of ``who`` in a big room, kept a second: (when, limit, names, next).
    first_page: tuple[float, int, list[str], str] | None = None

    def is_muted(self, key: str, now_ms: int) -> bool:
        if key not in self.muted:
            return False
        until = self.muted[key]
        if until is not None and until <= now_ms:
            del self.muted[key]
            return False
        return True

    def may_moderate(self, actor: Peer) -> bool:
        """Room operators and server moderators and admins run a room."""
        return actor.role is not Role.USER or actor.principal in self.operators
