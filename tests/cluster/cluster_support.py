"""Several real ``server.py`` processes on one PostgreSQL schema and one Redis, as a cluster.

Redis is required (at 127.0.0.1:6379 unless PARLEY_TEST_REDIS_URL says otherwise): without it
these tests fail, they never skip. Each test gets a key and channel prefix of its own, and a
PostgreSQL schema of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from parley.client.conversations import Conversations
from parley.client.core import ChatClient, ConnectionLost, Disconnected
from parley.client.pins import PinStore
from parley.client.reconnect import Attempt, Backoff, reconnect
from parley.protocol.errors import ErrorCode, RequestRefused
from parley.protocol.messages import GoingAway, Message
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


# HAProxy's address towards the nodes: the one they trust for PROXY headers. Clients of the
# tests connect from 127.0.0.1, so one that goes straight to a node is itself, never trusted.
BALANCER_SOURCE = "127.0.0.9"


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if not found:
        pytest.fail("HAProxy is required for the cluster tests: apt-get install haproxy")
    return found


class Balancer:
    """HAProxy (Debian's package) in TCP mode before the nodes' chat ports, telling each node
    the client's address with a PROXY v2 header, checking the nodes every 200 ms. A node that
    refuses a connection (stopped, or restarting) is skipped: the connection goes to another.
    """

    def __init__(self, root: Path, nodes: dict[str, int]) -> None:
        self.root = root
        self.nodes = nodes
        self.port = spare_port()
        self.process: asyncio.subprocess.Process | None = None

    def config(self) -> str:
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port}" for name, port in self.nodes.items()
        )
        return f"""
global
    maxconn 1024

defaults
    mode tcp
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    retries 3
    option redispatch

frontend chat
    bind 127.0.0.1:{self.port}
    default_backend nodes

backend nodes
    balance roundrobin
    default-server send-proxy-v2 source {BALANCER_SOURCE} check inter 200ms fall 1 rise 2
{servers}
"""

    async def start(self) -> None:
        binary = haproxy_binary()
        path = self.root / "haproxy.cfg"
        path.write_text(self.config())
        check = await asyncio.create_subprocess_exec(
            binary, "-c", "-f", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(check.communicate(), TIMEOUT_SECONDS)
        assert check.returncode == 0, f"haproxy -c: {output.decode()}"
        self.process = await asyncio.create_subprocess_exec(
            binary, "-db", "-f", str(path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT_SECONDS
        while True:
            assert self.process.returncode is None, "HAProxy exited while starting"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                assert loop.time() < deadline, f"HAProxy did not listen on {self.port}"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()


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
        # Chat ports of nodes behind the balancer, kept across restarts.
        self.ports: dict[str, int] = {}
        self.balancer: Balancer | None = None

    def balance(self, *names: str) -> Balancer:
        """Put the nodes ``names`` (not started yet) behind HAProxy, started by
        :meth:`start_balancer`: each gets a chat port of its own and trusts the balancer.
        """
        self.ports = {name: spare_port() for name in names}
        # Any free file port: the chat port + 1 may be taken.
        self.settings.write_text(
            NODE_SETTINGS + f'proxy_protocol_from = ["{BALANCER_SOURCE}/32"]\nfiles_port = 0\n'
        )
        self.balancer = Balancer(self.root, self.ports)
        return self.balancer

    async def start_balancer(self) -> Balancer:
        assert self.balancer is not None, "balance() first"
        await self.balancer.start()
        return self.balancer

    def node_of(self, nick: str) -> Node:
        """The running node ``nick`` logged in on last (from the nodes' logs)."""
        found = [
            node for node in self.nodes.values() if node.running and f") is {nick}\n" in node.log()
        ]
        assert len(found) == 1, f"{nick} is on {[node.name for node in found]}"
        return found[0]

    async def start_node(self, name: str, *args: str) -> Node:
        home = self.root / name
        home.mkdir(parents=True, exist_ok=True)
        port = self.ports.get(name, 0)
        process = await Process.start(
            "server.py", "--port", str(port), "--data-dir", str(home / "data"),
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

    async def restart(self, name: str) -> str:
        """Stop node ``name`` as an operator would (SIGTERM), wait for it to exit 0, and start
        it again on the same port; returns what it printed.
        """
        node = self.nodes[name]
        node.process.signal(signal.SIGTERM)
        # Its drain (up to shutdown_drain_seconds) comes before the usual shutdown.
        exited = await node.exited(2 * TIMEOUT_SECONDS)
        if not exited:
            node.process.kill()
        status, out, err = await node.process.finish()
        node.running = False
        assert exited, f"node {name} did not stop on SIGTERM: {out}{err}"
        assert status == 0, f"node {name} exited with {status}: {out}{err}"
        await self.start_node(name)
        return out + err

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
        if self.balancer is not None:
            await self.balancer.stop()
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


@dataclasses.dataclass(frozen=True)
class ClusterStorage:
    """What the nodes of one test share: a PostgreSQL schema and a Redis prefix of their own.
    Made by :meth:`make`, dropped with their keys by :meth:`drop`; no connection is held in
    between, so the two may run on different event loops.
    """

    schema: str
    prefix: str
    redis_url: str

    @classmethod
    async def make(cls, redis_url: str = REDIS_URL) -> ClusterStorage:
        await require_redis(redis_url)
        schema = f"parley_test_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await admin.close()
        return cls(schema, f"parleytest-{uuid.uuid4().hex[:12]}", redis_url)

    @property
    def database(self) -> str:
        separator = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{separator}search_path={self.schema}"

    @property
    def bus(self) -> str:
        return f"{self.redis_url}?prefix={self.prefix}"

    async def drop(self) -> None:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        finally:
            await admin.close()
        database_number = self.redis_url.rstrip("/").rsplit("/", 1)[-1] or "0"
        await forget_prefix(self.redis_url, f"{self.prefix}:{database_number}")


async def cluster_of(tmp_path: Path, redis_url: str = REDIS_URL) -> AsyncIterator[Cluster]:
    """A Cluster on a fresh schema and Redis prefix; the schema and keys are dropped after."""
    storage = await ClusterStorage.make(redis_url)
    cluster = Cluster(tmp_path, storage.database, storage.bus)
    try:
        yield cluster
    finally:
        try:
            await cluster.stop()
        finally:
            await storage.drop()


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


# Reconnecting as the terminal and desktop clients do, sooner: the tests wait for it.
QUICK = Backoff(first_seconds=0.2, most_seconds=2.0)
# Refusals a send meets while its node stops: sent again, under its msg_id, once reconnected.
_SEND_AGAIN = {ErrorCode.UNAVAILABLE, ErrorCode.SERVER_SHUTDOWN}


class Member:
    """A user of :class:`Balanced`: its connection of the moment, replaced as it reconnects."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    async def send(self, room: str, text: str) -> int:
        """Send ``text`` (msg_id = text) until acknowledged, through reconnections: its seq."""
        while True:
            client = self.client
            try:
                return (await client.send(room, text, msg_id=text)).seq
            except ConnectionLost:
                pass
            except RequestRefused as refusal:
                if refusal.code not in _SEND_AGAIN:
                    raise
            # Wait for the follower of this member's events to have reconnected.
            while self.client is client:
                await asyncio.sleep(0.05)


class Balanced:
    """Clients of the cluster that connect through the balancer, pin its certificate on first
    use as the terminal client does, and move and resume as the terminal and desktop clients
    do (parley.client.front): on ``going-away`` they leave with nothing in flight, on a lost
    connection they reconnect and resume.
    """

    def __init__(self, cluster: Cluster, pins: Path) -> None:
        assert cluster.balancer is not None
        self.port = cluster.balancer.port
        self.pins = PinStore(pins)
        self.clients: list[ChatClient] = []
        self.attempts: list[Attempt] = []
        # Going-away notices the users were given.
        self.moves = 0

    async def connect(self, conversations: Conversations | None = None) -> ChatClient:
        client = await ChatClient.connect(
            "127.0.0.1", self.port, pins=self.pins, conversations=conversations
        )
        self.clients.append(client)
        return client

    async def user(self, nick: str, room: str) -> Member:
        client = await self.connect()
        await client.login(nick)
        await client.join(room)
        return Member(client)

    async def back(self, client: ChatClient, why: str) -> ChatClient:
        """``client``'s connection was lost: connect again and resume where it stopped."""
        again, refused = await reconnect(client, self.connect, why, self.attempts.append, QUICK)
        assert not refused, refused
        return again

    async def follow(self, member: Member, room: str, last: str) -> list[Message]:
        """Every message of ``room`` ``member`` is shown up to the one whose text is ``last``,
        through as many moves and reconnections as it takes.
        """
        shown: list[Message] = []
        while not shown or shown[-1].text != last:
            event = await asyncio.wait_for(member.client.next_event(), 30)
            if isinstance(event, GoingAway):
                self.moves += 1
                await member.client.move_on(event)
            elif isinstance(event, Disconnected):
                member.client = await self.back(member.client, event.reason)
            elif isinstance(event, Message) and event.to == room:
                shown.append(event)
        return shown

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
