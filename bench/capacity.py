"""Capacity: fan-out in a room of 1,000 with the rate doubled step by step (200, 400, 800, …
messages/s, each speaker still at most 4/s) in short bursts, until p99 latency passes 100 ms or
a delivery is lost (or a client is dropped, or a send refused). The peak is the deliveries/s of
the last step that passed.

On a small machine the load generator may give out before the server does: each step records
the CPU of the server and of every generator process, and the run names what was saturated at
the step that failed.
"""

from __future__ import annotations

import os
from typing import Any

from bench import fanout
from bench.outcome import Figure, Outcome
from bench.pool import WorkerPool
from bench.servers import Server

P99_LIMIT_MS = 100.0
SATURATED_SHARE = 0.9  # of one core: a server or a generator process runs one event loop
# Lower for the whole machine: with three busy processes on two cores, waiting to be scheduled
# shows in latency before every core is fully used.
MACHINE_SATURATED_SHARE = 0.85


def doubling(first: int, steps: int) -> list[int]:
    return [first * 2**number for number in range(steps)]


def verdict(figures: dict[str, Figure]) -> str:
    """Why a step failed, or "" when it passed."""
    p99 = figures["latency_p99_ms"]
    if p99 is None:
        return "no latency samples"
    if p99 > P99_LIMIT_MS:
        return f"p99 {p99:.0f} ms"
    for key, what in (
        ("lost_deliveries", "deliveries lost"),
        ("clients_dropped", "clients dropped"),
        ("rate_limited_refusals", "sends refused"),
    ):
        if figures[key]:
            return f"{figures[key]} {what}"
    return ""


def saturation(figures: dict[str, Figure]) -> str:
    """Where the CPU went during a step, and which of server, generator or machine ran out."""

    def share(key: str) -> float:
        value = figures[key]
        return float(value) if value is not None else 0.0

    server, generator = share("server_cores_busy"), share("generator_cores_busy")
    busiest, other = share("generator_busiest_process_share"), share("other_cores_busy")
    cores = os.cpu_count() or 1
    machine = server + generator + other
    limits = []
    if server >= SATURATED_SHARE:
        limits.append("the server (one core)")
    if busiest >= SATURATED_SHARE:
        limits.append("a generator process (one core)")
    if machine >= MACHINE_SATURATED_SHARE * cores:
        limits.append("the machine")
    verdict = ("limit: " + " and ".join(limits)) if limits else "no CPU limit reached"
    return (
        f"server {server:.2f} + generator {generator:.2f} (busiest process {busiest:.0%}) + "
        f"other work {other:.2f} = {machine:.2f} of {cores} cores; {verdict}"
    )


def run(
    pool: WorkerPool, server: Server, clients: int, rates: list[int], seconds: float
) -> Outcome:
    steps: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        shares, cipher = fanout.join_room(pool, server, clients)
        for rate in rates:
            outcome = fanout.burst(pool, server, shares, fanout.Load(clients, rate, seconds))
            failed = verdict(outcome.figures)
            steps.append(
                {
                    **outcome.figures,
                    "failed": failed,
                    "saturation": saturation(outcome.figures),
                }
            )
            notes.extend(outcome.notes)
            if failed:
                break
    finally:
        pool.ask("close")
    passed = [step for step in steps if not step["failed"]]
    failing = next((step for step in steps if step["failed"]), None)
    peak: dict[str, Any] = passed[-1] if passed else {}
    figures: dict[str, Figure] = {
        "clients": clients,
        "peak_deliveries_per_second": peak.get("deliveries_per_second"),
        "peak_rate": peak.get("rate"),
        "peak_latency_p99_ms": peak.get("latency_p99_ms"),
        "server_cores_busy_at_peak": peak.get("server_cores_busy"),
        "generator_cores_busy_at_peak": peak.get("generator_cores_busy"),
        "generator_busiest_process_share_at_peak": peak.get("generator_busiest_process_share"),
        "first_failing_rate": failing["rate"] if failing else None,
        "server_cores_busy_at_failure": failing["server_cores_busy"] if failing else None,
        "generator_busiest_process_share_at_failure": (
            failing["generator_busiest_process_share"] if failing else None
        ),
    }
    last = failing or (steps[-1] if steps else None)
    details: dict[str, Any] = {"tls": cipher, "steps": steps}
    if last is not None:
        details["stopped"] = last["failed"] or "no step failed"
        details["saturation_at_last_step"] = last["saturation"]
    return Outcome(figures, details, notes)
