"""aiohttp's HTTP on a connection of the web port, until a WebSocket takes the connection over.

aiohttp parses the requests (pages, logins, files, and the WebSocket upgrade with its Origin and
cookie), but an aiohttp WebSocket keeps the request, its headers, its parser, writer, handler
task and heartbeat for as long as it is open: about 14 KB of objects on every idle browser.
Here aiohttp's request handler sees a :class:`HandOffTransport` in front of the TLS transport;
:meth:`HandOffTransport.hand_over` gives the TLS transport to another protocol (the WebSocket
layer, :mod:`parley.server.websocket`) and tells aiohttp that its connection is gone, so that
it drops everything it held for it without closing or writing to the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from parley.server.layered_transport import LayeredTransport


class HandOffTransport(asyncio.Protocol, LayeredTransport):
    """Started as the TLS transport's protocol, it puts a new aiohttp request handler on the
    connection, with itself as that handler's transport: every call passes through to the TLS
    transport until :meth:`hand_over`, after which the handler's writes and closes go nowhere.
    """

    __slots__ = ("_handler", "_handler_factory")

    def __init__(self, handler_factory: Callable[[], asyncio.Protocol]) -> None:
        super().__init__()
        self._handler_factory: Callable[[], asyncio.Protocol] | None = handler_factory
        self._handler: asyncio.Protocol | None = None

    # --- as the TLS transport's first protocol -------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        assert self._handler_factory is not None
        handler = self._handler_factory()
        self._handler_factory = None
        self._raw, self._handler = transport, handler
        # From here on the TLS transport calls the handler directly (data, flow control, loss).
        transport.set_protocol(handler)
        handler.connection_made(self)

    # --- handing the connection over -----------------------------------------------------

    @property
    def raw(self) -> asyncio.Transport | None:
        """The TLS transport, until it is handed over."""
        return self._raw

    def hand_over(self, protocol: asyncio.Protocol) -> None:
        """Give the TLS connection to ``protocol`` (whose ``connection_made`` is called), and
        end aiohttp's part in it: its handler is told the connection is lost, and whatever it
        still writes or closes (the response of the request under way) goes nowhere.
        """
        raw, handler = self._raw, self._handler
        assert raw is not None, "handed over twice"
        assert handler is not None
        self._raw = None
        raw.set_protocol(protocol)
        handler.connection_lost(None)
        protocol.connection_made(raw)

    # --- asyncio.Transport, for aiohttp ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._raw is not None:
            self._raw.write(data)

    def writelines(self, list_of_data: Any) -> None:
        if self._raw is not None:
            self._raw.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()

    def abort(self) -> None:
        if self._raw is not None:
            self._raw.abort()

    def is_closing(self) -> bool:
        return self._raw is None or self._raw.is_closing()

    def pause_reading(self) -> None:
        if self._raw is not None:
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if self._raw is not None:
            self._raw.resume_reading()

    def is_reading(self) -> bool:
        return self._raw is not None and self._raw.is_reading()

    def get_protocol(self) -> asyncio.BaseProtocol:
        if self._raw is not None:
            return self._raw.get_protocol()
        assert self._handler is not None
        return self._handler

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        # asyncio's sendfile fallback puts its own protocol in for the time of a file.
        if self._raw is not None:
            self._raw.set_protocol(protocol)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self._raw is None:
            return default
        return self._raw.get_extra_info(name, default)
