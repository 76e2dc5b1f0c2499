"""The server's TLS transport on its own: real TLS over loopback, a minimal protocol on top."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from parley.server import tls_transport
from parley.server.fd_poller import LoopPoller
from parley.server.tls_transport import TlsServer, start_tls_server
from parley.server.tracker import ConnectionTracker
from parley.tls import ensure_certificate, server_context
from support import insecure_context


class Recorder(asyncio.Protocol):
    """Remembers what happened; ``on_data`` decides what to do with received bytes."""

    def __init__(self, on_data: Callable[[Recorder, bytes], None]) -> None:
        self.on_data = on_data
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.lost = asyncio.get_running_loop().create_future()
        self.paused_writing = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.on_data(self, data)

    def pause_writing(self) -> None:
        self.paused_writing += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


@pytest.fixture
def tls(tmp_path: Path) -> ssl.SSLContext:
    cert, key = ensure_certificate(tmp_path)
    return server_context(cert, key)


@contextlib.asynccontextmanager
async def serve(
    tls: ssl.SSLContext, on_data: Callable[[Recorder, bytes], None], *, nodelay: bool = False
) -> AsyncIterator[tuple[TlsServer, list[Recorder]]]:
    protocols: list[Recorder] = []

    def factory() -> Recorder:
        protocols.append(Recorder(on_data))
        return protocols[-1]

    server = await start_tls_server(
        factory,
        "127.0.0.1",
        0,
        tls,
        handshake_timeout=5.0,
        tracker=ConnectionTracker(1000, 1000),
        refusal=b"refused\n",
        nodelay=nodelay,
    )
    try:
        yield server, protocols
    finally:
        server.close()
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.abort()


class CountingTls:
    """OpenSSL's connection object, with each TLS write (one SSL_write) appended to ``sends``."""

    def __init__(self, real: tls_transport.TlsConnection, sends: list[bytes]) -> None:
        self._real = real
        self._sends = sends

    def write(self, data: bytes) -> int:
        written = self._real.write(data)
        self._sends.append(bytes(data))
        return written

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def count_tls_writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every TLS write of the connections accepted from now on, in order."""
    sends: list[bytes] = []
    real_wrap = tls_transport.wrap_server_side

    def wrap(context: ssl.SSLContext, sock: socket.socket) -> tls_transport.TlsConnection:
        return CountingTls(real_wrap(context, sock), sends)  # type: ignore[return-value]

    monkeypatch.setattr(tls_transport, "wrap_server_side", wrap)
    return sends


async def connect(server: TlsServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = server.sockets[0].getsockname()[1]
    return await asyncio.open_connection("127.0.0.1", port, ssl=insecure_context())


async def test_writes_in_one_loop_iteration_leave_in_one_tls_write(
    tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    sends = count_tls_writes(monkeypatch)

    def reply_three_times(protocol: Recorder, data: bytes) -> None:
        assert protocol.transport is not None
        for word in (b"one\n", b"two\n", b"three\n"):
            protocol.transport.write(word)
        # Queued, not sent: the flush comes at the end of the loop iteration.
        assert protocol.transport.get_write_buffer_size() == 14

    async with serve(tls, reply_three_times) as (server, _):
        reader, writer = await connect(server)
        writer.write(b"go\n")
        assert await reader.readexactly(14) == b"one\ntwo\nthree\n"
        writer.close()
    assert sends == [b"one\ntwo\nthree\n"]


async def test_a_write_queued_while_many_are_flushed_joins_the_sends_to_come(
    tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 150 connections: the flusher sends to 100, lets the loop run (here: a second fan-out,
    # as a batch committed meanwhile would be), then sends to the rest.
    sends = count_tls_writes(monkeypatch)
    async with serve(tls, lambda protocol, data: None) as (server, protocols):
        clients = [await connect(server) for _ in range(150)]
        for _ in range(100):
            if len(protocols) == 150 and all(p.transport is not None for p in protocols):
                break
            await asyncio.sleep(0.05)

        def write_all(data: bytes) -> None:
            for protocol in protocols:
                assert protocol.transport is not None
                protocol.transport.write(data)

        def first() -> None:
            write_all(b"a")
            asyncio.get_running_loop().call_soon(write_all, b"b")

        asyncio.get_running_loop().call_soon(first)
        for reader, _ in clients:
            assert await asyncio.wait_for(reader.readexactly(2), 10) == b"ab"
        for _, writer in clients:
            writer.close()
    # 100 got "a" alone and then "b"; the other 50 got both in one send.
    assert sorted(sends) == sorted([b"a"] * 100 + [b"b"] * 100 + [b"ab"] * 50)


async def test_a_large_burst_reaches_a_slow_reader_intact(tls: ssl.SSLContext) -> None:
    chunks = [bytes([i]) * 65536 for i in range(64)]  # 4 MiB, far more than socket buffers

    def send_burst(protocol: Recorder, data: bytes) -> None:
        assert protocol.transport is not None
        protocol.transport.set_write_buffer_limits(high=16 * 1024 * 1024)
        for chunk in chunks:
            protocol.transport.write(chunk)
        protocol.transport.close()  # after everything queued has been sent

    async with serve(tls, send_burst) as (server, protocols):
        reader, writer = await connect(server)
        writer.write(b"go\n")
        digest = hashlib.sha256()
        total = 0
        while data := await reader.read(65536):
            digest.update(data)
            total += len(data)
            if total < 1024 * 1024:
                await asyncio.sleep(0.001)  # read slowly at first, so the server must wait
        assert total == 64 * 65536
        assert digest.digest() == hashlib.sha256(b"".join(chunks)).digest()
        assert await asyncio.wait_for(protocols[0].lost, 5) is None
        writer.close()


async def test_going_over_the_high_water_mark_pauses_writing(tls: ssl.SSLContext) -> None:
    def flood(protocol: Recorder, data: bytes) -> None:
        assert protocol.transport is not None
        protocol.transport.set_write_buffer_limits(high=1000)
        protocol.transport.write(b"x" * 999)
        assert protocol.paused_writing == 0
        protocol.transport.write(b"xx")
        assert protocol.paused_writing == 1

    async with serve(tls, flood) as (server, protocols):
        reader, writer = await connect(server)
        writer.write(b"go\n")
        assert len(await reader.readexactly(1001)) == 1001
        assert protocols[0].paused_writing == 1
        writer.close()


async def test_paused_reading_holds_data_until_resumed(tls: ssl.SSLContext) -> None:
    def pause_at_once(protocol: Recorder, data: bytes) -> None:
        assert protocol.transport is not None
        protocol.transport.pause_reading()

    async with serve(tls, pause_at_once) as (server, protocols):
        _, writer = await connect(server)
        writer.write(b"first\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"second\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        (protocol,) = protocols
        assert bytes(protocol.received) == b"first\n"
        protocol.on_data = lambda _protocol, _data: None
        assert protocol.transport is not None
        protocol.transport.resume_reading()
        await asyncio.sleep(0.1)
        assert bytes(protocol.received) == b"first\nsecond\n"
        writer.close()


async def test_a_client_closing_is_reported_once(tls: ssl.SSLContext) -> None:
    async with serve(tls, lambda _protocol, _data: None) as (server, protocols):
        _, writer = await connect(server)
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
        (protocol,) = protocols
        assert await asyncio.wait_for(protocol.lost, 5) is None
        assert bytes(protocol.received) == b"hello\n"
        assert protocol.transport is not None and protocol.transport.is_closing()


async def test_a_failed_handshake_never_reaches_the_protocol(tls: ssl.SSLContext) -> None:
    async with serve(tls, lambda _protocol, _data: None) as (server, protocols):
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        assert b"HTTP" not in data  # a TLS alert at most, then the end
        writer.close()
        assert all(protocol.transport is None for protocol in protocols)


@pytest.mark.parametrize("nodelay", [False, True])
async def test_nagle_is_on_unless_nodelay_is_asked_for(tls: ssl.SSLContext, nodelay: bool) -> None:
    async with serve(tls, lambda _protocol, _data: None, nodelay=nodelay) as (server, protocols):
        _, writer = await connect(server)
        writer.write(b"hello\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        (protocol,) = protocols
        assert protocol.transport is not None
        sock = protocol.transport.get_extra_info("socket")
        assert bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
        writer.close()


async def test_closing_with_unread_input_still_delivers_the_last_bytes(
    tls: ssl.SSLContext,
) -> None:
    def say_bye_at_once(protocol: Recorder, data: bytes) -> None:
        assert protocol.transport is not None
        if not protocol.transport.is_closing():
            protocol.transport.write(b"bye\n")
            protocol.transport.close()

    async with serve(tls, say_bye_at_once) as (server, protocols):
        reader, writer = await connect(server)
        # Far more than the server reads before it closes: the rest stays unread in its socket.
        for _ in range(64):
            writer.write(b"x" * 4096 + b"\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"bye\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # an orderly end, not a reset
        writer.close()
        assert await asyncio.wait_for(protocols[0].lost, 5) is None


def echo(protocol: Recorder, data: bytes) -> None:
    assert protocol.transport is not None
    protocol.transport.write(data)


@pytest.fixture(params=["shared poller", "loop's own readers"])
def poller(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of watching sockets: the server's one epoll set, and (as where there is no
    epoll) a registration per socket in the loop.
    """
    if request.param == "loop's own readers":
        monkeypatch.setattr(tls_transport, "fd_poller", LoopPoller)
    return str(request.param)


async def test_a_connection_paused_for_reading_stays_paused_while_many_others_are_served(
    tls: ssl.SSLContext, poller: str
) -> None:
    def pause_the_first(protocol: Recorder, data: bytes) -> None:
        assert protocol.transport is not None
        if protocol is protocols[0]:
            protocol.transport.pause_reading()
        else:
            protocol.transport.write(data)

    async with serve(tls, pause_the_first) as (server, protocols):
        paused_reader, paused_writer = await connect(server)
        paused_writer.write(b"first\n")
        await paused_writer.drain()
        for _ in range(100):
            if protocols and protocols[0].received:
                break
            await asyncio.sleep(0.02)
        paused_writer.write(b"second\n")
        await paused_writer.drain()
        others = [await connect(server) for _ in range(40)]
        for round_ in range(3):
            for number, (_, writer) in enumerate(others):
                writer.write(f"{round_}:{number}\n".encode())
            for number, (reader, _) in enumerate(others):
                line = await asyncio.wait_for(reader.readline(), 10)
                assert line == f"{round_}:{number}\n".encode()
        assert bytes(protocols[0].received) == b"first\n"
        assert protocols[0].transport is not None
        assert not protocols[0].transport.is_reading()
        protocols[0].on_data = lambda _protocol, _data: None
        protocols[0].transport.resume_reading()
        for _ in range(100):
            if bytes(protocols[0].received) == b"first\nsecond\n":
                break
            await asyncio.sleep(0.02)
        assert bytes(protocols[0].received) == b"first\nsecond\n"
        for _, writer in [(paused_reader, paused_writer), *others]:
            writer.close()


async def test_a_socket_number_freed_by_a_close_serves_the_next_connection(
    tls: ssl.SSLContext, poller: str
) -> None:
    server_fds: list[int] = []
    async with serve(tls, echo) as (server, protocols):
        for number in range(12):
            reader, writer = await connect(server)
            writer.write(f"hello {number}\n".encode())
            assert await asyncio.wait_for(reader.readline(), 5) == f"hello {number}\n".encode()
            protocol = protocols[-1]
            assert protocol.transport is not None
            server_fds.append(protocol.transport.get_extra_info("socket").fileno())
            # Closed from either end in turn: by the client, or by the server (which lingers).
            if number % 2:
                protocol.transport.close()
                assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            assert await asyncio.wait_for(protocol.lost, 5) is None
            # The old connection hears nothing of the new ones.
            assert bytes(protocol.received) == f"hello {number}\n".encode()
        if poller == "shared poller":
            for _ in range(100):
                if not len(server._poller):  # type: ignore[arg-type]
                    break
                await asyncio.sleep(0.05)
            assert len(server._poller) == 0  # type: ignore[arg-type]
    # The kernel hands out the lowest free number: the case under test did occur.
    assert len(set(server_fds)) < len(server_fds)
