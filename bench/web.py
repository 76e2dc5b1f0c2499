"""The web path next to the TLS port: one room of C members, all on the TLS port or all on the
web port's WebSocket (``/ws``), the same protocol and the same server.

Each run is one transport on a fresh server (web port on), so that memory freed by one cannot
be taken again by the other; the two alternate in every repetition, and ``bench.report`` puts
the medians side by side with the ratio WebSocket/TLS (the goal: within 1.5x).

- idle memory per connection: the server's RSS once every member has logged in (which joins
  ``#general``) and nothing more arrives, minus before, over C;
- CPU per delivery: S speakers send R messages/s in all for T seconds; the server's CPU time
  from just before the first message until every delivery has arrived (or stopped coming), over
  the deliveries to members other than the sender.

The members run in this process, one event loop; they only count frames, so they cost far less
than the server. Every member comes from 127.0.0.1, well under the shipped 1,000 connections per
address.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable

import aiohttp

from bench.outcome import Outcome
from bench.pool import WorkerPool
from bench.servers import Server

TRANSPORTS = ("tls", "websocket")
SPEAKERS = 10  # each under Parley's flood limit of 10 requests/s
CONNECTS_IN_FLIGHT = 20
QUIET_SECONDS = 1.0
QUIET_TIMEOUT_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 10.0
WEB_PORT_TIMEOUT_SECONDS = 10.0
MARKER = "%%bench"
SERVER_SETTINGS = "web_port = 0\n"


@dataclasses.dataclass(frozen=True)
class Load:
    members: int
    rate: int  # messages per second, all speakers together
    seconds: float
    transport: str  # "tls" or "websocket"

    @property
    def label(self) -> str:
        return f"web-path C={self.members} R={self.rate} {self.transport}"


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Member:
    """One member on either transport: sends frames, counts what arrives."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.received = 0  # benchmark messages from others
        self.last_arrival = time.monotonic()
        self.send: Callable[[str], Awaitable[None]] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.close: Callable[[], Awaitable[None]] | None = None
        self.logged_in = asyncio.get_running_loop().create_future()

    def arrived(self, frame: str) -> None:
        self.last_arrival = time.monotonic()
        if '"type":"ok"' in frame and not self.logged_in.done():
            self.logged_in.set_result(None)
        elif '"type":"error"' in frame or '"type":"closing"' in frame:
            if not self.logged_in.done():
                self.logged_in.set_exception(RuntimeError(f"{self.nick}: {frame[:200]}"))
        elif MARKER in frame and f'"sender":"{self.nick}"' not in frame:
            self.received += frame.count(MARKER)


def _greeting(nick: str) -> list[str]:
    return [
        json.dumps({"type": "hello", "id": 1, "versions": [1]}),
        json.dumps({"type": "nick", "id": 2, "nick": nick}),
    ]


async def _tls_member(port: int, nick: str) -> Member:
    member = Member(nick)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_context())

    async def send(frame: str) -> None:
        writer.write(frame.encode() + b"\n")

    async def read() -> None:
        while line := await reader.readline():
            member.arrived(line.decode())

    async def close() -> None:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()

    member.send, member.close = send, close
    member.reader = asyncio.create_task(read())
    for frame in _greeting(nick):
        await send(frame)
    return member


async def _websocket_member(
    session: aiohttp.ClientSession, url: str, origin: str, nick: str
) -> Member:
    member = Member(nick)
    socket = await session.ws_connect(url, ssl=_context(), origin=origin, max_msg_size=0)

    async def send(frame: str) -> None:
        await socket.send_str(frame)

    async def read() -> None:
        async for message in socket:
            if message.type == aiohttp.WSMsgType.TEXT:
                member.arrived(message.data)

    async def close() -> None:
        await socket.close()

    member.send, member.close = send, close
    member.reader = asyncio.create_task(read())
    for frame in _greeting(nick):
        await send(frame)
    return member


def web_address(server: Server) -> tuple[str, str]:
    """The web port's WebSocket address and the origin it accepts, from the server's log."""
    deadline = time.monotonic() + WEB_PORT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = re.search(r"Web client on (\S+)/ \(port (\d+)\)", server.log_tail(100_000))
        if found:
            origin, port = found.group(1), found.group(2)
            return f"https://127.0.0.1:{port}/ws", origin
        time.sleep(0.05)
    raise RuntimeError(f"the server did not say where its web port is: {server.log_tail()}")


async def _quiet(members: list[Member]) -> bool:
    """Nothing arrived for QUIET_SECONDS (the login announcements are over)."""
    deadline = time.monotonic() + QUIET_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        last = max(member.last_arrival for member in members)
        if time.monotonic() - last >= QUIET_SECONDS:
            return True
        await asyncio.sleep(0.1)
    return False


async def _drain(members: list[Member], expected: int) -> None:
    last, changed_at = -1, time.monotonic()
    deadline = changed_at + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        received = sum(member.received for member in members)
        if received >= expected:
            return
        if received != last:
            last, changed_at = received, time.monotonic()
        elif time.monotonic() - changed_at >= 1.0:
            return
        await asyncio.sleep(0.1)


async def _speak(member: Member, every: float, until: float) -> int:
    assert member.send is not None
    sent = 0
    next_at = time.monotonic()
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        sent += 1
        text = f"{MARKER} {sent:06d} " + "x" * 48
        frame = {"type": "send", "id": 10 + sent, "to": "#general", "text": text}
        await member.send(json.dumps({**frame, "msg_id": f"{member.nick}-{sent}"}))
        next_at += every
    return sent


async def _measure(server: Server, load: Load) -> Outcome:
    notes: list[str] = []
    url, origin = web_address(server) if load.transport == "websocket" else ("", "")
    members: list[Member] = []
    limit = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    await asyncio.sleep(0.5)
    rss_before = server.rss_bytes()
    # No pool limit: every member holds its own connection.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def join(index: int) -> None:
            nick = f"w{index:05d}"
            async with limit, asyncio.timeout(QUIET_TIMEOUT_SECONDS):
                if load.transport == "tls":
                    member = await _tls_member(server.port, nick)
                else:
                    member = await _websocket_member(session, url, origin, nick)
                members.append(member)
                await member.logged_in

        try:
            await asyncio.gather(*(join(index) for index in range(load.members)))
            if not await _quiet(members):
                notes.append(f"the room was not quiet after {QUIET_TIMEOUT_SECONDS:.0f} s")
            rss_after = server.rss_bytes()
            speakers = members[:: max(1, len(members) // SPEAKERS)][:SPEAKERS]
            cpu_before = server.cpu_seconds()
            started = time.monotonic()
            every = len(speakers) / load.rate
            spoken = await asyncio.gather(
                *(_speak(member, every, started + load.seconds) for member in speakers)
            )
            expected = sum(spoken) * (load.members - 1)
            await _drain(members, expected)
            cpu = server.cpu_seconds() - cpu_before
            wall = time.monotonic() - started
            deliveries = sum(member.received for member in members)
        finally:
            for member in members:
                if member.close is not None:
                    with contextlib.suppress(Exception):
                        await member.close()
                if member.reader is not None:
                    member.reader.cancel()
    return Outcome(
        {
            "members": load.members,
            "rss_per_connection_bytes": (rss_after - rss_before) / load.members,
            "deliveries": deliveries,
            "lost_deliveries": max(0, expected - deliveries),
            "server_cpu_seconds_per_million_deliveries": (
                cpu / deliveries * 1e6 if deliveries else None
            ),
            "server_cores_busy": cpu / wall,
        },
        {"transport": load.transport},
        notes,
    )


def run(pool: WorkerPool, server: Server, load: Load) -> Outcome:
    return asyncio.run(_measure(server, load))
