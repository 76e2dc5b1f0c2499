"""The single-node bus and directory: delivery is a direct call within this process, and
nobody is online anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from parley.bus import Delivery, EventHandler, LinkHandler, LocalRooms, RemoteUser


class LocalBus:
    """Publishing calls every subscriber at once, in the publisher's stack. O(subscribers)."""

    def __init__(self) -> None:
        self._subscribers: list[Delivery] = []

    @property
    def ordered(self) -> bool:
        return True

    def subscribe(self, deliver: Delivery) -> None:
        self._subscribers.append(deliver)

    def publish(self, conversation: str, frame: bytes, seq: int = 0) -> None:
        for deliver in self._subscribers:
            deliver(conversation, frame, seq)

    def on_event(self, handler: EventHandler) -> None:
        """There are no other nodes: no event ever comes."""

    def announce(self, event: bytes) -> None:
        """There are no other nodes to tell."""

    def on_link(self, handler: LinkHandler) -> None:
        """There is no link to lose."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class LocalDirectory:
    """One node: the hub's own presence is the whole directory."""

    @property
    def node(self) -> str:
        return "local"

    async def claim(self, nick_key: str, skeleton: str, principal: str, nick: str) -> str | None:
        return None

    async def release(self, nick_key: str, skeleton: str, principal: str, nick: str) -> None:
        pass

    async def find(self, nick_key: str) -> RemoteUser | None:
        return None

    async def online(self) -> list[str]:
        return []

    async def start(self, local_users: Callable[[], list[tuple[str, str, str, str]]]) -> None:
        pass

    async def stop(self) -> None:
        pass


class LocalRoster:
    """One node: the live rooms' own members are every member there is."""

    def joined(self, room: str, nick: str) -> None:
        pass

    def left(self, room: str, nick: str) -> None:
        pass

    def elsewhere(self, room: str) -> int:
        return 0

    async def members_elsewhere(self, room: str, *, fresh: bool = True) -> list[str]:
        return []

    async def start(self, local_rooms: LocalRooms) -> None:
        pass

    async def stop(self) -> None:
        pass
