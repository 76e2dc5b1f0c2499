"""The seam between server nodes: every frame for a conversation goes out through a :class:`Bus`.

The hub publishes encoded frames here instead of writing to its own connections directly; every
node's hub (this one included) receives them through its subscription and writes them to its
local members. One module per implementation: in-process now, Redis Streams for several nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Delivery = Callable[[str, bytes], None]


class Bus(Protocol):
    def subscribe(self, deliver: Delivery) -> None:
        """Call ``deliver(conversation, frame)`` for every frame published on any node."""
        ...

    def publish(self, conversation: str, frame: bytes) -> None:
        """Send an encoded frame to every node's subscribers, in publish order per process.

        Never blocks: an implementation that needs the network queues and sends from its own task.
        """
        ...
