"""History: the latency of reading 50 messages back from a room that holds a million.

Before the server starts, the room ``#general`` is filled with M messages straight through
Parley's storage layer (batches of 10,000; the same tables the server then reads). One client
then asks ``history`` with ``before`` at random points and ``limit`` 50, one request at a time,
K times, and times each round trip over TLS: p50/p99 in milliseconds, and requests/s. Flood
control is lifted for this client (it would cap it at 10 requests/s).
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import random
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

from bench import stats
from bench.outcome import Outcome
from bench.pool import WorkerPool
from bench.servers import Server

BATCH = 10_000
PAGE = 50


@dataclasses.dataclass(frozen=True)
class Load:
    messages: int
    requests: int
    backend: str  # "sqlite" or "postgresql"

    @property
    def label(self) -> str:
        return f"history {self.backend} M={self.messages:,}".replace(",", "_")


def prefill(messages: int) -> Callable[[str | None, Path], None]:
    """A function that fills ``#general`` of the given database with ``messages`` messages."""

    def fill(database: str | None, data_dir: Path) -> None:
        uvloop.run(_fill(database, data_dir, messages))

    return fill


async def _fill(database: str | None, data_dir: Path, messages: int) -> None:
    from parley.storage import NewMessage, Room
    from parley.storage.factory import open_storage

    storage = await open_storage(database, data_dir)
    try:
        await storage.create_room(Room(key="#general", name="#general"))
        text = "x" * 64
        for start in range(0, messages, BATCH):
            count = min(BATCH, messages - start)
            await storage.append(
                [
                    NewMessage("#general", "Filler", "filler", "#general", text, str(start + n))
                    for n in range(count)
                ]
            )
    finally:
        await storage.close()


async def _drive(port: int, load: Load) -> Outcome:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, limit=4 * 1024 * 1024
    )
    writer.write(
        b'{"type":"hello","id":1,"versions":[1]}\n{"type":"nick","id":2,"nick":"reader"}\n'
    )
    while b'"type":"ok"' not in await reader.readline():
        pass
    rng = random.Random(7)
    latencies = array.array("q")
    began = time.monotonic()
    for request_id in range(10, 10 + load.requests):
        before = rng.randint(PAGE + 1, load.messages)
        sent = time.monotonic_ns()
        writer.write(
            b'{"type":"history","id":%d,"to":"#general","before":%d,"limit":%d}\n'
            % (request_id, before, PAGE)
        )
        marker = b'{"type":"history","id":%d,' % request_id
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("the server closed the connection")
            if line.startswith(marker):
                break
            if line.startswith(b'{"type":"error"'):
                raise RuntimeError(f"history refused: {line[:200]!r}")
        latencies.append(time.monotonic_ns() - sent)
        if line.count(b'"type":"message"') != PAGE:
            raise RuntimeError(f"expected {PAGE} messages, got {line[:200]!r}")
    elapsed = time.monotonic() - began
    writer.close()
    ordered = sorted(latencies)
    p50, p99 = stats.percentile(ordered, 0.5), stats.percentile(ordered, 0.99)
    return Outcome(
        figures={
            "history_p50_ms": p50 / 1e6 if p50 is not None else None,
            "history_p99_ms": p99 / 1e6 if p99 is not None else None,
            "history_requests_per_second": load.requests / elapsed,
        },
        details={"messages": load.messages, "requests": load.requests},
    )


def run(pool: WorkerPool, server: Server, *, load: Load) -> Outcome:
    del pool  # one client, one request at a time: latency, not throughput
    result: Outcome = uvloop.run(_drive(server.port, load))
    return result
