"""Hostile and broken clients, each next to what it must not disturb: after every case, a normal
client still chats. All over real TLS (or plain TCP where that is the attack) on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl

import pytest

from parley.config import ServerConfig
from parley.protocol.messages import Message
from parley.server.app import ParleyServer
from support import (
    NO_SHARED_BUDGETS,
    RawClient,
    assert_still_serving,
    insecure_context,
    logged_in,
    next_of,
)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\xff\xfe garbage \x80\n", "bad-frame"),
        (b'{"type": "hello", "id": 1, "versions": [1], "client": "\xff\xfe"}\n', "bad-frame"),
        (b'{"type": "hello", "id": 1,\n', "bad-frame"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad-frame"),
    ],
    ids=["garbage", "invalid-utf8", "invalid-json", "http"],
)
async def test_bytes_that_are_not_frames_close_the_connection_with_a_reason(
    server: ParleyServer, data: bytes, code: str
) -> None:
    raw = await RawClient.open(server.port)
    raw.send_bytes(data)
    await raw.expect("closing", code=code)
    assert await raw.closed()
    await assert_still_serving(server.port)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "teleport", "id": 7}, "invalid-message"),
        ({"type": "hello", "id": 7, "versions": "one"}, "invalid-message"),
        ({"type": "ping", "id": 7, "extra": "ignored"}, None),
        (
            {"type": "send", "id": 7, "to": "#general", "text": "hi", "msg_id": "x"},
            "not-allowed-now",
        ),
    ],
    ids=["unknown-type", "wrong-field-type", "unknown-field", "wrong-state"],
)
async def test_invalid_requests_get_an_error_reply_and_the_connection_goes_on(
    server: ParleyServer, frame: dict[str, object], code: str | None
) -> None:
    raw = await RawClient.open(server.port)
    raw.send(type="hello", id=1, versions=[1])
    await raw.expect("welcome")
    raw.send(**frame)
    reply = await raw.frame()
    if code is None:
        assert reply == {"type": "pong", "id": 7}
    else:
        assert (reply["type"], reply["id"], reply["code"]) == ("error", 7, code)
        assert reply["message"]
    raw.send(type="ping", id=8)
    await raw.expect("pong", id=8)
    await raw.close()


async def test_a_peer_sending_only_junk_requests_is_disconnected(server: ParleyServer) -> None:
    raw = await RawClient.open(server.port)
    raw.send_bytes(b'{"type": "nonsense"}\n' * 50)
    await raw.expect("closing", code="too-many-errors")
    assert await raw.closed()
    await assert_still_serving(server.port)


async def test_an_oversized_frame_is_refused_before_it_is_buffered_whole(
    server: ParleyServer,
) -> None:
    raw = await RawClient.open(server.port)
    raw.send(type="hello", id=1, versions=[1])
    await raw.expect("welcome")
    # 8 MiB without a newline: the server must close long before it would have all of it.
    chunk = b"a" * 65536
    closing = asyncio.create_task(raw.expect("closing", code="frame-too-large"))
    with pytest.raises((ConnectionError, ssl.SSLError)):
        for _ in range(128):
            raw.send_bytes(chunk)
            await asyncio.wait_for(raw.writer.drain(), 10)
            if closing.done():
                raise ConnectionResetError("closed by the server, as expected")
    await closing
    await assert_still_serving(server.port)


async def test_a_frame_at_the_limit_is_accepted(server: ParleyServer) -> None:
    raw = await RawClient.open(server.port)
    await raw.login("Big")
    text = "é" * 4000  # 8,000 bytes of UTF-8, the longest text allowed
    raw.send(type="send", id=3, to="#general", text=text, msg_id="big")
    message = await raw.expect("message")
    assert message["text"] == text
    await raw.expect("sent", id=3)
    raw.send(type="send", id=4, to="#general", text=text + "é", msg_id="too-big")
    await raw.expect("error", id=4, code="invalid-text")
    await raw.close()


async def test_control_characters_and_escapes_in_text_are_refused(server: ParleyServer) -> None:
    raw = await RawClient.open(server.port)
    await raw.login("Mallory")
    listener = await logged_in(server.port, "Victim")
    for i, text in enumerate(["\x1b[2J\x1b[Hpwned", "line\nbreak", "bell\x07", "\x9b31m", "  "]):
        raw.send(type="send", id=10 + i, to="#general", text=text, msg_id=f"m{i}")
        await raw.expect("error", id=10 + i, code="invalid-text")
    raw.send(type="send", id=20, to="#general", text="harmless\ttab", msg_id="ok")
    await raw.expect("sent", id=20)
    # The first message the victim receives is the harmless one: nothing else got through.
    assert (await next_of(listener, Message)).text == "harmless\ttab"
    await raw.close()
    await listener.close()


async def test_plain_tcp_clients_are_closed_without_disturbing_others(
    server: ParleyServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b'{"type": "hello", "id": 1, "versions": [1]}\n')
    data = await asyncio.wait_for(reader.read(), 10)
    assert b"welcome" not in data  # closed during the TLS handshake
    writer.close()
    await assert_still_serving(server.port)


async def test_stalled_tls_handshakes_time_out_and_do_not_block_others(
    server_config: ServerConfig,
) -> None:
    assert ServerConfig().tls_handshake_timeout_seconds == 10.0  # as shipped; shortened here
    config = dataclasses.replace(server_config, tls_handshake_timeout_seconds=1.0)
    async with ParleyServer(config) as server:
        stalled = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(100)]
        # Meanwhile, a normal client connects and chats.
        await assert_still_serving(server.port)
        for reader, writer in stalled:
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()


async def test_a_connection_that_never_says_hello_times_out(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, hello_timeout_seconds=0.3)
    async with ParleyServer(config) as server:
        raw = await RawClient.open(server.port)
        await raw.expect("closing", code="login-timeout")
        assert await raw.closed()
        assert ServerConfig().hello_timeout_seconds == 10.0


async def test_a_flooding_client_is_slowed_then_dropped(server_config: ServerConfig) -> None:
    config = dataclasses.replace(
        server_config, flood_burst_requests=5, flood_rate_per_second=1.0, flood_debt_requests=10
    )
    async with ParleyServer(config) as server:
        polite = await logged_in(server.port, "Polite")
        raw = await RawClient.open(server.port)
        await raw.login("Flooder")  # 2 of the 5 requests in the burst
        for i in range(30):
            raw.send(type="send", id=100 + i, to="#general", text=f"spam {i}", msg_id=str(i))
        replies = []
        while (frame := await raw.frame())["type"] != "closing":
            if "id" in frame:
                replies.append(frame)
        assert frame["code"] == "flooding"
        # The three left in the burst were accepted (their acks may be cut off with the
        # connection, as storing takes longer than refusing), then the server said "slow down"
        # until it gave up.
        assert all(r["type"] == "sent" for r in replies if r["id"] < 103), replies
        assert {r.get("code") for r in replies if r["id"] >= 103} == {"rate-limited"}
        assert await raw.closed()
        # Others were never limited: the three requests left in their own burst go through.
        for i in range(3):
            await polite.send("#general", f"polite {i}")
        await polite.close()


async def test_connections_per_address_are_limited(server_config: ServerConfig) -> None:
    config = dataclasses.replace(server_config, max_connections_per_address=3)
    async with ParleyServer(config) as server:
        held = [await RawClient.open(server.port) for _ in range(3)]
        extra = await RawClient.open(server.port)
        await extra.expect("closing", code="too-many-connections")
        assert await extra.closed()
        await held[0].close()
        await asyncio.sleep(0.2)
        replacement = await RawClient.open(server.port)
        replacement.send(type="hello", id=1, versions=[1])
        await replacement.expect("welcome")
        for raw in [*held[1:], replacement]:
            await raw.close()


def _open_non_reading_client(port: int) -> ssl.SSLSocket:
    """A blocking TLS client with a tiny receive buffer that logs in and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    tls = insecure_context().wrap_socket(sock)
    tls.sendall(b'{"type":"hello","id":1,"versions":[1]}\n{"type":"nick","id":2,"nick":"Sloth"}\n')
    return tls


async def test_a_client_that_never_reads_is_disconnected_and_others_get_everything(
    server_config: ServerConfig,
) -> None:
    config = dataclasses.replace(
        server_config,
        send_buffer_limit_bytes=256 * 1024,
        flood_burst_requests=100_000,
        flood_rate_per_second=100_000.0,
        **NO_SHARED_BUDGETS,
    )
    async with ParleyServer(config) as server:
        speaker = await logged_in(server.port, "Speaker")
        reader = await logged_in(server.port, "Reader")
        sloth = await asyncio.to_thread(_open_non_reading_client, server.port)
        try:
            while "Sloth" not in (await speaker.list_users()).users:
                await asyncio.sleep(0.05)
            text = "x" * 3500
            sent = 0
            # Bounded: 4,000 messages of 3.5 KB is 14 MB, far past any socket buffer.
            while sent < 4000 and "Sloth" in (await speaker.list_users()).users:
                await asyncio.gather(*(speaker.send("#general", text) for _ in range(50)))
                sent += 50
            assert "Sloth" not in (await speaker.list_users()).users, "the slow reader stayed"
            received = 0
            while received < sent:
                event = await next_of(reader, Message)
                assert event.sender == "Speaker"
                received += 1
        finally:
            sloth.close()
        await speaker.close()
        await reader.close()
