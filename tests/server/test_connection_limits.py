"""Connection limits on both ports, over real TLS on loopback: sockets still in their TLS
handshake count, per address group, and the file port has limits of its own.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a client bound to 127.0.0.2 is
"another host" to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.config import ServerConfig
from parley.protocol import transfer
from parley.server.app import ParleyServer
from support import TIMEOUT_SECONDS, insecure_context

OTHER_HOST = "127.0.0.2"


@contextlib.asynccontextmanager
async def stalled(
    port: int, count: int, host: str = "127.0.0.1", source: str = "127.0.0.1"
) -> AsyncIterator[list[socket.socket]]:
    """``count`` TCP connections from ``source`` that never start their TLS handshake."""
    sockets: list[socket.socket] = []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((source, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        # Let the server accept them all before the test goes on.
        await asyncio.sleep(0.3)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


async def first_line(
    port: int, source: str = "127.0.0.1", host: str = "127.0.0.1", send: bytes = b""
) -> dict[str, Any]:
    """Connect over TLS from ``source``, send ``send``, and return the first line received."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            host, port, ssl=insecure_context(), local_addr=(source, 0), limit=2**20
        ),
        TIMEOUT_SECONDS,
    )
    try:
        writer.write(send)
        line = await asyncio.wait_for(reader.readline(), TIMEOUT_SECONDS)
        assert line, "closed without a line"
        answer: dict[str, Any] = json.loads(line)
        return answer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


HELLO = b'{"type": "hello", "id": 1, "versions": [1]}\n'
# A start line with a token nobody was given: a server that lets the connection in answers it.
START = transfer.encode(transfer.Start(token="x" * 32, offset=0))


async def welcomed(port: int, source: str = "127.0.0.1", host: str = "127.0.0.1") -> bool:
    answer = await first_line(port, source, host, HELLO)
    if answer["type"] == "closing":
        assert answer["code"] == "too-many-connections", answer
        return False
    assert answer["type"] == "welcome", answer
    return True


async def file_port_admits(port: int, source: str = "127.0.0.1") -> bool:
    answer = await first_line(port, source, send=START)
    assert answer["type"] == "error", answer
    if answer["code"] == "too-many-connections":
        return False
    assert answer["code"] == "no-such-file", answer  # let in, and told the token is unknown
    return True


def files_port(server: ParleyServer) -> int:
    assert server.files is not None
    return server.files.port


async def test_stalled_handshakes_count_against_the_chat_ports_limit(
    server_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parley.server")
    config = dataclasses.replace(server_config, max_connections_per_address=5)
    async with ParleyServer(config) as server:
        async with stalled(server.port, 5):
            assert not await welcomed(server.port)  # told why, after its handshake
            assert not await welcomed(server.port)
            assert await welcomed(server.port, source=OTHER_HOST)  # another host is not held
        await asyncio.sleep(0.3)
        assert await welcomed(server.port)  # the stalled ones gone, the address is let in
    # Named once as it starts and once as it ends, not once per refused connection.
    refusing = [r.getMessage() for r in caplog.records if "connections on the chat" in r.message]
    assert refusing == [
        "Refusing connections on the chat port from 127.0.0.1: 5 open, the limit "
        "(max_connections_per_address)",
        "Accepting connections on the chat port from 127.0.0.1 again",
    ]


async def test_stalled_handshakes_count_against_the_file_ports_limit(
    server_config: ServerConfig,
) -> None:
    config = dataclasses.replace(server_config, max_file_connections_per_address=5)
    async with ParleyServer(config) as server:
        port = files_port(server)
        async with stalled(port, 5):
            assert not await file_port_admits(port)
            assert await file_port_admits(port, source=OTHER_HOST)
            assert await welcomed(server.port)  # the chat port counts on its own
        await asyncio.sleep(0.3)
        assert await file_port_admits(port)


async def test_the_file_ports_total_limit(server_config: ServerConfig) -> None:
    config = dataclasses.replace(
        server_config, max_file_connections=6, max_file_connections_per_address=4
    )
    async with ParleyServer(config) as server:
        port = files_port(server)
        async with stalled(port, 3), stalled(port, 3, source=OTHER_HOST):
            assert not await file_port_admits(port, source="127.0.0.3")
        await asyncio.sleep(0.3)
        assert await file_port_admits(port, source="127.0.0.3")


async def test_a_flood_of_stalled_sockets_from_one_host_is_refused_at_once(
    server_config: ServerConfig,
) -> None:
    """Past the limit, at most a few refusals wait for their handshake; the others are
    closed on accept, so one host cannot hold the server's descriptors.
    """
    config = dataclasses.replace(
        server_config, max_connections_per_address=10, tls_handshake_timeout_seconds=30.0
    )
    async with ParleyServer(config) as server, stalled(server.port, 300) as flood:
        closed = 0
        for sock in flood:
            with contextlib.suppress(BlockingIOError):
                try:
                    data = sock.recv(1)
                except ConnectionResetError:
                    data = b""
                closed += data == b""
        assert closed >= 300 - 10 - 64
        assert server.tracker.total == 10
        assert await welcomed(server.port, source=OTHER_HOST)


async def test_a_handshake_that_never_completes_is_dropped_at_the_deadline(
    server_config: ServerConfig,
) -> None:
    config = dataclasses.replace(server_config, tls_handshake_timeout_seconds=0.5)
    async with ParleyServer(config) as server:
        assert server._transfers is not None
        for port in (server.port, files_port(server)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # Nothing is sent: no ClientHello. The server gives up after the deadline.
            assert await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS) == b""
            writer.close()
        await asyncio.sleep(0.1)
        assert server.tracker.total == 0
        assert server._transfers.tracker.total == 0


async def test_handshakes_under_way_are_dropped_when_the_server_stops(
    server_config: ServerConfig,
) -> None:
    # A socket still in its handshake when the server stops is closed by the stop, not left
    # open until the garbage collector finds it (the default handshake deadline is 10 s).
    streams = []
    async with ParleyServer(server_config) as server:
        for port in (server.port, files_port(server)):
            streams.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.2)  # accepted, in the handshake
    for reader, writer in streams:
        assert await asyncio.wait_for(reader.read(), 2.0) == b""
        writer.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_connections_are_counted_by_their_64(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, host="::1", max_connections_per_address=3)
    async with ParleyServer(config) as server:
        async with stalled(server.port, 3, host="::1", source="::1"):
            assert server.tracker.count("::/64") == 3
            assert not await welcomed(server.port, source="::1", host="::1")
        await asyncio.sleep(0.3)
        assert await welcomed(server.port, source="::1", host="::1")
