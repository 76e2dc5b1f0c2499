"""Fan-out: one room of C clients; S of them speak, R messages/s in all, for T seconds.

Parley's clients log in, which joins them to ``#general``; IRC clients register and JOIN
``#bench``. Speaking starts once every client is in the room and the join announcements have
died down (no client received anything for half a second, waited for at most a minute).

S = max(10, R/4) speakers, so each sends at most 4 messages/s: Parley ships flood control at 10
requests/s with a burst of 30, and the server runs as shipped. A Parley ``rate-limited`` refusal
means the workload broke that rule; it is counted and reported, never expected.

A delivery is a benchmark message arriving at a client other than its sender (IRC does not echo
a message to its sender; Parley does, and those echoes are not counted). The figures:

- deliveries/s: deliveries during the burst divided by T;
- latency: receive time minus the send time carried in the text, on about 100 sampled receivers;
- lost: messages sent * (C - 1) minus deliveries, after waiting until the count has not changed
  for 1 s (at most 10 s);
- CPU: user + system time of the server process tree, and of every generator process, from just
  before the first message to the end of that wait; and what the rest of the machine used
  meanwhile, since a shared machine's other work skews every figure.
"""

from __future__ import annotations

import array
import dataclasses
import math
import time
from typing import Any

from bench import proc, stats
from bench.outcome import Figure, Outcome
from bench.pool import WorkerPool, open_sessions
from bench.servers import Server

MAX_MESSAGES_PER_SPEAKER_PER_SECOND = 4
MIN_SPEAKERS = 10
QUIET_SECONDS = 0.5
QUIET_TIMEOUT_SECONDS = 60.0
START_DELAY_SECONDS = 0.2  # time for every worker to receive "speak" before the common start
DRAIN_STABLE_SECONDS = 1.0
DRAIN_TIMEOUT_SECONDS = 10.0
DRAIN_POLL_SECONDS = 0.2


@dataclasses.dataclass(frozen=True)
class Load:
    clients: int
    rate: int  # messages per second, all speakers together
    seconds: float

    @property
    def speakers(self) -> int:
        needed = math.ceil(self.rate / MAX_MESSAGES_PER_SPEAKER_PER_SECOND)
        return min(self.clients, max(MIN_SPEAKERS, needed))

    @property
    def label(self) -> str:
        return f"fan-out C={self.clients} R={self.rate}"


def burst(pool: WorkerPool, server: Server, shares: list[list[int]], load: Load) -> Outcome:
    """One measured burst in a room everyone has joined."""
    notes: list[str] = []
    if not all(answer["quiet"] for answer in pool.ask("quiet", _quiet_arguments())):
        notes.append(f"the room was not quiet after {QUIET_TIMEOUT_SECONDS:.0f} s")
    step = load.clients / load.speakers
    speakers = {int(number * step) for number in range(load.speakers)}
    pool.ask("reset")
    cuts_before = server.slow_reader_cuts()
    server_cpu_before, generator_cpu_before = server.cpu_seconds(), pool.cpu_seconds()
    machine_before = proc.machine_busy_seconds()
    started = time.monotonic()
    start_at = started + START_DELAY_SECONDS
    spoken = pool.ask(
        "speak",
        [
            {
                "speakers": [index for index in share if index in speakers],
                "rate": load.rate * sum(index in speakers for index in share) / load.speakers,
                "seconds": load.seconds,
                "start_at": start_at,
            }
            for share in shares
        ],
    )
    sent = sum(answer["sent"] for answer in spoken)
    expected = sent * (load.clients - 1)
    _drain(pool, expected)
    wall = time.monotonic() - started
    server_cpu = server.cpu_seconds() - server_cpu_before
    machine = proc.machine_busy_seconds() - machine_before
    generator_cpu = [
        after - before
        for before, after in zip(generator_cpu_before, pool.cpu_seconds(), strict=True)
    ]
    collected = pool.ask("collect")
    received = sum(answer["received"] for answer in collected)
    latencies = array.array("q")
    for answer in collected:
        latencies.frombytes(answer["latencies_ns"])
    latency_ms = sorted(ns / 1e6 for ns in latencies)
    refusals = sum(answer["refusals"] for answer in collected)
    if refusals:
        notes.append(f"{refusals} sends refused as rate-limited: the workload broke flood control")
    figures: dict[str, Figure] = {
        "clients": load.clients,
        "speakers": load.speakers,
        "rate": load.rate,
        "seconds": load.seconds,
        "messages_sent": sent,
        "deliveries": received,
        "deliveries_per_second": received / load.seconds,
        "latency_p50_ms": stats.percentile(latency_ms, 0.50),
        "latency_p99_ms": stats.percentile(latency_ms, 0.99),
        "latency_samples": len(latency_ms),
        "lost_deliveries": max(0, expected - received),
        "rate_limited_refusals": refusals,
        "clients_dropped": sum(answer["dropped"] for answer in collected),
        "server_slow_reader_cuts": server.slow_reader_cuts() - cuts_before,
        "bytes_received_per_delivery": (
            sum(answer["received_bytes"] for answer in collected) / received if received else None
        ),
        "server_cpu_seconds": server_cpu,
        "server_cpu_seconds_per_million_deliveries": (
            server_cpu / received * 1e6 if received else None
        ),
        "server_cores_busy": server_cpu / wall,
        "generator_cpu_seconds": sum(generator_cpu),
        "generator_cores_busy": sum(generator_cpu) / wall,
        # A generator process runs one event loop, so near 1.0 here means it could not keep up.
        "generator_busiest_process_share": max(generator_cpu[:-1], default=0.0) / wall,
        # Everything else on the machine (other jobs, the kernel's own threads): noise.
        "other_cores_busy": max(0.0, machine - server_cpu - sum(generator_cpu)) / wall,
        "measured_seconds": wall,
    }
    return Outcome(figures, notes=notes)


def _quiet_arguments() -> dict[str, Any]:
    return {"seconds": QUIET_SECONDS, "timeout": QUIET_TIMEOUT_SECONDS}


def _drain(pool: WorkerPool, expected: int) -> None:
    """Wait until every delivery arrived, or the count stopped changing, or time ran out."""
    last, changed_at = -1, time.monotonic()
    deadline = changed_at + DRAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        received = sum(answer["received"] for answer in pool.ask("count"))
        if received >= expected:
            return
        if received != last:
            last, changed_at = received, time.monotonic()
        elif time.monotonic() - changed_at >= DRAIN_STABLE_SECONDS:
            return
        time.sleep(DRAIN_POLL_SECONDS)


def join_room(pool: WorkerPool, server: Server, clients: int) -> tuple[list[list[int]], str]:
    """Every client logged in and in the room, or an error: a fan-out needs the whole room."""
    sessions = open_sessions(pool, server, clients, room=True)
    if sessions.failures:
        raise RuntimeError(
            f"{sessions.failures} of {clients} clients could not join: {sessions.first_failure}"
        )
    return sessions.shares, sessions.cipher


def run(pool: WorkerPool, server: Server, load: Load) -> Outcome:
    try:
        shares, cipher = join_room(pool, server, load.clients)
        outcome = burst(pool, server, shares, load)
    finally:
        pool.ask("close")
    outcome.details["tls"] = cipher
    return outcome
