"""Locked row: one room's row held by another PostgreSQL session, and everybody else's latency.

Parley on PostgreSQL. A client in ``#a`` stores one message (so the room has its row in
``conversations``), then another database session takes that row (``SELECT ... FOR UPDATE``)
and holds it for the whole run, as a stuck node or an operator's forgotten transaction would.
Meanwhile the ``#a`` client keeps sending (each send waits for its answer), and a normal user in
``#b`` alternates ``ping`` and a ``send`` to ``#b``, one request at a time, timing each round
trip; halfway through, a new guest logs in and joins ``#b``, timed too. The row is released at
the end, so a request that waited for it is timed to that moment. Figures: the normal user's
ping and send-to-ack p50/p99, the login and join, and how ``#a``'s sends were answered.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import json
import ssl
import time
from typing import Any

import asyncpg
import uvloop

from bench import stats
from bench.outcome import Outcome
from bench.pool import WorkerPool
from bench.servers import POSTGRES_ADMIN_URL, Server

SERVER_SETTINGS = (
    "flood_burst_requests = 1000000\nflood_rate_per_second = 1000000.0\n"
    "flood_debt_requests = 1000000\n"
    "request_burst_per_address = 1000000\nrequest_rate_per_address = 1000000.0\n"
    "request_burst_per_principal = 1000000\nrequest_rate_per_principal = 1000000.0\n"
    "request_burst_guests_per_address = 1000000\n"
    "request_rate_guests_per_address = 1000000.0\n"
)
# The normal user's pace: a ping and a send every this long.
_PACE_SECONDS = 0.02


@dataclasses.dataclass(frozen=True)
class Load:
    seconds: float

    @property
    def label(self) -> str:
        return f"locked-row {self.seconds:g}s"


class _Client:
    """A TLS connection that logs in as a guest and times requests, one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.next_id = 10

    @classmethod
    async def login(cls, port: int, nick: str) -> _Client:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        client = cls(reader, writer)
        await client.request(type="hello", versions=[1])
        reply = await client.request(type="nick", nick=nick)
        if reply["type"] != "ok":
            raise RuntimeError(f"login refused: {reply}")
        return client

    async def request(self, **frame: Any) -> dict[str, Any]:
        self.next_id += 1
        frame["id"] = self.next_id
        self.writer.write(json.dumps(frame).encode() + b"\n")
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("the server closed the connection")
            reply: dict[str, Any] = json.loads(line)
            if reply.get("id") == self.next_id:
                return reply

    def close(self) -> None:
        self.writer.close()


def _ms(started_ns: int) -> float:
    return (time.monotonic_ns() - started_ns) / 1e6


async def _drive(port: int, dsn: str, load: Load) -> Outcome:
    locked = await _Client.login(port, "locked")
    await locked.request(type="join", room="#a")
    await locked.request(type="send", to="#a", text="first", msg_id="first")
    normal = await _Client.login(port, "normal")
    await normal.request(type="join", room="#b")
    holder = await asyncpg.connect(dsn, timeout=10)
    held = holder.transaction()
    await held.start()
    await holder.execute("SELECT * FROM conversations WHERE id = '#a' FOR UPDATE")
    deadline = time.monotonic() + load.seconds
    answers: dict[str, int] = {}
    answer_ms = array.array("d")

    async def keep_sending_to_the_locked_room() -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            started = time.monotonic_ns()
            reply = await locked.request(type="send", to="#a", text="x", msg_id=f"a{n}")
            answer_ms.append(_ms(started))
            kind = reply["type"] if reply["type"] == "sent" else reply.get("code", "?")
            answers[kind] = answers.get(kind, 0) + 1

    async def release_at_the_end() -> None:
        await asyncio.sleep(load.seconds)
        await held.rollback()

    pings, sends = array.array("d"), array.array("d")
    login_ms = join_ms = 0.0

    async def normal_user() -> None:
        nonlocal login_ms, join_ms
        n = 0
        halfway = time.monotonic() + load.seconds / 2
        while time.monotonic() < deadline:
            n += 1
            started = time.monotonic_ns()
            await normal.request(type="ping")
            pings.append(_ms(started))
            started = time.monotonic_ns()
            reply = await normal.request(type="send", to="#b", text="hello", msg_id=f"b{n}")
            sends.append(_ms(started))
            if reply["type"] != "sent":
                raise RuntimeError(f"a send to #b was refused: {reply}")
            if login_ms == 0.0 and time.monotonic() >= halfway:
                started = time.monotonic_ns()
                newcomer = await _Client.login(port, "newcomer")
                login_ms = _ms(started)
                started = time.monotonic_ns()
                await newcomer.request(type="join", room="#b")
                join_ms = _ms(started)
                newcomer.close()
            await asyncio.sleep(_PACE_SECONDS)

    try:
        await asyncio.gather(keep_sending_to_the_locked_room(), normal_user(), release_at_the_end())
    finally:
        await holder.close()
        locked.close()
        normal.close()
    ping_sorted, send_sorted = sorted(pings), sorted(sends)
    return Outcome(
        figures={
            "ping_p50_ms": stats.percentile(ping_sorted, 0.5),
            "ping_p99_ms": stats.percentile(ping_sorted, 0.99),
            "send_p50_ms": stats.percentile(send_sorted, 0.5),
            "send_p99_ms": stats.percentile(send_sorted, 0.99),
            "login_ms": login_ms,
            "join_ms": join_ms,
            "locked_room_unavailable": answers.get("unavailable", 0),
            "locked_room_answer_max_ms": max(answer_ms, default=None),
        },
        details={
            "seconds": load.seconds,
            "pings": len(pings),
            "sends": len(sends),
            "locked_room_answers": answers,
        },
    )


def run(pool: WorkerPool, server: Server, *, load: Load) -> Outcome:
    del pool  # two clients, one request at a time each: latency, not throughput
    name = getattr(server, "database_name", None)
    if name is None:
        raise RuntimeError("the locked-row workload needs Parley on PostgreSQL")
    dsn = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    result: Outcome = uvloop.run(_drive(server.port, dsn, load))
    return result
