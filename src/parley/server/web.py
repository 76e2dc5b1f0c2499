"""The web client's HTTPS listener (``web_port``): the built browser client, and a WebSocket at
``/ws`` that carries the chat protocol, one frame per WebSocket text message.

The WebSocket is not a second server: :class:`WebSocketTransport` gives each one the asyncio
Transport interface the TLS port's connections have, so the same
:class:`parley.server.connection.Connection` (session, hub, flood control, request budgets)
runs behind it, counted by the same connection tracker and its per-address limits.

A browser sends cookies and opens WebSockets to any site a page asks for; the upgrade is
refused (403) unless its ``Origin`` is the configured public address (``web_public_url``), so
another site's page cannot speak the protocol with a visitor's connection. The upgrade hands
the session cookie (server/web_login.py) to the connection; shared files travel over
/files/<token> (server/web_files.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from parley.protocol.errors import ErrorCode
from parley.protocol.limits import MAX_CLIENT_FRAME_BYTES
from parley.protocol.messages import Closing, encode
from parley.server.address_group import address_group
from parley.server.connection import Connection, ServerContext
from parley.server.http_server import stop_runner
from parley.server.proxy_protocol import TrustedProxies
from parley.server.tls_transport import TlsServer, start_tls_server
from parley.server.tracker import ConnectionTracker
from parley.server.transfer import TransferServer
from parley.server.web_files import WebFiles
from parley.server.web_login import MAX_BODY_BYTES, SESSION_COOKIE, WebLogin

log = logging.getLogger("parley.server")

# Every response: scripts, styles and connections from this origin only; no framing; nothing
# of the address leaks to links followed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# With a certificate the operator gave (cert_file): browsers keep to HTTPS for a year. Never
# with the self-signed one the server makes, which a browser only takes after a click-through
# that HSTS would forbid.
HSTS = "max-age=31536000"
# A browser that stops answering pings for this long is gone.
_HEARTBEAT_SECONDS = 30.0
_SHUTDOWN_SECONDS = 1.0
_STOP_SECONDS = 3.0
# While a browser's writes are paused, how often to look whether they have left.
_DRAIN_POLL_SECONDS = 0.05
# To a socket over the web port's connection limits, after its TLS handshake.
_HTTP_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 57\r\nConnection: close\r\n\r\n"
    b"Too many connections from your address; try again later.\n"
)
_REFUSAL = encode(
    Closing(code=ErrorCode.TOO_MANY_CONNECTIONS, message=ErrorCode.TOO_MANY_CONNECTIONS.text)
)


def plain_http_answer(origin: str) -> bytes:
    """What a request in plain HTTP (``http://`` typed for ``https://``) is answered: a 400
    that says where the page is, not an empty reply.
    """
    body = f"This port speaks HTTPS only: open {origin}/ (https://, not http://).\n".encode()
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def static_dir() -> Path:
    """Where the built web client is (``web/`` builds into it; it is committed)."""
    return Path(str(resources.files("parley.web"))) / "static"


def text_frames(data: bytes) -> bytes:
    """Each newline-ended frame of ``data`` as one WebSocket text message (RFC 6455 section 5.2:
    a server's messages are not masked), ready for the connection's transport.
    """
    out = bytearray()
    for line in data.split(b"\n"):
        if not line:
            continue
        size = len(line)
        if size < 126:
            out += bytes((0x81, size))
        elif size < 65536:
            out += b"\x81\x7e" + size.to_bytes(2, "big")
        else:
            out += b"\x81\x7f" + size.to_bytes(8, "big")
        out += line
    return bytes(out)


class WebSocketTransport(asyncio.Transport):
    """The asyncio Transport a :class:`Connection` writes to, over one aiohttp WebSocket.

    ``write`` frames the protocol's bytes as WebSocket text messages and hands them straight
    to the connection's own transport, as aiohttp's writer would without compression: no task
    switch per message, so a room message costs about what it does on the TLS port.
    aiohttp still writes its pings and the closing handshake, each a whole message, so the
    two never interleave inside one. Past the high-water mark of what waits to leave, the
    protocol's ``pause_writing`` is called, as on the TLS port: a browser that does not read
    is cut off the same way.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        raw: asyncio.Transport,
        protocol: asyncio.Protocol,
        peer: Any,
        cookie: str = "",
    ) -> None:
        super().__init__()
        self._ws = ws
        self._raw = raw
        self._cookie = cookie
        self._protocol = protocol
        self._peer = peer
        self._high_water = 64 * 1024
        self._write_paused = False
        self._closing = False
        self._closed: asyncio.Task[None] | None = None
        self._reading = asyncio.Event()
        self._reading.set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._raw.is_closing():
            return
        self._raw.write(text_frames(bytes(data)))
        if not self._write_paused and self.get_write_buffer_size() > self._high_water:
            self._write_paused = True
            self._protocol.pause_writing()
            asyncio.get_running_loop().call_later(_DRAIN_POLL_SECONDS, self._check_drained)

    def _check_drained(self) -> None:
        """While paused: resume the protocol once what waited has left (a quarter remains)."""
        if not self._write_paused or self._closing:
            return
        if self.get_write_buffer_size() <= self._high_water // 4:
            self._write_paused = False
            self._protocol.resume_writing()
        else:
            asyncio.get_running_loop().call_later(_DRAIN_POLL_SECONDS, self._check_drained)

    async def _close_ws(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            if not self._ws.closed:
                await self._ws.close()

    async def finished(self) -> None:
        """Wait until the WebSocket is closed (its closing handshake done, or given up)."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_task(self._close_ws())
        await asyncio.shield(self._closed)

    async def wait_reading(self) -> None:
        """Return when reading is not paused."""
        await self._reading.wait()

    def close(self) -> None:
        # What was written is with the connection's transport already; the closing message
        # goes after it.
        if not self._closing:
            self._closing = True
            self._closed = asyncio.get_running_loop().create_task(self._close_ws())
        self._reading.set()  # the reader loop then sees the connection closed

    def abort(self) -> None:
        self._closing = True
        self._reading.set()
        if self._closed is not None:
            self._closed.cancel()
        self._raw.abort()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self._high_water = high

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, self._high_water)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        if name == "session_cookie":
            return self._cookie
        if name == "browser":
            return True
        return default


class WebListener:
    """Serves the web client and its WebSocket; see :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        context: ServerContext,
        transfers: TransferServer,
        static: Path | None = None,
        *,
        hsts: bool = False,
    ) -> None:
        self._context = context
        self._static = static or static_dir()
        self._hsts = hsts
        self._origin = ""
        self._sockets: set[web.WebSocketResponse] = set()
        # Bodies read whole are small (a login's JSON); file uploads are streamed.
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.on_response_prepare.append(self._add_security_headers)
        app.router.add_get("/ws", self._websocket)
        WebFiles(
            context.files, transfers, context.limits, context.metrics, lambda: self._origin
        ).add_routes(app)
        WebLogin(
            context.auth,
            context.hub,
            context.limits,
            context.config.session_days,
            lambda: self._origin,
        ).add_routes(app)
        app.router.add_get("/", self._index)
        app.router.add_static("/assets", self._static / "assets")
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        self._started = False
        self._refusing = False
        self._listener: TlsServer | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None, "web listener not started"
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    @property
    def origin(self) -> str:
        """The only ``Origin`` whose WebSocket upgrades are accepted."""
        return self._origin

    async def start(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        origin: str,
        *,
        tracker: ConnectionTracker,
        handshake_timeout: float,
        nodelay: bool = False,
        proxies: TrustedProxies | None = None,
        reuse_port: bool = False,
    ) -> None:
        """Listen on ``host``:``port``; ``origin`` is the public address's origin, or "" for
        ``https://<host>:<bound port>``. With ``reuse_port``, other workers share the port.
        Raises OSError when the port cannot be bound.

        The port's TLS is the chat port's own (:mod:`parley.server.tls_transport`), not
        aiohttp's: OpenSSL on the socket, writes coalesced per loop iteration, no buffers per
        idle connection, and a PROXY header from ``proxies`` names the client. ``tracker``
        counts its sockets (pages, files and WebSockets); a WebSocket also counts as a chat
        connection in the chat port's tracker.
        """
        await self._runner.setup()
        self._started = True
        server = self._runner.server
        assert server is not None
        try:
            self._listener = await start_tls_server(
                server,
                host,
                port,
                ssl_context,
                handshake_timeout=handshake_timeout,
                tracker=tracker,
                refusal=_HTTP_REFUSAL,
                nodelay=nodelay,
                proxies=proxies,
                port_name="web",
                reuse_port=reuse_port,
            )
        except BaseException:
            await self.stop()
            raise
        if not origin:
            shown = f"[{host}]" if ":" in host else host
            origin = f"https://{shown}" if self.port == 443 else f"https://{shown}:{self.port}"
        self._origin = origin
        self._listener.plain_http_answer = plain_http_answer(origin)

    async def _add_security_headers(
        self, request: web.Request, response: web.StreamResponse
    ) -> None:
        # On every response prepared: pages, files, errors and WebSocket upgrades alike.
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if self._hsts:
            response.headers.setdefault("Strict-Transport-Security", HSTS)

    def refuse_new(self) -> None:
        """Shutdown has begun: no new chat connections (503); the open ones are let finish."""
        self._refusing = True

    async def stop(self) -> None:
        """Close the port and every WebSocket still open, within a few seconds."""
        if not self._started:
            return
        self._started = False
        if self._listener is not None:
            self._listener.close()
        await stop_runner(self._runner, "web listener", _STOP_SECONDS)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(self._static / "index.html", headers={"Cache-Control": "no-cache"})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        if origin.lower() != self._origin.lower():
            log.info(
                "Refused a WebSocket from %s: its Origin %r is not web_public_url's %s",
                request.remote,
                origin,
                self._origin,
            )
            raise web.HTTPForbidden(
                text=f"This WebSocket serves pages from {self._origin} only (web_public_url).\n"
            )
        if self._refusing:
            raise web.HTTPServiceUnavailable(text="The server is shutting down.\n")
        raw = request.transport
        peer = raw.get_extra_info("peername") if raw is not None else None
        if raw is None or peer is None:
            raise web.HTTPBadRequest()
        tracker = self._context.tracker
        group = address_group(str(peer[0]))
        ws = web.WebSocketResponse(
            heartbeat=_HEARTBEAT_SECONDS, max_msg_size=MAX_CLIENT_FRAME_BYTES, compress=False
        )
        await ws.prepare(request)
        if not tracker.admit(group):
            await ws.send_str(_REFUSAL.decode().rstrip("\n"))
            await ws.close()
            return ws
        try:
            await self._serve(ws, raw, peer, request.cookies.get(SESSION_COOKIE, ""))
        finally:
            tracker.release(group)
        return ws

    async def _serve(
        self, ws: web.WebSocketResponse, raw: asyncio.Transport, peer: Any, cookie: str
    ) -> None:
        connection = Connection(self._context)
        transport = WebSocketTransport(ws, raw, connection, peer, cookie)
        connection.connection_made(transport)
        try:
            while True:
                await transport.wait_reading()
                if connection.closed:
                    break
                message = await ws.receive()
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if message.type is WSMsgType.TEXT:
                    # One message, one frame: a newline inside would split it in two on the
                    # line framer, so it becomes a carriage return, which JSON reads as the
                    # same whitespace between tokens and refuses inside strings just the same.
                    text: str = message.data
                    connection.data_received(text.replace("\n", "\r").encode() + b"\n")
                elif message.type is WSMsgType.BINARY:
                    connection.close(ErrorCode.INVALID_MESSAGE, "Frames are text messages.")
                elif message.type is WSMsgType.ERROR:
                    break
        finally:
            if not connection.closed:
                transport.close()
            connection.connection_lost(None)
            try:
                await asyncio.wait_for(transport.finished(), _STOP_SECONDS)
            except TimeoutError:
                transport.abort()
