"""A load-generator process: holds a share of the simulated users and runs what it is told.

The coordinator (``bench.workloads``) starts a few of these with multiprocessing's "spawn"
method (never a fork of a process with a running event loop) and talks to each over a pipe:
one command in, one answer out. Every command is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.clients import CLIENTS, BenchClient
from bench.servers import raise_fd_limit

# ngIRCd listens with a backlog of 10: more connects in flight than that overflow it while it
# is busy, and the dropped SYNs come back seconds later (TCP retransmission), which would be
# measured as connect latency. Both servers get the same pace.
CONNECTS_IN_FLIGHT = 4  # per generator process
CONNECT_TIMEOUT_SECONDS = 120.0
PER_SOURCE_ADDRESS = 900  # Parley ships a limit of 1,000 connections per address
QUIET_SECONDS = 0.5
QUIET_TIMEOUT_SECONDS = 60.0


def source_address(index: int) -> str:
    return f"127.0.0.{2 + index // PER_SOURCE_ADDRESS}"


class Worker:
    def __init__(self) -> None:
        self.clients: list[BenchClient] = []
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    async def connect(
        self, kind: str, port: int, indices: list[int], join: bool, sample_every: int
    ) -> dict[str, Any]:
        """Open one session per index; return each connect time (TCP+TLS+greeting)."""
        loop = asyncio.get_running_loop()
        factory = CLIENTS[kind]
        semaphore = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

        async def one(index: int) -> float:
            async with semaphore:
                started = time.perf_counter()
                client = factory(index, join=join, sample=index % sample_every == 0)
                await loop.create_connection(
                    lambda: client,
                    "127.0.0.1",
                    port,
                    ssl=self.context,
                    local_addr=(source_address(index), 0),
                )
                self.clients.append(client)
                await client.ready
                return time.perf_counter() - started

        seconds = await asyncio.wait_for(
            asyncio.gather(*(one(index) for index in indices)), CONNECT_TIMEOUT_SECONDS
        )
        return {"connect_seconds": list(seconds)}

    async def quiet(self) -> dict[str, Any]:
        """Wait until no client has received anything for a moment (join announcements done)."""
        deadline = time.monotonic() + QUIET_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            latest = max((client.last_activity for client in self.clients), default=0.0)
            if time.monotonic() - latest >= QUIET_SECONDS:
                return {"quiet": True}
            await asyncio.sleep(0.1)
        return {"quiet": False}

    def reset(self) -> dict[str, Any]:
        for client in self.clients:
            client.received = 0
            client.latencies_ns.clear()
            client.rate_limited = 0
        return {"cpu_seconds": time.process_time()}

    async def speak(
        self, speakers: list[int], rate: float, duration: float, start_at: float
    ) -> dict[str, Any]:
        """Send ``rate`` messages/s in total, round-robin over this worker's ``speakers``."""
        by_index = {client.index: client for client in self.clients}
        talking = [by_index[index] for index in speakers]
        sent = 0
        if talking and rate > 0:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            started = time.monotonic()
            total = int(rate * duration)
            while sent < total and time.monotonic() - started < duration + 5.0:
                talking[sent % len(talking)].say()
                sent += 1
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        return {"sent": sent}

    def count(self) -> dict[str, Any]:
        return {"received": sum(client.received for client in self.clients)}

    def collect(self) -> dict[str, Any]:
        latencies: list[int] = []
        for client in self.clients:
            latencies.extend(client.latencies_ns)
        return {
            "received": sum(client.received for client in self.clients),
            "latencies_ns": latencies,
            "rate_limited": sum(client.rate_limited for client in self.clients),
            "cpu_seconds": time.process_time(),
        }

    async def close(self) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        self.clients.clear()
        await asyncio.sleep(0.1)
        return {}


async def _serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker()
    while True:
        command, arguments = await loop.run_in_executor(None, pipe.recv)
        if command == "stop":
            await worker.close()
            pipe.send({})
            return
        try:
            result = getattr(worker, command)(**arguments)
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        pipe.send(result)


def main(pipe: Connection) -> None:
    """Entry point of a worker process."""
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(pipe))
    else:
        uvloop.run(_serve(pipe))
    with contextlib.suppress(OSError):
        pipe.close()
