"""Delivery that goes wrong for one member: a write that raises, a reader cut off in the middle
of a room's fan-out. The others get every message, in the same order, and the room goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
from typing import Any

import pytest

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from parley.server.connection import Connection
from support import NO_SHARED_BUDGETS, RawClient, assert_still_serving, insecure_context, raw_user


def _connection_of(server: ParleyServer, nick: str) -> Connection:
    [found] = [c for c in server.tracker.live if isinstance(c, Connection) and c.nick == nick]
    return found


async def test_a_member_whose_write_raises_is_cut_and_the_room_goes_on(
    server: ParleyServer, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await raw_user(server.port, "Alice")
    bob = await raw_user(server.port, "Bob")
    carol = await raw_user(server.port, "Carol")
    general = await server.hub.room_named("#general")

    def broken(frame: bytes) -> None:
        raise RuntimeError("injected: a bug in one member's write")

    general.members[_connection_of(server, "Bob")] = broken
    with caplog.at_level(logging.ERROR):
        for text in ("one", "two"):
            sent = await alice.request("send", to="#general", text=text, msg_id=text)
            assert sent["type"] == "sent"
    frames: list[dict[str, Any]] = []
    while len(frames) < 3:
        frame = await carol.frame()
        if frame["type"] in ("message", "left"):
            frames.append(frame)
    assert [(f["type"], f.get("text") or f.get("nick")) for f in frames] == [
        ("message", "one"),
        ("left", "Bob"),
        ("message", "two"),
    ]
    assert await bob.closed()
    failures = [r for r in caplog.records if "writing to Bob failed" in r.getMessage()]
    assert len(failures) == 1
    await assert_still_serving(server.port)
    await alice.close()
    await carol.close()


def _open_non_reading_client(port: int) -> ssl.SSLSocket:
    """A blocking TLS client with a tiny receive buffer that logs in and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    tls = insecure_context().wrap_socket(sock)
    tls.sendall(b'{"type":"hello","id":1,"versions":[1]}\n{"type":"nick","id":2,"nick":"Sloth"}\n')
    return tls


@dataclasses.dataclass
class _Cut:
    """A room of Alice, Sloth (never reads) and Carol, in that order, after Alice's messages
    got Sloth cut off: what Alice and Carol received, and Sloth's socket.
    """

    alice: list[dict[str, Any]]
    carol: list[dict[str, Any]]
    sloth: ssl.SSLSocket


async def _cut_a_reader_mid_delivery(server: ParleyServer) -> _Cut:
    alice = await raw_user(server.port, "Alice")
    sloth = await asyncio.to_thread(_open_non_reading_client, server.port)
    while not server.hub.is_online("sloth"):
        await asyncio.sleep(0.05)
    carol = await raw_user(server.port, "Carol")
    seen: dict[str, list[dict[str, Any]]] = {"alice": [], "carol": []}

    async def read(name: str, client: RawClient, until: int) -> None:
        frames = seen[name]
        while sum(f["type"] == "message" for f in frames) < until:
            frames.append(await client.frame())

    sent = 0
    # Bounded: 4,000 messages of 3.5 KB is 14 MB, far past any socket buffer.
    while sent < 4000 and server.hub.is_online("sloth"):
        for n in range(50):
            alice.send(type="send", id=1000 + sent + n, to="#general", text="x" * 3500,
                       msg_id=f"m{sent + n}")  # fmt: skip
        sent += 50
        await asyncio.gather(read("alice", alice, sent), read("carol", carol, sent))
    assert not server.hub.is_online("sloth"), "the reader that never reads stayed"
    for name, client in (("alice", alice), ("carol", carol)):
        frames = seen[name]
        while not any(f["type"] == "left" and f["nick"] == "Sloth" for f in frames):
            frames.append(await client.frame())
    await alice.close()
    await carol.close()
    return _Cut(seen["alice"], seen["carol"], sloth)


def _last_seq_before_left(frames: list[dict[str, Any]]) -> int:
    last = 0
    for frame in frames:
        if frame["type"] == "message":
            last = frame["seq"]
        elif frame["type"] == "left" and frame["nick"] == "Sloth":
            return last
    raise AssertionError("no left for Sloth")


@pytest.fixture
def small_buffers(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(
        server_config,
        send_buffer_limit_bytes=256 * 1024,
        flood_burst_requests=100_000,
        flood_rate_per_second=100_000.0,
        **NO_SHARED_BUDGETS,
    )


async def test_everyone_sees_the_message_that_cut_a_slow_reader_before_its_left(
    small_buffers: ServerConfig,
) -> None:
    async with ParleyServer(small_buffers) as server:
        cut = await _cut_a_reader_mid_delivery(server)
        cut.sloth.close()
        # Alice comes before Sloth in the room, Carol after: both see the same order.
        assert _last_seq_before_left(cut.carol) == _last_seq_before_left(cut.alice)
        await assert_still_serving(server.port)


def _read_raw_until_closed(sock: ssl.SSLSocket) -> str:
    """Read the TCP stream below TLS until it ends: "reset" or "end of file"."""
    sock.settimeout(10)
    try:
        while socket.socket.recv(sock, 1 << 20):
            pass
    except ConnectionResetError:
        return "reset"
    return "end of file"


async def test_a_reader_cut_for_not_reading_is_reset_and_its_bytes_dropped(
    small_buffers: ServerConfig,
) -> None:
    async with ParleyServer(small_buffers) as server:
        cut = await _cut_a_reader_mid_delivery(server)
        try:
            # After the moment it had to read its `closing`, the server resets the connection
            # rather than leave megabytes of unread frames to its kernel.
            await asyncio.sleep(1.5)
            assert await asyncio.to_thread(_read_raw_until_closed, cut.sloth) == "reset"
        finally:
            cut.sloth.close()
        await assert_still_serving(server.port)
