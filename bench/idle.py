"""Idle users: N TLS sessions opened and held; the server's memory and CPU for them.

Each session is real but idle, and is what a user of each server has once connected. A Parley
client finishes the TLS handshake, the protocol hello and a login with a nickname, which joins
``#general`` as the product does (every login is announced to the members already there); an
IRC client finishes the handshake and registers (NICK/USER until numeric 001) without joining a
channel. ngIRCd's registration reply is longer than Parley's welcome (001-005, user statistics,
the message of the day), which its CPU includes.

Sessions come from 127.0.0.2, 127.0.0.3, … with at most 900 per address, so Parley's shipped
limit of 1,000 connections per address stays as it is.

- memory per connection: the server's RSS (with its descendants) once every session is open and
  nothing more arrives (waited for at most two minutes), minus before, over N;
- CPU per login (IRC: registration): the server's CPU time over the same span, over N;
- connect latency: from the first SYN to the session being ready, per connection, with a few
  connects in flight per generator process (see ``bench.worker``).
"""

from __future__ import annotations

import time

from bench import stats
from bench.outcome import Outcome
from bench.pool import WorkerPool, open_sessions
from bench.servers import Server

SETTLE_SECONDS = 1.0  # after the last connect, for the server's allocator and output to settle
QUIET_TIMEOUT_SECONDS = 120.0  # for the last login announcements to be delivered


def run(pool: WorkerPool, server: Server, connections: int) -> Outcome:
    time.sleep(SETTLE_SECONDS / 2)
    rss_before, cpu_before = server.rss_bytes(), server.cpu_seconds()
    try:
        # A Parley login joins #general; an IRC registration joins nothing.
        sessions = open_sessions(pool, server, connections, room=server.protocol == "parley")
        quiet = pool.ask("quiet", {"seconds": SETTLE_SECONDS, "timeout": QUIET_TIMEOUT_SECONDS})
        rss_after, cpu_after = server.rss_bytes(), server.cpu_seconds()
    finally:
        pool.ask("close")
    opened = len(sessions.connect_ms)
    notes = []
    if not all(answer["quiet"] for answer in quiet):
        notes.append(f"sessions still received data {QUIET_TIMEOUT_SECONDS:.0f} s after the last")
    if sessions.failures:
        notes.append(
            f"{sessions.failures} of {connections} connections failed: {sessions.first_failure}"
        )
    return Outcome(
        {
            "connections": connections,
            "connections_open": opened,
            "connection_failures": sessions.failures,
            "rss_per_connection_bytes": (rss_after - rss_before) / opened if opened else None,
            "server_rss_bytes": rss_after,
            "server_cpu_ms_per_handshake": (
                (cpu_after - cpu_before) * 1000 / opened if opened else None
            ),
            "connect_p50_ms": stats.percentile(sessions.connect_ms, 0.50),
            "connect_p99_ms": stats.percentile(sessions.connect_ms, 0.99),
        },
        {"tls": sessions.cipher},
        notes,
    )
