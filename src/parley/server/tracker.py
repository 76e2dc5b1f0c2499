"""Connection limits per address group and in all, and the live connections of a port.

A connection is counted from the moment it is accepted, TLS handshake included, until its
socket is closed: a handshake costs a descriptor and OpenSSL's state as much as an open
connection does, so a host that never finishes its handshakes is held to the same limit as
one that logs in. Addresses are grouped by :func:`parley.server.address_group.address_group`
(an IPv6 /64 counts as one).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Protocol

log = logging.getLogger("parley.server")


class Tracked(Protocol):
    host: str


class ConnectionTracker:
    """Counts one port's sockets by address group, and keeps its open connections.

    Every method is O(1) but :meth:`wait_empty`. Used from one event loop only.
    """

    def __init__(
        self,
        max_per_address: int,
        max_total: int,
        *,
        port_name: str = "chat",
        settings: tuple[str, str] = ("max_connections_per_address", "max_connections"),
    ) -> None:
        """``settings`` name the two limits in the log, as an operator would raise them."""
        self._max_per_address = max_per_address
        self._max_total = max_total
        self._port_name = port_name
        self._settings = settings
        self._per_group: Counter[str] = Counter()
        self._total = 0
        # Groups being refused now (and whether the total is full): logged once as they start
        # being refused, again when they are admitted again, never once per refused socket.
        self._refusing: set[str] = set()
        self._full = False
        # Sockets refused for the per-address limit and for the limit of all, since start.
        self.refused_per_address = 0
        self.refused_in_all = 0
        self.live: set[Tracked] = set()
        self._empty = asyncio.Event()
        self._empty.set()

    def set_limits(self, max_per_address: int, max_total: int) -> None:
        """New limits (a reload): sockets already counted stay; new ones meet these."""
        self._max_per_address = max_per_address
        self._max_total = max_total

    @property
    def total(self) -> int:
        """Sockets counted now, handshakes included."""
        return self._total

    def count(self, group: str) -> int:
        return self._per_group.get(group, 0)

    def admit(self, group: str) -> bool:
        """Count one more socket from ``group`` unless a limit is reached (then nothing is
        counted and False is returned). Each True must be matched by one :meth:`release`.
        """
        if self._total >= self._max_total:
            self.refused_in_all += 1
            if not self._full:
                self._full = True
                log.warning(
                    "Refusing connections on the %s port: %d open, the limit (%s)",
                    self._port_name,
                    self._total,
                    self._settings[1],
                )
            return False
        if self._per_group[group] >= self._max_per_address:
            self.refused_per_address += 1
            if group not in self._refusing:
                self._refusing.add(group)
                log.warning(
                    "Refusing connections on the %s port from %s: %d open, the limit (%s)",
                    self._port_name,
                    group,
                    self._per_group[group],
                    self._settings[0],
                )
            return False
        self._per_group[group] += 1
        self._total += 1
        return True

    def release(self, group: str) -> None:
        """One socket of ``group`` is closed."""
        left = self._per_group[group] - 1
        if left > 0:
            self._per_group[group] = left
        else:
            del self._per_group[group]
        self._total -= 1
        if group in self._refusing and left < self._max_per_address:
            self._refusing.discard(group)
            log.info("Accepting connections on the %s port from %s again", self._port_name, group)
        if self._full and self._total < self._max_total:
            self._full = False
            log.info("Accepting connections on the %s port again", self._port_name)

    def add(self, connection: Tracked) -> None:
        """``connection`` is open (its handshake done): wait for it at shutdown."""
        self.live.add(connection)
        self._empty.clear()

    def discard(self, connection: Tracked) -> None:
        """Forget ``connection``; harmless if it was never added."""
        self.live.discard(connection)
        if not self.live:
            self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()
