"""Persistence: stored, acknowledged messages per second (Parley alone; IRC keeps no history).

S senders (1 or 100) each keep a window of ``send`` requests in flight on their own connection
and send the next one as each ``sent`` comes back, for T seconds. Each writes to its own
conversation (a private message to itself), so the figure is storage and not fan-out: every
message is delivered once, back to its sender. A ``sent`` reply only leaves
the server once the message's transaction has committed (SQLite with ``synchronous=FULL``, or
PostgreSQL), so acknowledged messages/s is the rate of durable writes, with the server's group
commit batching whatever is in flight. Flood control is lifted for this workload (it caps a
connection at 10 requests/s): what is measured is storage, not the rate limiter.

Figures: acknowledged messages/s, acknowledgement latency p50/p99 (send to ``sent``), and the
server's CPU per thousand messages. The generator is one uvloop process in the bench itself.
"""

from __future__ import annotations

import array
import asyncio
import dataclasses
import ssl
import time
from functools import partial
from typing import cast

import uvloop

from bench import proc, stats
from bench.outcome import Outcome
from bench.pool import WorkerPool
from bench.servers import Server

CONNECT_TIMEOUT_SECONDS = 30.0
DRAIN_TIMEOUT_SECONDS = 30.0
# Requests in flight per sender: deep enough that one sender keeps the group commit busy, and
# 100 senders x 20 = 2,000 at once.
WINDOW_ONE_SENDER = 500
WINDOW_MANY_SENDERS = 20
TEXT = b"x" * 64
# Flood control off for this workload; everything else as shipped.
SERVER_SETTINGS = (
    "flood_burst_requests = 1000000\nflood_rate_per_second = 1000000.0\n"
    "flood_debt_requests = 1000000\n"
    "request_burst_per_address = 1000000\nrequest_rate_per_address = 1000000.0\n"
    "request_burst_per_principal = 1000000\nrequest_rate_per_principal = 1000000.0\n"
    "request_burst_guests_per_address = 1000000\n"
    "request_rate_guests_per_address = 1000000.0\n"
)


@dataclasses.dataclass(frozen=True)
class Load:
    senders: int
    seconds: float
    backend: str  # "sqlite" or "postgresql"

    @property
    def label(self) -> str:
        return f"persistence {self.backend} S={self.senders}"

    @property
    def window(self) -> int:
        return WINDOW_ONE_SENDER if self.senders == 1 else WINDOW_MANY_SENDERS


class _Sender(asyncio.Protocol):
    def __init__(self, index: int, window: int, stop_at: float) -> None:
        self.index = index
        self.window = window
        self.stop_at = stop_at
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.sent_at: dict[int, int] = {}
        self.next_id = 10
        self.acked = 0
        self.refused = 0
        self.latencies_ns = array.array("q")
        self._tail = b""
        self.nick = b"w%05d" % index

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(
            b'{"type":"hello","id":1,"versions":[1]}\n{"type":"nick","id":2,"nick":"%s"}\n'
            % self.nick
        )

    def data_received(self, data: bytes) -> None:
        *lines, self._tail = (self._tail + data).split(b"\n")
        now = time.monotonic_ns()
        for line in lines:
            if not self.ready.done():
                if b'"type":"ok"' in line:
                    self.ready.set_result(None)
                elif b'"type":"error"' in line or b'"type":"closing"' in line:
                    self.ready.set_exception(RuntimeError(line[:200].decode(errors="replace")))
                continue
            if line.startswith(b'{"type":"sent"') or line.startswith(b'{"type":"error"'):
                start = line.index(b'"id":') + 5
                request_id = int(line[start : line.index(b",", start)])
                began = self.sent_at.pop(request_id, None)
                if began is None:
                    continue
                if b'"type":"sent"' in line:
                    self.acked += 1
                    self.latencies_ns.append(now - began)
                else:
                    self.refused += 1
        if self.ready.done():
            self._fill()

    def start(self) -> None:
        self._fill()

    def _fill(self) -> None:
        assert self.transport is not None
        sending = time.monotonic() < self.stop_at
        if sending:
            now = time.monotonic_ns()
            requests = []
            while len(self.sent_at) < self.window:
                request_id = self.next_id
                self.next_id += 1
                self.sent_at[request_id] = now
                requests.append(
                    b'{"type":"send","id":%d,"to":"%s","text":"%s","msg_id":"%d"}\n'
                    % (request_id, self.nick, TEXT, request_id)
                )
            if requests:
                self.transport.write(b"".join(requests))
        elif not self.sent_at and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before login"))
            self.ready.exception()  # retrieved by whoever awaits it; never a stray warning
        if not self.done.done():
            self.done.set_result(None)


async def _drive(port: int, load: Load, server: Server) -> Outcome:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    # The clock starts once everyone is logged in; until then nobody sends.
    far = time.monotonic() + 3600
    senders = [_Sender(index, load.window, far) for index in range(load.senders)]
    for sender in senders:
        await loop.create_connection(partial(_same, sender), "127.0.0.1", port, ssl=context)
    await asyncio.wait_for(
        asyncio.gather(*(sender.ready for sender in senders)), CONNECT_TIMEOUT_SECONDS
    )
    cpu_before = server.cpu_seconds()
    began = time.monotonic()
    for sender in senders:
        sender.stop_at = began + load.seconds
        sender.start()
    await asyncio.sleep(load.seconds)
    await asyncio.wait_for(
        asyncio.gather(*(sender.done for sender in senders)), DRAIN_TIMEOUT_SECONDS
    )
    elapsed = time.monotonic() - began
    cpu = server.cpu_seconds() - cpu_before
    for sender in senders:
        assert sender.transport is not None
        sender.transport.close()
    acked = sum(sender.acked for sender in senders)
    latencies = sorted(value for sender in senders for value in sender.latencies_ns)
    p50, p99 = stats.percentile(latencies, 0.5), stats.percentile(latencies, 0.99)
    return Outcome(
        figures={
            "acked_per_second": acked / elapsed,
            "ack_p50_ms": p50 / 1e6 if p50 is not None else None,
            "ack_p99_ms": p99 / 1e6 if p99 is not None else None,
            "refused": sum(sender.refused for sender in senders),
            "server_cpu_ms_per_thousand": cpu * 1e6 / acked if acked else None,
            "server_cores_busy": cpu / elapsed,
        },
        details={"acked": acked, "seconds": elapsed, "window": load.window},
    )


def _same(sender: _Sender) -> _Sender:
    return sender


def run(pool: WorkerPool, server: Server, *, load: Load) -> Outcome:
    """Drive ``server`` (started with SERVER_SETTINGS and the backend) from this process."""
    del pool  # one process is plenty: the server, not the generator, is the limit here
    proc.raise_open_file_limit()
    result: Outcome = uvloop.run(_drive(server.port, load, server))
    return result
