"""The workloads. Each takes a fresh, started server and returns a dict of figures.

- fan-out: one room of C clients, S speakers, R messages/s in total for T seconds.
- capacity: fan-out with R raised step by step until p99 latency passes 100 ms or a delivery
  is lost; the peak is the last step that passed.
- idle: N TLS sessions opened and held; memory and CPU per connection.

Persisted, acknowledged messages per second join these when message history is stored.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

from bench import worker
from bench.servers import Server, cpu_seconds, rss_bytes

LATENCY_SAMPLE_CLIENTS = 100  # receivers whose latencies are recorded, spread over the room
DRAIN_STABLE_SECONDS = 1.0
DRAIN_TIMEOUT_SECONDS = 10.0
CAPACITY_P99_LIMIT_MS = 100.0
MAX_MESSAGES_PER_SPEAKER_PER_SECOND = 4  # under Parley's shipped 10/s flood limit


class WorkerPool:
    """Generator processes, reused from run to run; each holds every W-th client."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=worker.main, args=(theirs,), daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.pipes)

    def ask(self, command: str, per_worker: list[dict[str, Any]] | None = None) -> list[Any]:
        """Send ``command`` to every worker at once, then wait for every answer."""
        for number, pipe in enumerate(self.pipes):
            pipe.send((command, per_worker[number] if per_worker else {}))
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(600):
                raise RuntimeError(f"a generator process did not answer {command!r}")
            answer = pipe.recv()
            if "error" in answer:
                raise RuntimeError(f"generator: {answer['error']}")
            answers.append(answer)
        return answers

    def share(self, indices: list[int]) -> list[list[int]]:
        return [indices[number :: len(self)] for number in range(len(self))]

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("stop", {}))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def _connect(
    pool: WorkerPool, server: Server, clients: int, *, join: bool
) -> tuple[list[float], list[list[int]]]:
    shares = pool.share(list(range(clients)))
    sample_every = max(1, clients // LATENCY_SAMPLE_CLIENTS)
    answers = pool.ask(
        "connect",
        [
            {
                "kind": server.kind,
                "port": server.port,
                "indices": share,
                "join": join,
                "sample_every": sample_every,
            }
            for share in shares
        ],
    )
    seconds = sorted(s for answer in answers for s in answer["connect_seconds"])
    return seconds, shares


@dataclasses.dataclass(frozen=True)
class FanOut:
    clients: int
    rate: int
    seconds: float

    @property
    def speakers(self) -> int:
        return max(10, -(-self.rate // MAX_MESSAGES_PER_SPEAKER_PER_SECOND))

    @property
    def label(self) -> str:
        return f"fan-out C={self.clients} R={self.rate}"


def _speak(
    pool: WorkerPool, server: Server, shares: list[list[int]], load: FanOut
) -> dict[str, float]:
    """One measured burst in an already joined room: deliveries, latency, loss, CPU."""
    step = max(1, load.clients // load.speakers)
    speakers = {index * step for index in range(load.speakers)}
    pool.ask("quiet")
    before = pool.ask("reset")
    server_cpu_before = cpu_seconds(server.pid)
    start_at = time.monotonic() + 0.2
    sent = pool.ask(
        "speak",
        [
            {
                "speakers": [index for index in share if index in speakers],
                "rate": load.rate * sum(index in speakers for index in share) / load.speakers,
                "duration": load.seconds,
                "start_at": start_at,
            }
            for share in shares
        ],
    )
    total_sent = sum(answer["sent"] for answer in sent)
    expected = total_sent * (load.clients - 1)
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        received = sum(answer["received"] for answer in pool.ask("count"))
        if received != last:
            last, stable_since = received, time.monotonic()
        elif received >= expected or time.monotonic() - stable_since >= DRAIN_STABLE_SECONDS:
            break
        time.sleep(0.2)
    server_cpu = cpu_seconds(server.pid) - server_cpu_before
    after = pool.ask("collect")
    received = sum(answer["received"] for answer in after)
    latencies = sorted(ns / 1e6 for answer in after for ns in answer["latencies_ns"])
    generator_cpu = sum(
        end["cpu_seconds"] - start["cpu_seconds"] for start, end in zip(before, after, strict=True)
    )
    return {
        "messages_sent": total_sent,
        "deliveries": received,
        "deliveries_per_second": received / load.seconds,
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p99_ms": _percentile(latencies, 0.99),
        "lost_deliveries": max(0, expected - received),
        "server_cpu_seconds": server_cpu,
        "server_cpu_seconds_per_million_deliveries": server_cpu / max(received, 1) * 1e6,
        "generator_cpu_seconds": generator_cpu,
        "rate_limited_replies": sum(answer["rate_limited"] for answer in after),
    }


def fan_out(pool: WorkerPool, server: Server, load: FanOut) -> dict[str, float]:
    try:
        _, shares = _connect(pool, server, load.clients, join=True)
        return _speak(pool, server, shares, load)
    finally:
        pool.ask("close")


def capacity(
    pool: WorkerPool, server: Server, clients: int, rates: list[int], seconds: float
) -> dict[str, Any]:
    """Raise the rate step by step in one joined room until latency or loss gives out."""
    steps: list[dict[str, float]] = []
    try:
        _, shares = _connect(pool, server, clients, join=True)
        for rate in rates:
            figures = _speak(pool, server, shares, FanOut(clients, rate, seconds))
            figures["rate"] = rate
            steps.append(figures)
            if figures["latency_p99_ms"] > CAPACITY_P99_LIMIT_MS or figures["lost_deliveries"]:
                break
    finally:
        pool.ask("close")
    passed = [
        step
        for step in steps
        if step["latency_p99_ms"] <= CAPACITY_P99_LIMIT_MS and not step["lost_deliveries"]
    ]
    peak = passed[-1] if passed else None
    return {
        "peak_deliveries_per_second": peak["deliveries_per_second"] if peak else 0.0,
        "peak_rate": peak["rate"] if peak else 0,
        "generator_cpu_seconds_at_peak": peak["generator_cpu_seconds"] if peak else 0.0,
        "server_cpu_seconds_at_peak": peak["server_cpu_seconds"] if peak else 0.0,
        "steps": steps,
    }


def idle(pool: WorkerPool, server: Server, connections: int) -> dict[str, float]:
    """Open ``connections`` sessions (greeting done, not in a room) and hold them."""
    time.sleep(0.5)
    rss_before, cpu_before = rss_bytes(server.pid), cpu_seconds(server.pid)
    try:
        seconds, _ = _connect(pool, server, connections, join=False)
        cpu_after = cpu_seconds(server.pid)
        time.sleep(1.0)  # let the allocator settle
        rss_after = rss_bytes(server.pid)
    finally:
        pool.ask("close")
    return {
        "connections": connections,
        "rss_per_connection_bytes": (rss_after - rss_before) / connections,
        "server_cpu_ms_per_handshake": (cpu_after - cpu_before) * 1000 / connections,
        "connect_p50_ms": statistics.median(seconds) * 1000,
        "connect_p99_ms": _percentile(seconds, 0.99) * 1000,
    }
