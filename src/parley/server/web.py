"""The web client's HTTPS listener (``web_port``): the built browser client, and a WebSocket at
``/ws`` that carries the chat protocol, one frame per WebSocket text message.

The WebSocket is not a second server: once aiohttp has parsed and checked the upgrade request,
the connection is handed over (server/http_handoff.py) to :class:`WebSocket`
(server/websocket.py), which gives the same :class:`parley.server.connection.Connection`
(session, hub, flood control, request budgets) the asyncio Transport interface the TLS port's
connections have, counted by the same connection tracker and its per-address limits; aiohttp
keeps nothing of it.

A browser sends cookies and opens WebSockets to any site a page asks for; the upgrade is
refused (403) unless its ``Origin`` is the configured public address (``web_public_url``), so
another site's page cannot speak the protocol with a visitor's connection. The upgrade hands
the session cookie (server/web_login.py) to the connection; shared files travel over
/files/<token> (server/web_files.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from importlib import resources
from pathlib import Path

from aiohttp import web

from parley.protocol.errors import ErrorCode
from parley.protocol.messages import Closing, encode
from parley.server.address_group import address_group
from parley.server.connection import Connection, ServerContext
from parley.server.http_handoff import HandOffTransport
from parley.server.http_server import stop_runner
from parley.server.proxy_protocol import TrustedProxies
from parley.server.tls_transport import Refusal, Release, TlsServer, start_tls_server
from parley.server.tracker import ConnectionTracker
from parley.server.transfer import TransferServer
from parley.server.web_files import WebFiles
from parley.server.web_login import MAX_BODY_BYTES, SESSION_COOKIE, WebLogin
from parley.server.websocket import (
    WebSocket,
    WebSockets,
    closing_frames,
    handshake_problem,
    supported_version,
    upgrade_response,
)

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
_SHUTDOWN_SECONDS = 1.0
_STOP_SECONDS = 3.0
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
        self._sockets: WebSockets | None = None
        # Bodies read whole are small (a login's JSON); file uploads are streamed.
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.on_response_prepare.append(self._add_security_headers)
        app.router.add_route("GET", "/ws", self._websocket)
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
        self._sockets = WebSockets(asyncio.get_running_loop())
        server = self._runner.server
        assert server is not None
        try:
            self._listener = await start_tls_server(
                lambda: HandOffTransport(server),
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
        if self._sockets is not None:
            self._sockets.abort_all()
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
        if problem := handshake_problem(request.method, request.version, request.headers):
            raise web.HTTPBadRequest(text=problem + "\n")
        if not supported_version(request.headers):
            raise web.HTTPUpgradeRequired(
                headers={"Sec-WebSocket-Version": "13"},
                text="This server speaks WebSocket version 13 (RFC 6455).\n",
            )
        handoff = request.transport
        assert isinstance(handoff, HandOffTransport), "the web port's connections are handed off"
        raw, sockets = handoff.raw, self._sockets
        peer = raw.get_extra_info("peername") if raw is not None else None
        if raw is None or peer is None or sockets is None:
            raise web.HTTPBadRequest()
        headers = dict(SECURITY_HEADERS)
        if self._hsts:
            headers["Strict-Transport-Security"] = HSTS
        raw.write(upgrade_response(request.headers["Sec-WebSocket-Key"], headers))
        tracker = self._context.tracker
        group = address_group(str(peer[0]))
        if tracker.admit(group):
            cookie = request.cookies.get(SESSION_COOKIE, "")
            release = Release(tracker, group)
            handoff.hand_over(WebSocket(Connection(self._context), cookie, sockets, release))
        else:
            handoff.hand_over(Refusal(closing_frames(_REFUSAL)))
        # aiohttp lets go of the connection: this response is never written.
        return web.Response(status=101)
