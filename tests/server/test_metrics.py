"""The HTTP listener (metrics_listen): /healthz, /readyz and /metrics scraped over real HTTP
from a real server while real TLS clients log in, chat and share files; its hostile cases;
and that it is off unless asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fault_proxy import FaultProxy
from parley import logs
from parley.client.core import ChatClient
from parley.client.transfer import download, upload
from parley.config import ServerConfig
from parley.protocol.messages import Message
from parley.server.app import ParleyServer
from parley.server.preflight import StartupRefused
from parley.storage.postgres import PostgresStorage, Timeouts
from postgres_support import POSTGRES_URL, postgres_schema
from support import (
    NO_SHARED_BUDGETS,
    TIMEOUT_SECONDS,
    RawClient,
    assert_still_serving,
    insecure_context,
    logged_in,
    next_of,
    raw_user,
)

Labels = tuple[tuple[str, str], ...]


class Scrape:
    """One /metrics page, parsed by the Prometheus client library's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def metrics_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(
        server_config,
        metrics_listen="127.0.0.1:0",
        flood_burst_requests=100_000,
        flood_rate_per_second=100_000.0,
        **NO_SHARED_BUDGETS,
    )


@pytest.fixture
async def server(metrics_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    async with ParleyServer(metrics_config) as running:
        yield running


async def _get(server: ParleyServer, path: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, content type, body) of one request to the server's HTTP listener."""
    assert server.metrics_port is not None
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, f"http://127.0.0.1:{server.metrics_port}{path}") as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def _scrape(server: ParleyServer) -> Scrape:
    status, content_type, body = await _get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    return Scrape(body)


async def _eventually(server: ParleyServer, check: Callable[[Scrape], bool], what: str) -> Scrape:
    """Scrape until ``check`` holds (the server counts some things a moment after a client
    sees them); fails the test after TIMEOUT_SECONDS.
    """
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        scrape = await _scrape(server)
        if check(scrape):
            return scrape
        assert time.monotonic() < deadline, f"{what}; last scrape:\n{scrape.text}"
        await asyncio.sleep(0.05)


async def _until_offline(server: ParleyServer, nick: str) -> None:
    for _ in range(200):
        if not server.hub.is_online(nick.lower()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{nick} stayed online")


def _file(path: Path, size: int) -> Path:
    block = hashlib.sha256(b"metrics").digest() * 2048
    with path.open("wb") as out:
        written = 0
        while written < size:
            written += out.write(block[: size - written])
    return path


# --- what the counters say -------------------------------------------------------------------


async def test_counters_move_by_what_users_do(server: ParleyServer, tmp_path: Path) -> None:
    start = await _scrape(server)
    for method in ("password", "token", "guest"):
        assert start("parley_logins_total", method=method) == 0

    # Logins: three guests, then Carol's account by password and by the token that gave.
    alice = await logged_in(server.port, "Alice")
    bob = await logged_in(server.port, "Bob")
    carol = await logged_in(server.port, "Carol")
    await carol.register("correct horse battery staple")
    await carol.close()
    await _until_offline(server, "Carol")
    carol = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    token = (await carol.login("Carol", password="correct horse battery staple")).token
    await carol.close()
    await _until_offline(server, "Carol")
    carol = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await carol.login("Carol", token=token)
    logins = await _scrape(server)
    assert logins("parley_logins_total", method="guest") == 3
    assert logins("parley_logins_total", method="password") == 1
    assert logins("parley_logins_total", method="token") == 1
    # Counted at most once a second: Carol's earlier connections may be in the last count.
    await _eventually(
        server, lambda s: s("parley_connections", state="active") == 3, "three online"
    )

    # Messages: three stored, each delivered to the three members of #general; a resend of
    # the first is a duplicate: in a batch, but neither stored again nor delivered.
    members = len((await server.hub.room_named("#general")).members)
    assert members == 3
    before = await _scrape(server)
    for n in range(3):
        await alice.send("#general", f"secret words {n}", msg_id=f"m{n}")
    assert (await alice.send("#general", "secret words 0", msg_id="m0")).duplicate
    for _ in range(3):
        await next_of(bob, Message)
    after = await _scrape(server)

    def moved(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    assert moved("parley_messages_stored_total") == 3
    assert moved("parley_deliveries_total") == 3 * members
    assert moved("parley_commit_batch_messages_count") == 4  # sent one at a time
    assert moved("parley_commit_batch_messages_sum") == 4
    assert moved("parley_storage_duration_seconds_count", operation="append") == 4
    assert moved("parley_storage_duration_seconds_sum", operation="append") > 0

    # Files: every byte up and every byte down is counted, and the announcement is stored.
    source = _file(tmp_path / "report.pdf", 700_001)
    file_id = await upload(alice, source, "Bob")
    saved = await download(bob, file_id, tmp_path / "downloads")
    assert saved.read_bytes() == source.read_bytes()
    size = source.stat().st_size
    files = await _eventually(
        server,
        lambda s: s("parley_file_sent_bytes_total") - after("parley_file_sent_bytes_total") >= size,
        "the download's bytes were not all counted",
    )
    assert files("parley_file_received_bytes_total") - after(
        "parley_file_received_bytes_total"
    ) == (size)
    assert files("parley_file_sent_bytes_total") - after("parley_file_sent_bytes_total") == size
    assert files("parley_messages_stored_total") - after("parley_messages_stored_total") == 1

    # Nothing a user typed or is called, and no token or address, is ever a label or a name.
    for secret in ("Alice", "alice", "Bob", "Carol", "secret words", token, "report", "127.0.0"):
        assert secret not in files.text
    allowed = {
        "method": {"password", "token", "guest"},
        "state": {"handshaking", "hello", "login", "active", "closing"},
        "operation": {"append", "probe"},
        "port": {"chat", "files"},
        "limit": {"per_address", "total"},
    }
    for _, labels in files.samples:
        for key, value in labels:
            if key != "le":  # a histogram's bucket bound
                assert value in allowed[key], (key, value)
    for client in (alice, bob, carol):
        await client.close()


async def test_log_lines_the_output_does_not_take_are_counted(server: ParleyServer) -> None:
    """A log on a pipe nobody reads: the lines beyond the queue are dropped, and counted."""
    read_end, write_end = os.pipe()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = os.fdopen(write_end, "w", encoding="utf-8")
    try:
        before = (await _scrape(server))("parley_log_lines_dropped_total")
        logs.configure("info", stream, queue_lines=100)
        log = logging.getLogger("parley.test")
        # Far more than the pipe (64 KiB) and the queue hold: logging goes on regardless.
        for number in range(5000):
            log.info("line %d of a log nobody reads, long enough to fill the pipe soon", number)
        after = (await _scrape(server))("parley_log_lines_dropped_total")
        assert after - before == logs.dropped_lines() > 0
    finally:

        def drain() -> None:
            while os.read(read_end, 65536):
                pass

        reading = threading.Thread(target=drain, daemon=True)
        reading.start()
        stopped = logs.shutdown(TIMEOUT_SECONDS)
        root.handlers[:] = handlers
        root.setLevel(level)
        stream.close()
        reading.join(TIMEOUT_SECONDS)
        os.close(read_end)
    assert stopped


async def test_connections_are_counted_by_state(server: ParleyServer) -> None:
    def states(**expected: int) -> Callable[[Scrape], bool]:
        every = dict.fromkeys(("handshaking", "hello", "login", "active", "closing"), 0)
        every.update(expected)
        return lambda s: all(s("parley_connections", state=k) == v for k, v in every.items())

    await _eventually(server, states(), "a new server has connections")
    # Plain TCP, no TLS: it stays in its handshake.
    _, plain = await asyncio.open_connection("127.0.0.1", server.port)
    await _eventually(server, states(handshaking=1), "the handshake was not counted")
    silent = await RawClient.open(server.port)  # TLS, but no hello
    await _eventually(server, states(handshaking=1, hello=1), "the hello wait was not counted")
    greeted = await RawClient.open(server.port)
    greeted.send(type="hello", id=1, versions=[1])
    await greeted.expect("welcome", id=1)
    await _eventually(server, states(handshaking=1, hello=1, login=1), "the login wait")
    dana = await raw_user(server.port, "Dana")
    await _eventually(server, states(handshaking=1, hello=1, login=1, active=1), "the login")
    _, file_plain = await asyncio.open_connection("127.0.0.1", server.files.port)  # type: ignore[union-attr]
    await _eventually(
        server, lambda s: s("parley_file_connections") == 1, "the file connection was not counted"
    )
    plain.close()
    file_plain.close()
    for client in (silent, greeted, dana):
        await client.close()
    await _eventually(server, states(), "closed connections are still counted")
    await _eventually(server, lambda s: s("parley_file_connections") == 0, "file connection")


async def test_refusals_are_counted_by_port_and_limit(metrics_config: ServerConfig) -> None:
    config = dataclasses.replace(
        metrics_config,
        max_connections_per_address=10,
        max_connections=2,
        max_file_connections_per_address=1,
    )
    async with ParleyServer(config) as server:
        assert server.files is not None
        opened = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await _eventually(
            server, lambda s: s("parley_connections", state="handshaking") == 2, "two counted"
        )
        opened.append(await asyncio.open_connection("127.0.0.1", server.port))  # over 2 in all
        opened.append(await asyncio.open_connection("127.0.0.1", server.files.port))
        opened.append(await asyncio.open_connection("127.0.0.1", server.files.port))  # over 1
        scrape = await _eventually(
            server,
            lambda s: (
                s("parley_connections_refused_total", port="chat", limit="total") == 1
                and s("parley_connections_refused_total", port="files", limit="per_address") == 1
            ),
            "the refusals were not counted",
        )
        assert scrape("parley_connections_refused_total", port="chat", limit="per_address") == 0
        assert scrape("parley_connections_refused_total", port="files", limit="total") == 0
        for _, writer in opened:
            writer.close()


def _open_non_reading_client(port: int) -> ssl.SSLSocket:
    """A blocking TLS client with a tiny receive buffer that logs in, then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    tls = insecure_context().wrap_socket(sock)
    tls.sendall(b'{"type":"hello","id":1,"versions":[1]}\n{"type":"nick","id":2,"nick":"Sloth"}\n')
    return tls


async def test_a_slow_reader_cut_is_counted(metrics_config: ServerConfig) -> None:
    config = dataclasses.replace(metrics_config, send_buffer_limit_bytes=256 * 1024)
    async with ParleyServer(config) as server:
        alice = await raw_user(server.port, "Alice")
        sloth = await asyncio.to_thread(_open_non_reading_client, server.port)
        try:
            while not server.hub.is_online("sloth"):
                await asyncio.sleep(0.05)
            assert (await _scrape(server))("parley_slow_readers_cut_total") == 0
            sent = acked = 0
            # Bounded: 4,000 messages of 3.5 KB is 14 MB, far past any socket buffer.
            while sent < 4000 and server.hub.is_online("sloth"):
                for n in range(50):
                    alice.send(type="send", id=1000 + sent + n, to="#general", text="x" * 3500,
                               msg_id=f"m{sent + n}")  # fmt: skip
                sent += 50
                while acked < sent:
                    acked += (await alice.frame())["type"] == "sent"
            assert not server.hub.is_online("sloth"), "the reader that never reads stayed"
            assert (await _scrape(server))("parley_slow_readers_cut_total") == 1
        finally:
            sloth.close()
        await alice.close()


# --- health and readiness --------------------------------------------------------------------


async def test_healthz_and_readyz_answer_and_anything_else_is_not_found(
    server: ParleyServer,
) -> None:
    assert await _get(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    assert await _get(server, "/readyz") == (200, "text/plain; charset=utf-8", "ready\n")
    for path in ("/", "/metrics/", "/admin", "/../etc/passwd", "/healthz%00"):
        assert (await _get(server, path))[0] == 404, path
    assert (await _get(server, "/metrics", method="POST"))[0] == 405
    assert (await _get(server, "/readyz", method="DELETE"))[0] == 405
    await assert_still_serving(server.port)


async def test_a_storm_of_readiness_checks_asks_storage_once_a_second(
    server: ParleyServer,
) -> None:
    def probes(scrape: Scrape) -> float:
        return scrape("parley_storage_duration_seconds_count", operation="probe")

    before = probes(await _scrape(server))
    answers = await asyncio.gather(*(_get(server, "/readyz") for _ in range(40)))
    assert {status for status, _, _ in answers} == {200}
    # All of them within the answer's second (at most two probes if it ran out meanwhile).
    assert 1 <= probes(await _scrape(server)) - before <= 2


@contextlib.asynccontextmanager
async def _postgres_server_behind_proxy(
    config: ServerConfig,
) -> AsyncIterator[tuple[ParleyServer, FaultProxy]]:
    async for schema in postgres_schema():
        proxy = await FaultProxy.start(POSTGRES_URL)
        try:
            storage = await PostgresStorage.open(
                proxy.url,
                schema=schema,
                timeouts=Timeouts(statement_seconds=2.0, lock_seconds=1.0, operation_seconds=3.0),
            )
            async with ParleyServer(config, storage=storage) as server:
                yield server, proxy
        finally:
            proxy.restore()
            await proxy.close()


async def test_not_ready_while_the_database_does_not_answer_then_ready_again(
    metrics_config: ServerConfig,
) -> None:
    async with _postgres_server_behind_proxy(metrics_config) as (server, proxy):
        assert (await _get(server, "/readyz"))[0] == 200
        proxy.black_hole()
        stalled = time.monotonic()
        while (answer := await _get(server, "/readyz"))[0] == 200:
            assert time.monotonic() - stalled < TIMEOUT_SECONDS, "still ready"
            await asyncio.sleep(0.1)
        status, content_type, body = answer
        assert (status, content_type) == (503, "text/plain; charset=utf-8")
        assert body.startswith("not ready: storage "), body
        # The process is up, and a scrape does not wait for the database either.
        assert (await _get(server, "/healthz"))[0] == 200
        scrape = await _scrape(server)
        assert scrape("parley_storage_degraded") == 1
        proxy.restore()
        restored = time.monotonic()
        while (await _get(server, "/readyz"))[0] != 200:
            assert time.monotonic() - restored < TIMEOUT_SECONDS, "not ready again"
            await asyncio.sleep(0.1)
        assert (await _scrape(server))("parley_storage_degraded") == 0


async def test_not_ready_after_a_failed_write_until_storage_answers(server: ParleyServer) -> None:
    assert (await _get(server, "/readyz"))[0] == 200  # storage answered: kept for a second
    # A commit that failed marks storage degraded: not ready, until storage answers again.
    server.hub.health.failed(RuntimeError("injected: a commit failed"))
    status, _, body = await _get(server, "/readyz")
    assert (status, body) == (
        503,
        "not ready: storage degraded: a recent storage operation failed\n",
    )
    # Once the kept answer runs out, the next probe finds storage well.
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while (await _get(server, "/readyz"))[0] != 200:
        assert time.monotonic() < deadline, "storage answers, yet still not ready"
        await asyncio.sleep(0.1)
    assert (await _scrape(server))("parley_storage_degraded") == 0


# --- hostile and edge cases ------------------------------------------------------------------


async def test_slow_and_broken_http_clients_hold_up_nothing(server: ParleyServer) -> None:
    assert server.metrics_port is not None
    port = server.metrics_port
    # One sends half a request and stalls; one connects and sends nothing; one never reads.
    _, half = await asyncio.open_connection("127.0.0.1", port)
    half.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    _, mute = await asyncio.open_connection("127.0.0.1", port)
    _, deaf = await asyncio.open_connection("127.0.0.1", port)
    deaf.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 50)
    # An absurd request line is refused (or the connection dropped), never served.
    huge_reader, huge = await asyncio.open_connection("127.0.0.1", port)
    huge.write(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        status_line = await asyncio.wait_for(huge_reader.readline(), TIMEOUT_SECONDS)
    except ConnectionResetError:
        status_line = b""
    assert status_line == b"" or status_line.split()[1].startswith(b"4"), status_line
    started = time.monotonic()
    await assert_still_serving(server.port)
    assert (await _get(server, "/healthz"))[0] == 200
    await _scrape(server)
    assert time.monotonic() - started < TIMEOUT_SECONDS
    for writer in (half, mute, deaf, huge):
        writer.close()


def _listening_ports() -> set[int]:
    """The TCP ports this process listens on (Linux: its socket inodes in /proc/net)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def test_off_by_default_nothing_more_listens(server_config: ServerConfig) -> None:
    assert ServerConfig().metrics_listen is None
    before = _listening_ports()
    async with ParleyServer(server_config) as server:
        assert server.metrics_port is None
        assert server.files is not None
        assert _listening_ports() - before == {server.port, server.files.port}


async def test_the_listener_starts_and_stops_with_the_server(metrics_config: ServerConfig) -> None:
    async with ParleyServer(metrics_config) as server:
        port = server.metrics_port
        assert port is not None and port in _listening_ports()
        assert (await _get(server, "/healthz"))[0] == 200
    assert port not in _listening_ports()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_a_metrics_port_in_use_names_the_setting(metrics_config: ServerConfig) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    before = _listening_ports()
    try:
        config = dataclasses.replace(metrics_config, metrics_listen=f"127.0.0.1:{taken}")
        server = ParleyServer(config)
        with pytest.raises(StartupRefused) as refused:
            await server.start()
        assert str(refused.value) == (
            f"Port {taken} (metrics_listen 127.0.0.1:{taken}) is in use by another program: "
            "free it, or choose another port with metrics_listen in the settings file."
        )
        # Nothing the failed start opened is left listening.
        assert _listening_ports() == before
    finally:
        holder.close()


async def test_ipv6_loopback_is_served(metrics_config: ServerConfig) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    config = dataclasses.replace(metrics_config, metrics_listen="[::1]:0")
    try:
        server = ParleyServer(config)
        await server.start()
    except StartupRefused as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    try:
        reader, writer = await asyncio.open_connection("::1", server.metrics_port)
        writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), TIMEOUT_SECONDS)
        assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"ok\n")
        writer.close()
    finally:
        await server.stop()
