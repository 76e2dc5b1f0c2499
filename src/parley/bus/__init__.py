"""The seams between server nodes.

:class:`Bus`: every frame for a conversation goes out through it. The hub publishes encoded
frames here instead of writing to its own connections directly; every node's hub (this one
included) receives them through its subscription and writes them to its local members. Room
state that changed on one node (a topic, a mute, a kick) travels to the others as an event.

:class:`Directory`: who is online on any node, so that a nickname is held once in the whole
cluster and a private message finds its recipient wherever it is connected.

One module per implementation: in-process (``local.py``) and Redis (``redis.py``,
``redis_directory.py``).
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


class BusUnavailable(Exception):
    """The bus could not be reached at start; the message names the setting."""
