"""Test helpers that speak to a real server over real TLS on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import ssl
from typing import Any

from parley.client.core import ChatClient
from parley.clock import SYSTEM_CLOCK

TIMEOUT_SECONDS = 10.0
# For a test that lifts flood control to do its own thing from one address: the budgets shared
# by an address's and an account's connections are lifted as well (they have their own tests).
NO_SHARED_BUDGETS: dict[str, Any] = {
    "request_burst_per_address": 1_000_000,
    "request_rate_per_address": 1_000_000.0,
    "request_burst_per_principal": 1_000_000,
    "request_rate_per_principal": 1_000_000.0,
    "request_burst_guests_per_address": 1_000_000,
    "request_rate_guests_per_address": 1_000_000.0,
}


def allow_open_files(count: int) -> None:
    """Raise this process's soft limit of open files to at least ``count`` (within the hard
    limit), for a test that holds many connections; servers it starts inherit it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class FakeClock:
    """A parley.clock.Clock that stands still until a test moves it on (from the real time,
    so that what it stamps looks like any other time)."""

    def __init__(self) -> None:
        self.ms = SYSTEM_CLOCK.now_ms()
        self.seconds = SYSTEM_CLOCK.monotonic()

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
        self.seconds += seconds


def insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class RawClient:
    """A TLS connection that sends whatever bytes a test wants and reads frames as dicts."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        # Frames that came while waiting for a reply, for event() to look at.
        self.events: list[dict[str, Any]] = []
        self.last_id = 100
        # How long a frame may take before the test fails.
        self.timeout = TIMEOUT_SECONDS

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=insecure_context(), limit=2**22
        )
        return cls(reader, writer)

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, **frame: Any) -> None:
        self.writer.write(json.dumps(frame).encode() + b"\n")

    async def frame(self) -> dict[str, Any]:
        """The next frame; fails the test if none comes in time or the connection closes."""
        line = await asyncio.wait_for(self.reader.readline(), self.timeout)
        assert line, "connection closed while a frame was expected"
        result: dict[str, Any] = json.loads(line)
        return result

    async def expect(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Read frames until one of type ``kind`` comes, and check its ``fields``."""
        while True:
            frame = await self.frame()
            if frame["type"] == kind:
                for name, value in fields.items():
                    assert frame.get(name) == value, frame
                return frame

    async def login(self, nick: str, **credentials: str) -> dict[str, Any]:
        """Hello, then ``nick`` (with ``password=`` or ``token=``); returns the ``ok``."""
        reply = await self.try_login(nick, **credentials)
        assert reply["type"] == "ok", reply
        return reply

    async def try_login(self, nick: str, **credentials: str) -> dict[str, Any]:
        """Like :meth:`login`, but returns the reply whatever it is."""
        self.send(type="hello", id=1, versions=[1])
        await self.expect("welcome", id=1)
        return await self.request("nick", nick=nick, **credentials)

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send a request with a fresh id; return its reply (events before it are kept)."""
        self.last_id += 1
        self.send(type=kind, id=self.last_id, **fields)
        while True:
            frame = await self.frame()
            if frame.get("id") == self.last_id:
                return frame
            self.events.append(frame)

    async def expect_reply(self, request_id: int) -> dict[str, Any]:
        """The reply to ``request_id`` (events before it are kept for :meth:`event`)."""
        while True:
            frame = await self.frame()
            if frame.get("id") == request_id:
                return frame
            self.events.append(frame)

    async def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """The next event of type ``kind`` matching ``fields`` (kept ones first)."""
        while True:
            frame = self.events.pop(0) if self.events else await self.frame()
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    async def closed(self) -> bool:
        """True once the server has closed the connection (reads and drops what is left)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), TIMEOUT_SECONDS):
                pass
        except (ConnectionError, ssl.SSLError):
            pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def raw_user(port: int, nick: str, **credentials: str) -> RawClient:
    """A RawClient logged in as ``nick``."""
    client = await RawClient.open(port)
    await client.login(nick, **credentials)
    return client


async def logged_in(port: int, nick: str) -> ChatClient:
    client = await ChatClient.connect("127.0.0.1", port, pins=None)
    await client.login(nick)
    return client


async def next_of(client: ChatClient, kind: type[Any]) -> Any:
    """The next event of type ``kind``, skipping others; fails the test after a timeout."""
    while True:
        event = await asyncio.wait_for(client.next_event(), TIMEOUT_SECONDS)
        if isinstance(event, kind):
            return event


async def assert_still_serving(port: int) -> None:
    """Two fresh users can still chat: the server survived whatever the test did."""
    from parley.protocol.messages import Message

    first = await logged_in(port, "Survivor1")
    second = await logged_in(port, "Survivor2")
    try:
        await first.send("#general", "still here?")
        message = await next_of(second, Message)
        assert (message.sender, message.text) == ("Survivor1", "still here?")
    finally:
        await first.close()
        await second.close()


# Linux routes all of 127.0.0.0/8 to loopback: guests spread over these addresses stay far below
# each address's limits (guests at one address share one request budget).
GUEST_SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")


async def guests_come_and_go(port: int, count: int, batch: int = 20) -> None:
    """``count`` guests log in and leave, ``batch`` at a time; fails the test if the server
    does not answer one of them in time."""
    context = insecure_context()  # one for all: making one reads the system's CA bundle

    async def guest(number: int) -> None:
        source = GUEST_SOURCES[number % len(GUEST_SOURCES)]
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, local_addr=(source, 0)),
            3 * TIMEOUT_SECONDS,
        )
        client = RawClient(reader, writer)
        await client.login(f"G{number:04}")
        await client.close()

    for start in range(0, count, batch):
        await asyncio.gather(*(guest(n) for n in range(start, min(count, start + batch))))
