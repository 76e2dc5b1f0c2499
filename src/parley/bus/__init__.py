"""The seams between server nodes.

:class:`Bus`: every frame for a conversation goes out through it. The hub publishes encoded
frames here instead of writing to its own connections directly; every node's hub (this one
included) receives them through its subscription and writes them to its local members. Room
state that changed on one node (a topic, a mute, a kick) travels to the others as an event.

:class:`Directory`: who is online on any node, so that a nickname is held once in the whole
cluster and a private message finds its recipient wherever it is connected.

:class:`Roster`: who is in which room on the other nodes, so that ``who``, a room's member
count and a big room's summaries count the whole cluster.

One module per implementation: in-process (``local.py``) and Redis (``redis.py``,
``redis_directory.py``, ``redis_roster.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

# (conversation, frame, seq): seq is the message's number in its conversation, 0 for a frame
# that is not a stored message (joins, parts, topics).
Delivery = Callable[[str, bytes, int], None]
# An encoded event from another node.
EventHandler = Callable[[bytes], None]
# The link to the other nodes went down (False, with why) or came back (True).
LinkHandler = Callable[[bool, str], None]


class Bus(Protocol):
    @property
    def ordered(self) -> bool:
        """True when frames arrive in the order they were published (one process): the hub
        then needs no sequencing of its own. False when they may come late, out of order or
        not at all (several nodes): gaps are filled from storage, by seq.
        """
        ...

    def subscribe(self, deliver: Delivery) -> None:
        """Call ``deliver(conversation, frame, seq)`` for every frame published on any node."""
        ...

    def publish(self, conversation: str, frame: bytes, seq: int = 0) -> None:
        """Send an encoded frame to every node's subscribers, this one's at once.

        Never blocks: an implementation that needs the network queues and sends from its own task.
        """
        ...

    def on_event(self, handler: EventHandler) -> None:
        """Call ``handler(event)`` for every event another node announces."""
        ...

    def announce(self, event: bytes) -> None:
        """Send an encoded event to the other nodes (not this one). Never blocks."""
        ...

    def on_link(self, handler: LinkHandler) -> None:
        """Call ``handler`` when the link to the other nodes goes down or comes back."""
        ...

    async def start(self) -> None:
        """Connect; raises BusUnavailable naming the setting when it cannot."""
        ...

    async def stop(self) -> None:
        """Send what is queued (briefly) and disconnect."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteUser:
    """Someone online on another node."""

    principal: str
    nick: str
    node: str


class Directory(Protocol):
    @property
    def node(self) -> str:
        """This node's id."""
        ...

    async def claim(self, nick_key: str, skeleton: str, principal: str, nick: str) -> str | None:
        """Hold the nickname (and its look-alikes) for ``principal`` in the whole cluster.
        None when held; else the name of whoever holds it on a live node. Bounded: when the
        directory cannot be reached, the claim is allowed (and logged once).
        """
        ...

    async def release(self, nick_key: str, skeleton: str, principal: str, nick: str) -> None:
        """Let the nickname go (only if ``principal`` holds it). Bounded; faults are logged."""
        ...

    async def find(self, nick_key: str) -> RemoteUser | None:
        """Who holds this nickname on a live node other than this one; None when nobody (or
        the directory cannot be reached).
        """
        ...

    async def online(self) -> list[str]:
        """The nicknames online on the other live nodes (unsorted)."""
        ...

    async def start(self, local_users: Callable[[], list[tuple[str, str, str, str]]]) -> None:
        """Begin the node's lease; ``local_users`` gives (nick_key, skeleton, principal, nick)
        of everyone online here, written again when the link comes back.
        """
        ...

    async def stop(self) -> None: ...


# The members of each room live on this node: room key -> their nicknames.
LocalRooms = Callable[[], dict[str, list[str]]]


class Roster(Protocol):
    """The members of each room on the other live nodes. This node tells it of its own
    members' joins and parts; the others' are read from it.
    """

    def joined(self, room: str, nick: str) -> None:
        """``nick`` joined ``room`` on this node. Never blocks: written from a task."""
        ...

    def left(self, room: str, nick: str) -> None:
        """``nick`` left ``room`` on this node. Never blocks."""
        ...

    def elsewhere(self, room: str) -> int:
        """How many members ``room`` has on the other live nodes, as last read (at most
        about a second old). O(1).
        """
        ...

    async def members_elsewhere(self, room: str, *, fresh: bool = True) -> list[str]:
        """The nicknames in ``room`` on the other live nodes (unsorted; not to be changed);
        empty when the roster cannot be reached. Bounded. Read now when ``fresh``, else
        possibly as read up to about a second ago (for the pages of ``who`` after the first).
        """
        ...

    async def start(self, local_rooms: LocalRooms) -> None:
        """Begin; ``local_rooms`` gives this node's members, written again when the link
        comes back (Redis may have lost them).
        """
        ...

    async def stop(self) -> None:
        """Forget this node's members at once: the others stop counting them."""
        ...


class BusUnavailable(Exception):
    """The bus could not be reached at start; the message names the setting."""
