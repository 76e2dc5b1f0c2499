"""A transport that stands in front of the TLS transport: what it does not change about the
connection (its write buffer and flow-control limits) it asks the TLS transport for.

Used by :mod:`parley.server.http_handoff` (aiohttp's transport until a WebSocket takes over)
and :mod:`parley.server.websocket` (a chat connection's transport on the web port).
"""

from __future__ import annotations

import asyncio
from typing import Any

# The base class's per-transport dict of extra info; never written to.
NO_EXTRA: dict[str, Any] = {}


class LayeredTransport(asyncio.Transport):
    """A transport in front of ``_raw``, the TLS transport (None once it is gone or given
    away): the write buffer is the TLS transport's own.
    """

    __slots__ = ("_raw",)

    def __init__(self) -> None:
        super().__init__(extra=NO_EXTRA)
        self._raw: asyncio.Transport | None = None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._raw is not None:
            self._raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size() if self._raw is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits() if self._raw is not None else (0, 0)
