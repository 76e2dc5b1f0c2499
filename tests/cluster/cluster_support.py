"""Several real ``server.py`` processes on one PostgreSQL schema and one Redis, as a cluster.

Redis is required (at 127.0.0.1:6379 unless PARLEY_TEST_REDIS_URL says otherwise): without it
these tests fail, they never skip. Each test gets a key and channel prefix of its own, and a
PostgreSQL schema of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from e2e.processes import TIMEOUT_SECONDS, Process, environment
from parley.tls import ensure_certificate
from postgres_support import POSTGRES_URL
from support import RawClient

REDIS_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# Flood control and request limits out of the way: these tests send many messages at once.
NODE_SETTINGS = (
    "flood_burst_requests = 100000\nflood_rate_per_second = 100000.0\n"
    "flood_debt_requests = 100000\n"
    "request_burst_per_address = 1000000\nrequest_rate_per_address = 1000000.0\n"
    "request_burst_per_principal = 1000000\nrequest_rate_per_principal = 1000000.0\n"
    "shutdown_grace_seconds = 3.0\n"
)


def shared_certificate(root: Path) -> list[str]:
    """``--cert`` and ``--key`` of one certificate for every node of a cluster (a node with a
    bus refuses to start without one).
    """
    cert_file, key_file = ensure_certificate(root / "certificate")
    return ["--cert", str(cert_file), "--key", str(key_file)]


async def require_redis(url: str) -> None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"Redis is required for the cluster tests and unreachable at {url}: {exc}")
    finally:
        await client.aclose()


async def forget_prefix(url: str, prefix: str) -> None:
    """Delete every key a test's nodes left under ``prefix``."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class Node:
    def __init__(self, name: str, process: Process, port: int, home: Path) -> None:
        self.name = name
        self.home = home
        self.process = process
        self.port = port
        self.running = True
        self.paused = False

    def pause(self) -> None:
        self.process.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.process.signal(signal.SIGCONT)
        self.paused = False

    def log(self) -> str:
        """What the node has logged so far (its log file: a pipe nobody reads would fill)."""
        path = self.home / "server.log"
        return path.read_text() if path.exists() else ""

    @property
    def pid(self) -> int:
        return self.process.process.pid

    async def exited(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the process to end; True if it did. Its output stays
        readable (a :meth:`Process.finish` cut short by a timeout would lose what it read).
        """
        try:
            await asyncio.wait_for(self.process.process.wait(), seconds)
        except TimeoutError:
            return False
        return True


class Cluster:
    """Nodes of one test: started with :meth:`start_node`, all stopped by :meth:`stop`."""

    def __init__(self, root: Path, database: str, bus: str) -> None:
        self.root = root
        self.database = database
        self.bus = bus
        self.nodes: dict[str, Node] = {}
        self.clients: list[RawClient] = []
        self.settings = root / "cluster.toml"
        self.settings.write_text(NODE_SETTINGS)
        self.certificate = shared_certificate(root)

    async def start_node(self, name: str, *args: str) -> Node:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        process = await Process.start(
            "server.py", "--port", "0", "--data-dir", str(home / "data"),
            "--config", str(self.settings), "--database", self.database, "--bus", self.bus,
            "--log-file", str(home / "server.log"), *self.certificate, *args,
            env=environment(home),
        )  # fmt: skip
        match = await process.expect(r"Server is running on 127\.0\.0\.1:(\d+)\.\.\.$")
        await process.expect(r"Bus: Redis ")
        node = Node(name, process, int(match.group(1)), home)
        self.nodes[name] = node
        return node

    async def user(self, port: int, nick: str) -> RawClient:
        """A RawClient logged in as ``nick``, closed when the cluster stops."""
        client = await self.connect(port)
        await client.login(nick)
        return client

    async def connect(self, port: int) -> RawClient:
        client = await RawClient.open(port)
        self.clients.append(client)
        return client

    def kill(self, name: str) -> None:
        node = self.nodes[name]
        node.process.signal(signal.SIGKILL)
        node.running = False

    async def stop(self) -> dict[str, str]:
        """Stop every node still running (SIGTERM); returns what each printed. A node that
        does not exit 0 within TIMEOUT_SECONDS fails the test (it is killed first, so that
        its output can be shown).
        """
        outputs: dict[str, str] = {}
        for node in self.nodes.values():
            if node.running:
                with contextlib.suppress(ProcessLookupError):
                    # A node a test left stopped must run to act on the SIGTERM.
                    if node.paused:
                        node.process.signal(signal.SIGCONT)
                    node.process.signal(signal.SIGTERM)
        for client in self.clients:
            # A TLS close waits for the server's answer: the server may be gone.
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                await asyncio.wait_for(client.close(), 5)
        problems = []
        for name, node in self.nodes.items():
            stuck = not await node.exited(TIMEOUT_SECONDS)
            if stuck:
                node.process.kill()
            status, out, err = await node.process.finish()
            outputs[name] = out + err
            if stuck:
                problems.append(f"node {name} did not stop on SIGTERM: {out}{err}")
            elif node.running and status != 0:
                problems.append(f"node {name} exited with {status}: {out}{err}")
            node.running = False
        assert not problems, "\n".join(problems)
        return outputs


async def cluster_of(tmp_path: Path, redis_url: str = REDIS_URL) -> AsyncIterator[Cluster]:
    """A Cluster on a fresh schema and Redis prefix; the schema and keys are dropped after."""
    await require_redis(redis_url)
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    schema = f"parley_test_{uuid.uuid4().hex[:12]}"
    prefix = f"parleytest-{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    database = f"{POSTGRES_URL}{separator}search_path={schema}"
    cluster = Cluster(tmp_path, database, f"{redis_url}?prefix={prefix}")
    try:
        yield cluster
    finally:
        try:
            await cluster.stop()
        finally:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await admin.close()
            database_number = redis_url.rstrip("/").rsplit("/", 1)[-1] or "0"
            await forget_prefix(redis_url, f"{prefix}:{database_number}")


def spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnRedis:
    """A redis-server of the test's own on a spare loopback port, stopped and started by PID."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.fail("redis-server is required for the cluster tests (apt-get install redis)")
        self.binary = binary
        self.root = root
        self.port = spare_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1)
            try:
                await client.ping()
                return
            except Exception:
                await asyncio.sleep(0.1)
            finally:
                await client.aclose()
        pytest.fail(f"redis-server did not start on port {self.port}")

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 10)
        self.process = None


async def room_messages(client: RawClient, room: str, count: int) -> list[dict[str, Any]]:
    """The next ``count`` live messages of ``room`` this client receives (events kept first)."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        frame = client.events.pop(0) if client.events else await client.frame()
        if frame["type"] == "message" and frame["to"] == room and not frame.get("history"):
            found.append(frame)
    return found
