"""The single-node bus: delivery is a direct call within this process."""

from __future__ import annotations

from parley.bus import Delivery


class LocalBus:
    """Publishing calls every subscriber at once, in the publisher's stack. O(subscribers)."""

    def __init__(self) -> None:
        self._subscribers: list[Delivery] = []

    def subscribe(self, deliver: Delivery) -> None:
        self._subscribers.append(deliver)

    def publish(self, conversation: str, frame: bytes) -> None:
        for deliver in self._subscribers:
            deliver(conversation, frame)
