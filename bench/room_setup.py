"""Room set-up: C users connect, log in and join one room at once; how long until it is calm.

Parley's clients log in with a nickname, which joins them to ``#general``; IRC clients register
and JOIN ``#bench``. Every member is told of every later join, so filling a room of C costs
about C²/2 announcements on both servers; what differs is how each server sends them.

- set-up time: from the first connect to the moment no client has received anything for half
  a second (waited for at most two minutes), so it includes the last announcement delivered
  (in a Parley room past ``room_announce_limit``, the last ``members`` summary, which comes up
  to ``room_summary_seconds`` after the last join);
- all in: from the first connect until every member is in the room (its join answered);
- server CPU per member: the server's CPU over that span, over C;
- bytes received per member: everything the server sent during set-up, over C (member lists,
  join announcements, history);
- connect latency: per client, from its SYN to being in the room.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from bench import stats
from bench.outcome import Outcome
from bench.pool import WorkerPool, open_sessions
from bench.servers import Server

QUIET_SECONDS = 0.5
QUIET_TIMEOUT_SECONDS = 120.0


@dataclasses.dataclass(frozen=True)
class Load:
    members: int

    @property
    def label(self) -> str:
        return f"room-setup C={self.members}"


def run(pool: WorkerPool, server: Server, load: Load) -> Outcome:
    cpu_before = server.cpu_seconds()
    cuts_before = server.slow_reader_cuts()
    started = time.monotonic()
    try:
        sessions = open_sessions(pool, server, load.members, room=True)
        all_in = time.monotonic() - started
        quiet = pool.ask("quiet", {"seconds": QUIET_SECONDS, "timeout": QUIET_TIMEOUT_SECONDS})
        # The quiet wait ends QUIET_SECONDS after the last byte arrived.
        seconds = time.monotonic() - started - QUIET_SECONDS
        cpu = server.cpu_seconds() - cpu_before
        collected = pool.ask("collect")
    finally:
        pool.ask("close")
    joined = len(sessions.connect_ms)
    notes = []
    if sessions.failures:
        notes.append(
            f"{sessions.failures} of {load.members} members could not join: "
            f"{sessions.first_failure}"
        )
    if not all(answer["quiet"] for answer in quiet):
        notes.append(f"the room was not quiet {QUIET_TIMEOUT_SECONDS:.0f} s after the last join")
    dropped = sum(answer["dropped"] for answer in collected)
    figures: dict[str, Any] = {
        "members": load.members,
        "members_joined": joined,
        "setup_seconds": seconds,
        "all_in_seconds": all_in,
        "server_cpu_ms_per_member": cpu * 1000 / joined if joined else None,
        "received_bytes_per_member": (
            sum(answer["received_bytes"] for answer in collected) / joined if joined else None
        ),
        "connect_p50_ms": stats.percentile(sessions.connect_ms, 0.50),
        "connect_p99_ms": stats.percentile(sessions.connect_ms, 0.99),
        "clients_dropped": dropped,
        "slow_reader_cuts": server.slow_reader_cuts() - cuts_before,
    }
    return Outcome(figures, {"tls": sessions.cipher}, notes)
