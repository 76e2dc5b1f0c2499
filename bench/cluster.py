"""Cluster: what the Redis bus costs, next to one node without it, and how long a dead node's
users take to come back.

Each run starts its own nodes (``python -m parley server``) on a PostgreSQL schema made for it
in the database at PARLEY_BENCH_CLUSTER_POSTGRES_URL (default the local ``test`` database) and
a Redis key prefix of its own at PARLEY_BENCH_REDIS_URL (default the local Redis); the schema
and the keys are removed after it. Flood control is lifted (a few speakers send fast).

- **bus cost** (``cluster fan-out``): a room of C members, S speakers sending R messages/s in
  all for T seconds, first on one node with no bus, then on 3 nodes sharing Redis with the
  members spread evenly over them and every speaker on node 1. Figures: server CPU per
  delivery (all nodes' CPU summed) and its ratio to the single node (goal: at most 1.3),
  Redis's own CPU, and the latency p99 of members on the other nodes against the single
  node's at the same rate: the latency the bus adds (goal: at most 5 ms).
- **failover** (``cluster failover``): N members spread over 3 nodes; a sender on node 1 and
  one on node 3 each send 25 messages/s; node 3 is killed with SIGKILL. Its members reconnect
  as a client does through a balancer (to the other nodes in turn, after 0.25-0.5 s, doubling),
  log in under a new guest name (the old one stays held until its lease lapses, up to 10 s),
  and resume the room with ``history`` ``after`` the last ``seq`` they saw; its sender sends
  again every message not acknowledged, with the same ``msg_id``. Figures: time from the kill
  until 95 % of its members have resumed (goal: 5 s); messages acknowledged to a sender that
  some member never received (lost); ``msg_id``s a member saw under two ``seq`` (duplicated).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import proc, stats
from bench.certs import write_self_signed
from bench.outcome import Figure, Outcome
from bench.persistence import SERVER_SETTINGS
from bench.pool import WorkerPool
from bench.servers import START_TIMEOUT_SECONDS, Server

POSTGRES_URL = os.environ.get(
    "PARLEY_BENCH_CLUSTER_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PARLEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SETTINGS = SERVER_SETTINGS + "shutdown_grace_seconds = 3.0\nfiles_port = 0\n"
CLUSTER_NODES = 3
START_DELAY_SECONDS = 0.3
DRAIN_SECONDS = 10.0
QUIET_SECONDS = 0.5
QUIET_TIMEOUT_SECONDS = 60.0

FAILOVER_RATE_PER_SENDER = 25.0
FAILOVER_BEFORE_KILL_SECONDS = 2.0
FAILOVER_AFTER_KILL_SECONDS = 8.0
FAILOVER_RESUME_LIMIT_SECONDS = 30.0
FRAME_SECONDS = 10.0
MARK = "%%cluster "


@dataclasses.dataclass(frozen=True)
class FanOut:
    clients: int
    speakers: int
    rate: int
    seconds: float

    @property
    def label(self) -> str:
        return f"cluster fan-out C={self.clients} R={self.rate}"


@dataclasses.dataclass(frozen=True)
class Failover:
    clients: int

    @property
    def label(self) -> str:
        return f"cluster-failover N={self.clients}"


# --- the nodes --------------------------------------------------------------------------------


class Node(Server):
    name = "Parley"
    protocol = "parley"
    slow_reader_log_line = b"not reading"

    def __init__(
        self, root: Path, database: str, bus: str | None, certificate: tuple[Path, Path]
    ) -> None:
        super().__init__()
        self.root = root
        self.database = database
        self.bus = bus
        # The nodes of a cluster present one certificate (a node with a bus refuses without).
        self.certificate = certificate

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        env = {**os.environ, "PYTHONPATH": str(self.root / "src")}
        config = self.workdir / "parley.toml"
        config.write_text(SETTINGS)
        command = [sys.executable, "-m", "parley", "server", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--data-dir", str(self.workdir / "data")]
        command += ["--config", str(config), "--database", self.database]
        command += ["--cert", str(self.certificate[0]), "--key", str(self.certificate[1])]
        if self.bus is not None:
            command += ["--bus", self.bus]
        return command, env

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=START_TIMEOUT_SECONDS)


class Nodes:
    """``count`` nodes on a fresh PostgreSQL schema; with ``bus``, on a fresh Redis prefix."""

    def __init__(self, root: Path, count: int, bus: bool) -> None:
        self.schema = f"parley_bench_{uuid.uuid4().hex[:12]}"
        self.prefix = f"parleybench-{uuid.uuid4().hex[:12]}"
        separator = "&" if "?" in POSTGRES_URL else "?"
        database = f"{POSTGRES_URL}{separator}search_path={self.schema}"
        bus_url = f"{REDIS_URL}?prefix={self.prefix}" if bus else None
        self.secrets = Path(tempfile.mkdtemp(prefix="parley-bench-cert-"))
        certificate = (self.secrets / "cert.pem", self.secrets / "key.pem")
        write_self_signed(*certificate)
        self.nodes = [Node(root, database, bus_url, certificate) for _ in range(count)]
        self.with_bus = bus

    def __enter__(self) -> Nodes:
        asyncio.run(_postgres(f'CREATE SCHEMA "{self.schema}"'))
        try:
            # The first alone: it makes the tables.
            self.nodes[0].start()
            for node in self.nodes[1:]:
                node.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.stop()
        asyncio.run(_postgres(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        if self.with_bus:
            asyncio.run(_forget_redis_prefix(self.prefix))
        shutil.rmtree(self.secrets, ignore_errors=True)

    def cpu_seconds(self) -> float:
        return sum(node.cpu_seconds() for node in self.nodes if _running(node))

    def log_tail(self) -> str:
        return "\n".join(node.log_tail(300) for node in self.nodes)


def _running(node: Node) -> bool:
    return node.process is not None and node.process.poll() is None


async def _postgres(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_URL, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _forget_redis_prefix(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def redis_pid() -> int | None:
    """The local redis-server's pid, to read its CPU time (None when not found)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "redis-server":
                    return int(entry.name)
    return None


# --- bus cost -----------------------------------------------------------------------------------


def run_fanout(pool: WorkerPool, load: FanOut, root: Path) -> Outcome:
    single = _one_fanout(pool, root, load, 1)
    spread = _one_fanout(pool, root, load, CLUSTER_NODES)
    figures: dict[str, Figure] = {
        "single_cpu_us_per_delivery": single["cpu_us_per_delivery"],
        "cluster_cpu_us_per_delivery": spread["cpu_us_per_delivery"],
        "cpu_ratio": _ratio(spread["cpu_us_per_delivery"], single["cpu_us_per_delivery"]),
        "redis_cpu_us_per_delivery": spread["redis_cpu_us_per_delivery"],
        "single_deliveries_per_second": single["deliveries_per_second"],
        "cluster_deliveries_per_second": spread["deliveries_per_second"],
        "single_latency_p50_ms": single["local_latency_p50_ms"],
        "single_latency_p99_ms": single["local_latency_p99_ms"],
        "local_latency_p50_ms": spread["local_latency_p50_ms"],
        "local_latency_p99_ms": spread["local_latency_p99_ms"],
        "remote_latency_p50_ms": spread["remote_latency_p50_ms"],
        "remote_latency_p99_ms": spread["remote_latency_p99_ms"],
        # Same run, same rate: members on the speakers' node against those on the others.
        "added_latency_p99_ms": _difference(
            spread["remote_latency_p99_ms"], spread["local_latency_p99_ms"]
        ),
        "added_latency_p50_ms": _difference(
            spread["remote_latency_p50_ms"], spread["local_latency_p50_ms"]
        ),
        "single_lost_deliveries": single["lost"],
        "cluster_lost_deliveries": spread["lost"],
        "cluster_cores_busy": spread["cores_busy"],
        "generator_cores_busy": spread["generator_cores_busy"],
    }
    notes = []
    if spread["lost"] or single["lost"]:
        notes.append(f"{load.label}: deliveries missing after the drain wait")
    return Outcome(figures, details={"single": single, "cluster": spread}, notes=notes)


def _ratio(first: float | None, second: float | None) -> float | None:
    return first / second if first is not None and second else None


def _difference(first: float | None, second: float | None) -> float | None:
    return first - second if first is not None and second is not None else None


def _one_fanout(pool: WorkerPool, root: Path, load: FanOut, count: int) -> dict[str, Any]:
    with Nodes(root, count, bus=count > 1) as nodes:
        try:
            return _burst(pool, nodes, load)
        finally:
            pool.ask("close")


def _burst(pool: WorkerPool, nodes: Nodes, load: FanOut) -> dict[str, Any]:
    count = len(nodes.nodes)
    on_node = [[i for i in range(load.clients) if i % count == k] for k in range(count)]
    # Speakers on the first node; latencies sampled where the bus carries the messages (the
    # other nodes), or everywhere on a single node.
    speakers = set(on_node[0][: load.speakers])
    sampled = {i for i in range(load.clients) if i not in speakers}
    shares: list[list[int]] = [[] for _ in range(len(pool))]
    for node, members in zip(nodes.nodes, on_node, strict=True):
        split = pool.split(members)
        answers = pool.ask(
            "connect",
            [
                {
                    "protocol": "parley",
                    "port": node.port,
                    "indices": share,
                    "room": True,
                    "sampled": [i for i in share if i in sampled],
                }
                for share in split
            ],
        )
        failures = sum(answer["failures"] for answer in answers)
        if failures:
            first = next(answer["first_failure"] for answer in answers if answer["failures"])
            raise RuntimeError(f"{failures} clients could not join: {first}")
        for mine, share in zip(shares, split, strict=True):
            mine.extend(share)
    pool.ask("quiet", {"seconds": QUIET_SECONDS, "timeout": QUIET_TIMEOUT_SECONDS})
    pool.ask("reset")
    redis = redis_pid() if nodes.with_bus else None
    redis_before = proc.cpu_seconds(redis, descendants=False) if redis else 0.0
    cpu_before, generator_before = nodes.cpu_seconds(), pool.cpu_seconds()
    started = time.monotonic()
    spoken = pool.ask(
        "speak",
        [
            {
                "speakers": [i for i in share if i in speakers],
                "rate": load.rate * sum(i in speakers for i in share) / len(speakers),
                "seconds": load.seconds,
                "start_at": started + START_DELAY_SECONDS,
            }
            for share in shares
        ],
    )
    sent = sum(answer["sent"] for answer in spoken)
    expected = sent * (load.clients - 1)
    deadline = time.monotonic() + DRAIN_SECONDS
    last, steady_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        received = sum(answer["received"] for answer in pool.ask("count"))
        if received >= expected:
            break
        if received != last:
            last, steady_since = received, time.monotonic()
        elif time.monotonic() - steady_since > 1.0:
            break
        time.sleep(0.2)
    wall = time.monotonic() - started
    cpu = nodes.cpu_seconds() - cpu_before
    generator = sum(
        after - before for before, after in zip(generator_before, pool.cpu_seconds(), strict=True)
    )
    redis_cpu = (proc.cpu_seconds(redis, descendants=False) - redis_before) if redis else None
    collected = pool.ask("collect", {"by_client": True})
    received = sum(answer["received"] for answer in collected)
    # Members on the speakers' node, and on the others (the bus carries their messages).
    local, remote = array.array("q"), array.array("q")
    for answer in collected:
        for index, latencies in answer["latencies_by_client"].items():
            (local if index % count == 0 else remote).frombytes(latencies)
    local_ms = sorted(ns / 1e6 for ns in local)
    remote_ms = sorted(ns / 1e6 for ns in remote)
    return {
        "nodes": len(nodes.nodes),
        "messages_sent": sent,
        "deliveries": received,
        "deliveries_per_second": received / load.seconds,
        "lost": max(0, expected - received),
        "cpu_seconds": cpu,
        "cpu_us_per_delivery": cpu / received * 1e6 if received else None,
        "redis_cpu_us_per_delivery": (
            redis_cpu / received * 1e6 if redis_cpu is not None and received else None
        ),
        "local_latency_p50_ms": stats.percentile(local_ms, 0.50),
        "local_latency_p99_ms": stats.percentile(local_ms, 0.99),
        "remote_latency_p50_ms": stats.percentile(remote_ms, 0.50),
        "remote_latency_p99_ms": stats.percentile(remote_ms, 0.99),
        "latency_samples": len(local_ms) + len(remote_ms),
        "cores_busy": cpu / wall,
        "generator_cores_busy": generator / wall,
    }


# --- failover -----------------------------------------------------------------------------------


def run_failover(pool: WorkerPool, load: Failover, root: Path) -> Outcome:
    with Nodes(root, CLUSTER_NODES, bus=True) as nodes:
        result = asyncio.run(_failover(nodes, load.clients))
    figures: dict[str, Figure] = {
        "clients_on_killed_node": result["victims"],
        "resumed_95_seconds": result["resumed_95_seconds"],
        "resumed_max_seconds": result["resumed_max_seconds"],
        "resumed_within_5_s_share": result["within_5_s"],
        "not_resumed": result["not_resumed"],
        "messages_acknowledged": result["acknowledged"],
        "messages_never_acknowledged": result["unacknowledged"],
        "killed_sender_resumed_seconds": result["killed_sender_resumed_seconds"],
        "lost_messages": result["lost"],
        "duplicated_messages": result["duplicated"],
        "overlap_dropped_by_seq": result["overlap"],
    }
    notes = []
    if result["lost"] or result["duplicated"] or result["not_resumed"]:
        notes.append(
            f"{load.label}: {result['lost']} lost, {result['duplicated']} duplicated, "
            f"{result['not_resumed']} not resumed"
        )
    return Outcome(figures, details=result, notes=notes)


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Member:
    """A room member that resumes as the reference client does, through a "balancer" that
    hands it the surviving nodes in turn.
    """

    def __init__(self, index: int, ports: list[int]) -> None:
        self.index = index
        self.ports = ports
        self.writer: asyncio.StreamWriter | None = None
        self.seen: dict[int, str] = {}  # seq -> msg_id (the text carries it)
        self.ids: dict[str, set[int]] = {}  # msg_id -> seqs
        self.overlap = 0
        self.last_seq = 0
        self.lost_at: float | None = None
        self.resumed_at: float | None = None
        self.logins = 0
        self.next_id = 100
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reading: asyncio.Task[None] | None = None
        # A sender is an account: it logs in again as itself, so that a message sent again
        # with its msg_id is recognised as the same one (a guest's new name would not be).
        self.account: tuple[str, str] | None = None
        self.max_wait = 30.0

    @property
    def connected(self) -> bool:
        return self.reading is not None and not self.reading.done()

    async def register(self, password: str) -> None:
        reply = await self.request("register", password=password)
        if reply["type"] != "ok":
            raise ConnectionError(f"register refused: {reply}")
        self.account = (f"m{self.index:04d}x{self.logins}", reply["token"])

    async def connect(self, port: int) -> None:
        reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=_context(), limit=2**22),
            FRAME_SECONDS,
        )
        self.reading = asyncio.create_task(self._read(reader))
        await self.request("hello", versions=[1])
        self.logins += 1
        if self.account is not None:
            nick, token = self.account
            reply = await self.request("nick", nick=nick, token=token)
        else:
            reply = await self.request("nick", nick=f"m{self.index:04d}x{self.logins}")
        if reply["type"] != "ok":
            raise ConnectionError(f"login refused: {reply}")

    def send(self, kind: str, **fields: Any) -> asyncio.Future[dict[str, Any]]:
        assert self.writer is not None
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[self.next_id] = future
        self.writer.write(json.dumps({"type": kind, "id": self.next_id, **fields}).encode() + b"\n")
        return future

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        return await asyncio.wait_for(self.send(kind, **fields), FRAME_SECONDS)

    def _message(self, frame: dict[str, Any]) -> None:
        text = frame.get("text", "")
        if frame.get("to") != "#general" or not text.startswith(MARK):
            return
        seq, msg_id = frame["seq"], text[len(MARK) :]
        if seq in self.seen:
            self.overlap += 1  # history and live traffic overlapped: dropped by seq
            return
        self.seen[seq] = msg_id
        self.ids.setdefault(msg_id, set()).add(seq)
        self.last_seq = max(self.last_seq, seq)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                frame = json.loads(line)
                if frame["type"] == "message":
                    self._message(frame)
                elif frame["type"] == "history":
                    for message in frame.get("messages", []):
                        self._message(message)
                future = self.replies.pop(frame.get("id", -1), None)
                if future is not None and not future.done():
                    future.set_result(frame)
        except (ConnectionError, OSError, ssl.SSLError, ValueError):
            pass
        self._failed()

    def _failed(self) -> None:
        for future in self.replies.values():
            if not future.done():
                future.set_exception(ConnectionError("connection lost"))
        self.replies.clear()

    async def resume(self, survivors: list[int], lost_at: float) -> None:
        """Reconnect to the survivors in turn, log in, and read what was missed."""
        self.lost_at = lost_at
        wait, turn = 0.25, self.index
        while time.monotonic() - lost_at < FAILOVER_RESUME_LIMIT_SECONDS:
            await asyncio.sleep(wait * (1 + random.random()))
            port = survivors[turn % len(survivors)]
            turn += 1
            # Before logging in: live messages start at once and would move last_seq on.
            after = self.last_seq
            try:
                await self.connect(port)
                while True:
                    page = await self.request("history", to="#general", after=after)
                    if page["type"] != "history":
                        raise ConnectionError(f"history refused: {page}")
                    messages = page.get("messages", [])
                    if messages:
                        after = messages[-1]["seq"]
                    if not (page.get("more") and messages):
                        break
            except (ConnectionError, OSError, TimeoutError, ssl.SSLError):
                # A refused login (the account's name still held by the dead node's lease)
                # leaves a connection open: close it before the next try.
                await self.close()
                wait = min(wait * 2, self.max_wait)
                continue
            self.resumed_at = time.monotonic()
            return

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
        if self.reading is not None:
            self.reading.cancel()


class Sender:
    """Sends a marked message every 1/rate s to #general and keeps what was acknowledged;
    after a lost connection it logs in elsewhere and sends again what was not.
    """

    def __init__(self, name: str, member: Member) -> None:
        self.name = name
        self.member = member
        self.acked: set[str] = set()
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.number = 0

    def _send(self, msg_id: str) -> None:
        future = self.member.send("send", to="#general", text=MARK + msg_id, msg_id=msg_id)
        self.pending[msg_id] = future
        future.add_done_callback(lambda done: self._answered(msg_id, done))

    def _answered(self, msg_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        if future.result().get("type") == "sent":
            self.acked.add(msg_id)
            self.pending.pop(msg_id, None)

    async def run(self, until: float, survivors: list[int]) -> None:
        while time.monotonic() < until:
            if not self.member.connected:
                await self._come_back(survivors)
                continue
            self.number += 1
            self._send(f"{self.name}-{self.number}")
            await asyncio.sleep(1 / FAILOVER_RATE_PER_SENDER)

    async def finish(self, survivors: list[int]) -> None:
        """Every message sent is acknowledged in the end, or the time is up."""
        deadline = time.monotonic() + FAILOVER_RESUME_LIMIT_SECONDS
        while self.pending and time.monotonic() < deadline:
            if not self.member.connected:
                await self._come_back(survivors)
            await asyncio.sleep(0.1)

    async def _come_back(self, survivors: list[int]) -> None:
        await self.member.resume(survivors, time.monotonic())
        if self.member.connected:
            for msg_id in sorted(self.pending):  # the same msg_id: stored once
                self._send(msg_id)


async def _failover(nodes: Nodes, clients: int) -> dict[str, Any]:
    ports = [node.port for node in nodes.nodes]
    victim = len(ports) - 1
    survivors = ports[:victim]
    members = [Member(index, ports) for index in range(clients)]
    gate = asyncio.Semaphore(8)

    async def join(member: Member) -> None:
        async with gate:
            await member.connect(ports[member.index % len(ports)])

    await asyncio.gather(*(join(member) for member in members))
    first, last = members[0], members[victim]  # on node 1 and on the killed node
    senders = [Sender("a", first), Sender("c", last)]
    for sender in senders:
        await sender.member.register(uuid.uuid4().hex)
        sender.member.max_wait = 1.0  # the name is held up to 10 s: try often
    started = time.monotonic()
    until = started + FAILOVER_BEFORE_KILL_SECONDS + FAILOVER_AFTER_KILL_SECONDS
    sending = [asyncio.create_task(sender.run(until, survivors)) for sender in senders]
    await asyncio.sleep(FAILOVER_BEFORE_KILL_SECONDS)
    # The killed node's members, its sender aside (an account, held up to 10 s by the lease).
    on_victim = [
        member for member in members if member.index % len(ports) == victim and member is not last
    ]
    await asyncio.to_thread(nodes.nodes[victim].kill)
    killed_at = time.monotonic()
    resuming = [asyncio.create_task(member.resume(survivors, killed_at)) for member in on_victim]
    await asyncio.gather(*sending)
    await asyncio.gather(*resuming)
    await asyncio.gather(*(sender.finish(survivors) for sender in senders))
    # Whatever is still in flight is answered or lost.
    await asyncio.sleep(2.0)
    acknowledged = set().union(*(sender.acked for sender in senders))
    lost = duplicated = overlap = 0
    for member in members:
        if member.reading is None or member.reading.done():
            continue  # never came back: counted below
        got = set(member.ids)
        lost += len(acknowledged - got)
        duplicated += sum(1 for seqs in member.ids.values() if len(seqs) > 1)
        overlap += member.overlap
    times = sorted(
        member.resumed_at - killed_at for member in on_victim if member.resumed_at is not None
    )
    within = sum(1 for each in times if each <= 5.0)
    # Those that never resumed count as never: past 5 % of them, there is no 95th percentile.
    padded = times + [float("inf")] * (len(on_victim) - len(times))
    resumed_95 = stats.percentile(padded, 0.95)
    for member in members:
        await member.close()
    return {
        "victims": len(on_victim),
        "resumed_95_seconds": resumed_95 if resumed_95 != float("inf") else None,
        "resumed_max_seconds": times[-1] if times else None,
        "within_5_s": within / len(on_victim) if on_victim else None,
        "not_resumed": len(on_victim) - len(times),
        "acknowledged": len(acknowledged),
        "unacknowledged": sum(len(sender.pending) for sender in senders),
        "killed_sender_resumed_seconds": (
            last.resumed_at - killed_at if last.resumed_at is not None else None
        ),
        "lost": lost,
        "duplicated": duplicated,
        "overlap": overlap,
    }
