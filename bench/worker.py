"""A load-generator process: it holds a share of the simulated users and does what it is told.

The coordinator (``bench.pool``) starts these with multiprocessing's "spawn" method, so no
process is ever forked from one with a running event loop, and talks to each over a pipe: a
numbered command in, one answer with the same number out. Everything here is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from multiprocessing.connection import Connection
from typing import Any

from bench import proc
from bench.client import BenchClient
from bench.irc import IrcClient
from bench.parley_driver import ParleyClient

CLIENTS: dict[str, type[BenchClient]] = {"parley": ParleyClient, "irc": IrcClient}
# ngIRCd listens with a backlog of 10. More handshakes in flight than that overflow its queue
# while it is busy, and a dropped SYN is only retried a second later, which would be measured
# as connect latency; both servers get the same pace.
CONNECTS_IN_FLIGHT = 4
CONNECT_TIMEOUT_SECONDS = 30.0  # one connection: TCP, TLS, greeting and joining
SESSIONS_PER_SOURCE_ADDRESS = 900  # Parley ships a limit of 1,000 connections per address
QUIET_POLL_SECONDS = 0.05
SPEAK_TICK_SECONDS = 0.005
SPEAK_OVERRUN_SECONDS = 5.0


def source_address(index: int) -> str:
    return f"127.0.0.{2 + index // SESSIONS_PER_SOURCE_ADDRESS}"


def client_context() -> ssl.SSLContext:
    # A benchmark on loopback: the servers' throwaway certificates are not checked.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Worker:
    def __init__(self) -> None:
        self.clients: list[BenchClient] = []
        self.context = client_context()

    async def connect(
        self, protocol: str, port: int, indices: list[int], room: bool, sampled: list[int]
    ) -> dict[str, Any]:
        """Open one session per index, a few at a time; time each from SYN to ready."""
        loop = asyncio.get_running_loop()
        factory = CLIENTS[protocol]
        gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
        to_sample = set(sampled)
        failures: list[str] = []
        connect_ns: list[int] = []

        async def one(index: int) -> None:
            client = factory(index, room=room, sampled=index in to_sample)
            async with gate:
                started = time.perf_counter_ns()
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                        await loop.create_connection(
                            lambda: client,
                            "127.0.0.1",
                            port,
                            ssl=self.context,
                            local_addr=(source_address(index), 0),
                        )
                        await client.ready
                except (OSError, TimeoutError, ssl.SSLError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    client.close()
                    return
                connect_ns.append(time.perf_counter_ns() - started)
                self.clients.append(client)

        await asyncio.gather(*(one(index) for index in indices))
        cipher = ""
        if self.clients and self.clients[0].transport is not None:
            tls = self.clients[0].transport.get_extra_info("ssl_object")
            if tls is not None:
                cipher = f"{tls.version()} {tls.cipher()[0]}"
        return {
            "connect_ns": connect_ns,
            "failures": len(failures),
            "first_failure": failures[0] if failures else "",
            "cipher": cipher,
        }

    async def quiet(self, seconds: float, timeout: float) -> dict[str, Any]:
        """Wait until no client has received anything for ``seconds`` (joins announced)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            latest = max((client.last_activity for client in self.clients), default=0.0)
            if time.monotonic() - latest >= seconds:
                return {"quiet": True}
            await asyncio.sleep(QUIET_POLL_SECONDS)
        return {"quiet": False}

    def reset(self) -> dict[str, Any]:
        for client in self.clients:
            client.reset()
        return {}

    async def speak(
        self, speakers: list[int], rate: float, seconds: float, start_at: float
    ) -> dict[str, Any]:
        """Send ``rate`` messages/s in all, in turn from this worker's ``speakers``.

        Each tick sends whatever has fallen due since the last one, so the pace holds even when
        the loop is slow to wake, without a timer per message.
        """
        by_index = {client.index: client for client in self.clients}
        talking = [by_index[index] for index in speakers if index in by_index]
        total = int(rate * seconds) if talking else 0
        sent = 0
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        started = time.monotonic()
        while sent < total and time.monotonic() - started < seconds + SPEAK_OVERRUN_SECONDS:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                talking[sent % len(talking)].say()
                sent += 1
            await asyncio.sleep(SPEAK_TICK_SECONDS)
        return {"sent": sent, "seconds": time.monotonic() - started}

    def count(self) -> dict[str, Any]:
        return {"received": sum(client.received for client in self.clients)}

    def collect(self, by_client: bool = False) -> dict[str, Any]:
        latencies: list[bytes] = [client.latencies_ns.tobytes() for client in self.clients]
        if by_client:  # each sampled receiver's apart (the cluster workload: which node)
            return {
                "received": sum(client.received for client in self.clients),
                "latencies_by_client": {
                    client.index: client.latencies_ns.tobytes()
                    for client in self.clients
                    if client.sampled
                },
            }
        return {
            "received": sum(client.received for client in self.clients),
            "received_bytes": sum(client.received_bytes for client in self.clients),
            "latencies_ns": b"".join(latencies),
            "refusals": sum(client.refusals for client in self.clients),
            "dropped": sum(client.dropped for client in self.clients),
        }

    async def close(self) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        self.clients.clear()
        await asyncio.sleep(0.1)  # let the aborts reach the sockets
        return {}


async def _serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker()
    while True:
        try:
            number, command, arguments = await loop.run_in_executor(None, pipe.recv)
        except EOFError:  # the coordinator is gone
            await worker.close()
            return
        if command == "stop":
            await worker.close()
            pipe.send((number, {}))
            return
        try:
            result = getattr(worker, command)(**arguments)
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:
            result = {"error": f"{command}: {type(exc).__name__}: {exc}"}
        pipe.send((number, result))


def main(pipe: Connection) -> None:
    """Entry point of a generator process."""
    proc.raise_open_file_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(pipe))
    else:
        uvloop.run(_serve(pipe))
    with contextlib.suppress(OSError):
        pipe.close()
