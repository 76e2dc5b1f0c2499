"""A browser's WebSocket (RFC 6455) on the web port, once its upgrade is accepted: the chat
protocol's transport, one frame per text message.

:class:`WebSocket` sits between the TLS transport (:mod:`parley.server.tls_transport`) and a
:class:`parley.server.connection.Connection`: to the TLS transport it is the protocol, to the
connection it is the transport, so the connection runs as it does on the TLS port (session,
hub, flood control, budgets, limits). wsproto parses what the browser sends (bytes in, events
out: masking, fragments, UTF-8 across fragments, control frames and close codes, each checked
as RFC 6455 says); what the connection writes is framed here and goes straight onto the TLS
transport, which writes once per connection per loop iteration. Flow control is the TLS
transport's own: past the high-water mark it pauses the connection, as on the TLS port.

An idle WebSocket costs this object, wsproto's parser state (about 1.7 KB) and the TLS
connection: no task, no timer and no buffer of its own. :class:`WebSockets` pings them all
from one timer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from wsproto.connection import Connection as FrameParser
from wsproto.connection import ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, generate_accept_token

from parley.protocol.errors import ErrorCode
from parley.protocol.limits import MAX_CLIENT_FRAME_BYTES
from parley.server.connection import Connection
from parley.server.layered_transport import LayeredTransport

log = logging.getLogger("parley.server")

# Every open WebSocket is pinged this often; one that sent nothing since the last ping
# (not even the pong) is dropped.
PING_SECONDS = 30.0
_PING = b"\x89\x00"
_NORMAL_CLOSE = b"\x88\x02\x03\xe8"  # close code 1000, no reason
# A text message's header by payload length, for payloads under 126 bytes.
_SHORT_HEADERS = [bytes((0x81, size)) for size in range(126)]


def handshake_problem(method: str, version: tuple[int, int], headers: Mapping[str, str]) -> str:
    """What makes this request no WebSocket opening handshake (RFC 6455 section 4.2.1), or ""
    when it is one. The version is checked apart: see :func:`supported_version`.
    """
    if method != "GET" or version < (1, 1):
        return "A WebSocket opens with GET over HTTP/1.1."
    if headers.get("Upgrade", "").strip().lower() != "websocket":
        return "This address is a WebSocket: the request needs Upgrade: websocket."
    tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
    if "upgrade" not in tokens:
        return "This address is a WebSocket: the request needs Connection: Upgrade."
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Sec-WebSocket-Key must be 16 bytes in base64."
    except binascii.Error:
        return "Sec-WebSocket-Key must be 16 bytes in base64."
    return ""


def supported_version(headers: Mapping[str, str]) -> bool:
    """The client speaks version 13, the one RFC 6455 defines (and every browser sends)."""
    return headers.get("Sec-WebSocket-Version", "").strip() == "13"


def upgrade_response(key: str, headers: Mapping[str, str]) -> bytes:
    """The 101 response accepting the handshake of ``key``, with ``headers`` besides. No
    extension (compression) and no subprotocol is taken, whatever the browser offers.
    """
    accept = generate_accept_token(key.encode()).decode()
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def text_frames(data: bytes) -> bytes:
    """Each newline-ended frame of ``data`` as one WebSocket text message (RFC 6455 section 5.2:
    a server's messages are not masked), ready for the TLS transport.
    """
    last = len(data) - 1
    if 0 <= last < 65536 and data.find(b"\n") == last:
        # The usual case, once per member per message of a room: one frame.
        if last < 126:
            return _SHORT_HEADERS[last] + data[:last]
        return b"\x81\x7e" + last.to_bytes(2, "big") + data[:last]
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


def closing_frames(text: bytes) -> bytes:
    """``text`` (one newline-ended frame) as a text message, then a normal close."""
    return text_frames(text) + _NORMAL_CLOSE


class WebSocket(asyncio.Protocol, LayeredTransport):
    """One open WebSocket: the TLS transport's protocol, and the chat connection's transport.

    A text message goes to the connection as one frame; a binary one closes the connection
    with ``invalid-message``; one over ``MAX_CLIENT_FRAME_BYTES`` (in all its fragments) is
    refused with close code 1009, broken framing or UTF-8 with 1002 or 1007. Pings are
    answered, one pong for all the pings of one read.
    """

    __slots__ = (
        "_chat",
        "_closing",
        "_cookie",
        "_frames",
        "_heard",
        "_partial",
        "_paused",
        "_release",
        "_sockets",
    )

    def __init__(
        self, chat: Connection, cookie: str, sockets: WebSockets, release: Callable[[], None]
    ) -> None:
        """``cookie``: the session cookie of the upgrade request (for a login without a
        password); ``release`` is called once, when the connection is gone.
        """
        super().__init__()
        self._chat = chat
        self._cookie = cookie
        self._sockets = sockets
        self._release: Callable[[], None] | None = release
        self._frames = FrameParser(ConnectionType.SERVER)
        # A text message whose fragments are still arriving.
        self._partial: bytearray | None = None
        self._closing = False
        self._paused = False
        self._heard = True  # something arrived since the last ping

    # --- the TLS transport's protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        self._sockets.add(self)
        self._chat.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        if self._closing:
            return
        self._frames.receive_data(data)
        self._deliver()

    def eof_received(self) -> bool:
        return False  # the TLS transport closes

    def pause_writing(self) -> None:
        self._chat.pause_writing()

    def resume_writing(self) -> None:
        self._chat.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._partial = None
        self._sockets.discard(self)
        if self._release is not None:
            release, self._release = self._release, None
            release()
        self._chat.connection_lost(exc)

    def _deliver(self) -> None:
        """Hand what has arrived to the connection, until it pauses reading or closes."""
        pong: bytes | None = None
        for event in self._frames.events():
            if isinstance(event, TextMessage):
                self._text(event)
            elif isinstance(event, Ping):
                pong = event.payload  # only the last ping of a burst is answered (RFC 6455 5.5.3)
            elif isinstance(event, BytesMessage):
                self._chat.close(ErrorCode.INVALID_MESSAGE, "Frames are text messages.")
            elif isinstance(event, CloseConnection):
                self._closed_by_peer(event)
            if self._closing or self._paused:
                break
        if pong is not None and not self._closing:
            self._send_control(self._frames.send(Ping(payload=pong).response()))

    def _text(self, event: TextMessage) -> None:
        data = event.data.encode()
        partial = self._partial
        if partial is None and event.message_finished:
            if len(data) > MAX_CLIENT_FRAME_BYTES:
                self._fail(CloseReason.MESSAGE_TOO_BIG, "Message too big.")
                return
            # One message, one frame: a newline inside would split it in two on the line
            # framer, so it becomes a carriage return, which JSON reads as the same whitespace
            # between tokens and refuses inside strings just the same.
            self._chat.data_received(data.replace(b"\n", b"\r") + b"\n")
            return
        if partial is None:
            partial = self._partial = bytearray()
        partial += data
        if len(partial) > MAX_CLIENT_FRAME_BYTES:
            self._fail(CloseReason.MESSAGE_TOO_BIG, "Message too big.")
        elif event.message_finished:
            self._partial = None
            self._chat.data_received(bytes(partial.replace(b"\n", b"\r")) + b"\n")

    def _closed_by_peer(self, event: CloseConnection) -> None:
        state = self._frames.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The browser closes: answer with the same code, then close the connection.
            self._send_control(self._frames.send(event.response()))
            self._close_raw()
        elif state is ConnectionState.CLOSED:
            self._close_raw()  # the answer to our own close
        else:
            # Broken framing or UTF-8: wsproto names the close code (1002 or 1007).
            log.debug("Closing a WebSocket: %s", event.reason)
            self._fail(event.code, event.reason or "")

    def _fail(self, code: int, reason: str) -> None:
        with contextlib.suppress(LocalProtocolError):  # a close was sent already
            self._send_control(self._frames.send(CloseConnection(code=code, reason=reason)))
        self._close_raw()

    def _send_control(self, frame: bytes) -> None:
        if self._raw is not None and frame:
            self._raw.write(frame)

    def _close_raw(self) -> None:
        self._closing = True
        self._partial = None
        if self._raw is not None:
            self._raw.close()

    # --- pinged by WebSockets ------------------------------------------------------------

    def heartbeat(self) -> None:
        """Ping; drop the connection if nothing arrived since the last ping (unless reading is
        paused: then the silence is the server's own doing).
        """
        if self._closing or self._paused or self._raw is None:
            return
        if not self._heard:
            log.info("Dropping a WebSocket that stopped answering pings")
            self.abort()
            return
        self._heard = False
        self._raw.write(_PING)

    # --- the chat connection's transport -------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing and self._raw is not None:
            self._raw.write(text_frames(bytes(data)))

    def close(self) -> None:
        """After what is written already: the closing message, then the connection's end."""
        if self._closing:
            return
        with contextlib.suppress(LocalProtocolError):  # the browser's close was answered
            self._send_control(self._frames.send(CloseConnection(code=CloseReason.NORMAL_CLOSURE)))
        self._close_raw()

    def abort(self) -> None:
        self._closing = True
        self._partial = None
        if self._raw is not None:
            self._raw.abort()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._paused = True
        if self._raw is not None:
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        if self._raw is not None and not self._closing:
            self._raw.resume_reading()
            # Messages that arrived with the last read but were held back.
            asyncio.get_running_loop().call_soon(self._resume_delivery)

    def _resume_delivery(self) -> None:
        if not self._closing and not self._paused:
            self._deliver()

    def is_reading(self) -> bool:
        return not self._paused

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._chat

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, Connection)
        self._chat = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "session_cookie":
            return self._cookie
        if name == "browser":
            return True
        if self._raw is None:
            return default
        # The TLS transport's: the peer (a PROXY header's client), the socket, the cipher.
        return self._raw.get_extra_info(name, default)


class WebSockets:
    """The open WebSockets of one web port: pinged every ``PING_SECONDS`` from one timer, and
    dropped at once when the port stops.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._open: set[WebSocket] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._open)

    def add(self, socket: WebSocket) -> None:
        self._open.add(socket)
        if self._timer is None:
            self._timer = self._loop.call_later(PING_SECONDS, self._ping_all)

    def discard(self, socket: WebSocket) -> None:
        self._open.discard(socket)

    def _ping_all(self) -> None:
        self._timer = None
        for socket in list(self._open):
            socket.heartbeat()
        if self._open:
            self._timer = self._loop.call_later(PING_SECONDS, self._ping_all)

    def abort_all(self) -> None:
        """Drop every WebSocket still open (the port is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for socket in list(self._open):
            socket.abort()
