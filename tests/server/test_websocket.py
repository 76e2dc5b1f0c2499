"""The web port's WebSocket layer against what a hostile or broken client sends: the opening
handshake, oversized, binary, badly encoded, fragmented and unmasked frames, an abrupt end, a
ping flood, a browser that stops answering pings and one that stops reading. Hand-made frames
over real TLS sockets on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wsproto.connection import Connection as FrameParser
from wsproto.connection import ConnectionType
from wsproto.events import TextMessage

from parley.config import ServerConfig
from parley.server import websocket
from parley.server.app import ParleyServer
from parley.server.web import SECURITY_HEADERS
from support import (
    NO_SHARED_BUDGETS,
    TIMEOUT_SECONDS,
    assert_still_serving,
    insecure_context,
    raw_user,
)

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    declared: int | None = None,
) -> bytes:
    """One client frame (RFC 6455 section 5.2); ``declared`` claims another payload length."""
    length = len(payload) if declared is None else declared
    head = bytes(((0x80 if fin else 0) | rsv | opcode,))
    masked = 0x80 if mask else 0
    if length < 126:
        head += bytes((masked | length,))
    elif length < 65536:
        head += bytes((masked | 126,)) + length.to_bytes(2, "big")
    else:
        head += bytes((masked | 127,)) + length.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    mask_bytes = (key * (len(payload) // 4 + 1))[: len(payload)]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask_bytes, "big")).to_bytes(
        len(payload), "big"
    )
    return head + key + body


def text(data: dict[str, Any]) -> bytes:
    return frame(TEXT, json.dumps(data).encode())


def _upgrade_request(origin: str, key: str, extra: str = "") -> bytes:
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
        f"{extra}\r\n"
    ).encode()


class RawWebSocket:
    """A WebSocket client that writes whatever frames a test makes and reads the server's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.head = ""
        self.pongs: list[bytes] = []  # pongs that came while waiting for text

    @classmethod
    async def connect(cls, server: ParleyServer) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.web_port, ssl=insecure_context(), limit=2**20
        )
        return cls(reader, writer)

    @classmethod
    async def open(cls, server: ParleyServer, extra: str = "") -> RawWebSocket:
        client = await cls.connect(server)
        await client.upgrade(server, extra)
        return client

    async def upgrade(self, server: ParleyServer, extra: str = "") -> None:
        assert server.web_origin is not None
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(_upgrade_request(server.web_origin, key, extra))
        self.head = await self.response_head()
        assert self.head.startswith("HTTP/1.1 101 "), self.head
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        assert self.header("Sec-WebSocket-Accept") == accept

    async def response_head(self) -> str:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT_SECONDS)
        return raw.decode()

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self) -> tuple[int, bytes]:
        """The server's next frame: (opcode, payload). Server frames are never masked."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT_SECONDS)
        assert not second & 0x80, "a server frame was masked"
        assert first & 0x80, "the server fragments nothing"
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(length)

    async def message(self) -> dict[str, Any]:
        """The next text message, as JSON (pongs before it are kept in ``pongs``)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == PONG:
                self.pongs.append(payload)
                continue
            assert opcode == TEXT, (opcode, payload)
            result: dict[str, Any] = json.loads(payload)
            return result

    async def reply(self, request_id: int) -> dict[str, Any]:
        while (found := await self.message()).get("id") != request_id:
            pass
        return found

    async def login(self, nick: str) -> None:
        self.send(text({"type": "hello", "id": 1, "versions": [1]}))
        assert (await self.reply(1))["type"] == "welcome"
        self.send(text({"type": "nick", "id": 2, "nick": nick}))
        reply = await self.reply(2)
        assert reply["type"] == "ok", reply

    async def close_code(self) -> int:
        """Read until the server's close frame; its status code."""
        while True:
            opcode, payload = await self.frame()
            if opcode == CLOSE:
                return int.from_bytes(payload[:2], "big")

    async def ended(self) -> bool:
        """True once the server has closed the connection (what is left is dropped)."""
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while await asyncio.wait_for(self.reader.read(65536), TIMEOUT_SECONDS):
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    async with ParleyServer(dataclasses.replace(server_config, web_port=0)) as running:
        yield running


async def _until(condition: Any) -> None:
    for _ in range(int(TIMEOUT_SECONDS / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the timeout")


async def test_the_upgrade_takes_no_extension_and_carries_the_security_headers(
    server: ParleyServer,
) -> None:
    client = await RawWebSocket.open(
        server,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "Sec-WebSocket-Protocol: chat\r\n",
    )
    assert client.header("Sec-WebSocket-Extensions") is None  # RSV1 frames stay refused
    assert client.header("Sec-WebSocket-Protocol") is None
    for name, value in SECURITY_HEADERS.items():
        assert client.header(name) == value
    await client.login("Plain")
    await client.close()


async def test_a_websocket_may_follow_other_requests_on_the_same_connection(
    server: ParleyServer,
) -> None:
    client = await RawWebSocket.connect(server)
    for _ in range(2):
        client.send(b"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        client.head = await client.response_head()
        assert client.head.startswith("HTTP/1.1 404 "), client.head
        await client.reader.readexactly(int(client.header("Content-Length") or 0))
    await client.upgrade(server)
    await client.login("Reused")
    await client.close()


@pytest.mark.parametrize(
    ("request_head", "status", "says"),
    [
        (
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n",
            400,
            "Sec-WebSocket-Key",
        ),
        (
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n",
            400,
            "Sec-WebSocket-Key",
        ),
        (
            "GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            400,
            "Upgrade: websocket",
        ),
        (
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
            426,
            "version 13",
        ),
        ("POST /ws HTTP/1.1\r\nContent-Length: 0\r\n", 405, ""),
    ],
)
async def test_a_broken_upgrade_is_refused_with_its_reason(
    server: ParleyServer, request_head: str, status: int, says: str
) -> None:
    client = await RawWebSocket.connect(server)
    client.send(f"{request_head}Host: 127.0.0.1\r\nOrigin: {server.web_origin}\r\n\r\n".encode())
    client.head = await client.response_head()
    assert client.head.startswith(f"HTTP/1.1 {status} "), client.head
    body = await client.reader.readexactly(int(client.header("Content-Length") or 0))
    assert says in body.decode()
    if status == 426:
        assert client.header("Sec-WebSocket-Version") == "13"
    await client.close()
    assert server.tracker.total == 0


async def test_fragments_make_one_message_with_pings_between(server: ParleyServer) -> None:
    client = await RawWebSocket.open(server)
    hello = b'{"type":"hello","id":1,"versions":[1]}'
    client.send(frame(TEXT, hello[:10], fin=False))
    client.send(frame(PING, b"between"))
    client.send(frame(CONTINUATION, hello[10:20], fin=False))
    client.send(frame(CONTINUATION, hello[20:]))
    assert (await client.reply(1))["type"] == "welcome"
    assert client.pongs == [b"between"]
    # A character split between two fragments is decoded whole.
    nick = '{"type":"nick","id":2,"nick":"Zoë"}'.encode()
    split = nick.index("ë".encode()) + 1
    client.send(frame(TEXT, nick[:split], fin=False) + frame(CONTINUATION, nick[split:]))
    reply = await client.reply(2)
    assert (reply["type"], reply["nick"]) == ("ok", "Zoë")
    await client.close()


@pytest.mark.parametrize(
    "frames",
    [
        [frame(TEXT, b" " * (64 * 1024 + 1))],
        [
            frame(TEXT, b" " * 30_000, fin=False),
            frame(CONTINUATION, b" " * 30_000, fin=False),
            frame(CONTINUATION, b" " * 30_000),
        ],
        # A length far beyond what is sent: refused once more than 64 KiB have come.
        [frame(TEXT, b" " * 70_000, declared=2**40)],
    ],
    ids=["one-frame", "fragments", "claimed-length"],
)
async def test_a_message_over_64_kib_is_refused_with_1009(
    server: ParleyServer, frames: list[bytes]
) -> None:
    client = await RawWebSocket.open(server)
    for data in frames:
        client.send(data)
    assert await client.close_code() == 1009
    assert await client.ended()
    await _until(lambda: server.tracker.total == 0)
    await assert_still_serving(server.port)


async def test_a_binary_message_ends_the_connection_with_a_reason(server: ParleyServer) -> None:
    client = await RawWebSocket.open(server)
    await client.login("Binary")
    client.send(frame(BINARY, b'{"type":"ping","id":3}'))
    closing = await client.message()
    while closing["type"] != "closing":
        closing = await client.message()
    assert closing["code"] == "invalid-message"
    assert await client.close_code() == 1000
    assert await client.ended()
    await _until(lambda: not server.hub.is_online("binary"))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b'{"type":"hello","id":1,"x":"\xff"}'), 1007),
        # A valid start whose last fragment breaks the encoding.
        (frame(TEXT, b'{"x":"\xc3', fin=False) + frame(CONTINUATION, b'("}'), 1007),
        (frame(TEXT, b'{"type":"hello","id":1,"versions":[1]}', mask=False), 1002),
        (frame(TEXT, b"{}", rsv=0x40), 1002),  # compressed, never agreed
        (frame(PING, b"x", fin=False), 1002),  # a control frame in fragments
        (frame(CONTINUATION, b"{}"), 1002),  # continuing nothing
        (frame(0x3, b"{}"), 1002),  # a reserved opcode
        (frame(PING, b"x" * 126), 1002),  # a control frame over 125 bytes
    ],
    ids=[
        "bad-utf8",
        "bad-utf8-across-fragments",
        "unmasked",
        "rsv1",
        "fragmented-ping",
        "stray-continuation",
        "reserved-opcode",
        "long-ping",
    ],
)
async def test_a_broken_frame_is_refused_with_its_close_code(
    server: ParleyServer, data: bytes, code: int
) -> None:
    client = await RawWebSocket.open(server)
    client.send(data)
    assert await client.close_code() == code
    assert await client.ended()
    await _until(lambda: server.tracker.total == 0)


async def test_the_closing_handshake_is_answered(server: ParleyServer) -> None:
    client = await RawWebSocket.open(server)
    await client.login("Polite")
    client.send(frame(CLOSE, (1000).to_bytes(2, "big") + b"bye"))
    assert await client.close_code() == 1000
    assert await client.ended()
    await _until(lambda: server.tracker.total == 0)


async def test_an_abrupt_end_logs_the_browser_out(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    client = await RawWebSocket.open(server)
    await client.login("Gone")
    await alice.event("joined", nick="Gone")
    client.send(frame(TEXT, b'{"type":"ping",', fin=False))  # and then nothing more
    client.writer.transport.abort()
    await alice.event("left", nick="Gone")
    await _until(lambda: server.tracker.total == 1)
    await alice.close()


async def test_a_ping_flood_gets_few_pongs_and_the_chat_goes_on(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    client = await RawWebSocket.open(server)
    await client.login("Flooder")
    client.send(b"".join(frame(PING, str(n).encode()) for n in range(5000)))
    client.send(text({"type": "ping", "id": 9}))
    assert (await client.reply(9))["type"] == "pong"
    # At most one pong per read of the socket, answering the last ping of that read.
    assert 1 <= len(client.pongs) < 100
    assert client.pongs[-1] == b"4999"
    sent = await alice.request("send", to="#general", text="still here", msg_id="a1")
    assert sent["type"] == "sent"
    while (got := await client.message())["type"] != "message":
        pass
    assert got["text"] == "still here"
    await client.close()
    await alice.close()


async def test_a_browser_that_stops_answering_pings_is_dropped(
    server: ParleyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket, "PING_SECONDS", 0.2)
    lively = await RawWebSocket.open(server)
    await lively.login("Lively")
    silent = await RawWebSocket.open(server)
    await silent.login("Silent")
    answered = 0
    while answered < 4:  # two pings would have dropped a silent one
        opcode, payload = await lively.frame()
        if opcode == PING:
            lively.send(frame(PONG, payload))
            answered += 1
    # The silent one reads (its kernel acknowledges) but never answers.
    assert await silent.ended()
    await _until(lambda: not server.hub.is_online("silent"))
    assert server.hub.is_online("lively")
    lively.send(text({"type": "ping", "id": 5}))
    assert (await lively.reply(5))["type"] == "pong"
    await lively.close()


def _open_non_reading_websocket(port: int, origin: str) -> ssl.SSLSocket:
    """A blocking client with a tiny receive buffer: upgrade, log in, then never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    tls = insecure_context().wrap_socket(sock)
    tls.sendall(_upgrade_request(origin, base64.b64encode(os.urandom(16)).decode()))
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += tls.recv(1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    tls.sendall(
        text({"type": "hello", "id": 1, "versions": [1]})
        + text({"type": "nick", "id": 2, "nick": "Sloth"})
    )
    return tls


async def test_a_browser_that_does_not_read_is_cut_off(server_config: ServerConfig) -> None:
    config = dataclasses.replace(
        server_config,
        web_port=0,
        send_buffer_limit_bytes=256 * 1024,
        flood_burst_requests=100_000,
        flood_rate_per_second=100_000.0,
        **NO_SHARED_BUDGETS,
    )
    async with ParleyServer(config) as server:
        assert server.web_port is not None and server.web_origin is not None
        alice = await raw_user(server.port, "Alice")
        sloth = await asyncio.to_thread(
            _open_non_reading_websocket, server.web_port, server.web_origin
        )
        try:
            await _until(lambda: server.hub.is_online("sloth"))
            sent, left = 0, False
            # Bounded: 4,000 messages of 3.5 KB is 14 MB, far past any socket buffer.
            while sent < 4000 and server.hub.is_online("sloth"):
                for n in range(50):
                    alice.send(type="send", id=1000 + sent + n, to="#general", text="x" * 3500,
                               msg_id=f"m{sent + n}")  # fmt: skip
                sent += 50
                while (got := await alice.frame()).get("id") != 1000 + sent - 1:
                    left = left or (got["type"], got.get("nick")) == ("left", "Sloth")
            assert not server.hub.is_online("sloth"), "the browser that never reads stayed"
            if not left:
                await alice.event("left", nick="Sloth")
        finally:
            sloth.close()
        await alice.close()
        await assert_still_serving(server.port)


@pytest.mark.parametrize(
    "lines",
    [[1], [125], [126], [65535], [65536], [70_000], [3, 200, 70_000, 1]],
    ids=["1", "125", "126", "65535", "65536", "70000", "several"],
)
def test_what_the_server_writes_is_one_text_message_per_frame(lines: list[int]) -> None:
    frames = [(str(n % 10) * size).encode() for n, size in enumerate(lines)]
    browser = FrameParser(ConnectionType.CLIENT)
    browser.receive_data(websocket.text_frames(b"".join(f + b"\n" for f in frames)))
    messages = list(browser.events())
    assert all(isinstance(m, TextMessage) and m.message_finished for m in messages)
    assert [m.data.encode() for m in messages if isinstance(m, TextMessage)] == frames
