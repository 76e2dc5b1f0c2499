"""The live connections: limits per address and in all, and waiting for them to close."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Protocol


class Tracked(Protocol):
    host: str


class ConnectionTracker:
    """Counts connections by remote address. Every method is O(1) but :meth:`wait_empty`."""

    def __init__(self, max_per_address: int, max_total: int) -> None:
        self._max_per_address = max_per_address
        self._max_total = max_total
        self.live: set[Tracked] = set()
        self._per_address: Counter[str] = Counter()
        self._empty = asyncio.Event()
        self._empty.set()

    def admit(self, connection: Tracked) -> bool:
        """Register ``connection`` unless a limit is reached (then nothing is registered)."""
        if (
            len(self.live) >= self._max_total
            or self._per_address[connection.host] >= self._max_per_address
        ):
            return False
        self.live.add(connection)
        self._per_address[connection.host] += 1
        self._empty.clear()
        return True

    def release(self, connection: Tracked) -> None:
        """Forget ``connection``; harmless if it was never admitted."""
        if connection not in self.live:
            return
        self.live.discard(connection)
        self._per_address[connection.host] -= 1
        if not self._per_address[connection.host]:
            del self._per_address[connection.host]
        if not self.live:
            self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()
