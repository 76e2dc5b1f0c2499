"""Parley side by side with ngIRCd: fan-out, capacity and idle connections over TLS.

    python -m bench                  # everything, 3 interleaved repetitions (about 20 minutes)
    python -m bench --quick          # one repetition, shorter runs
    python -m bench --only idle      # one workload
    python -m bench --smoke          # Parley alone, seconds long (run by the test suite)

Each run starts a fresh server, and runs alternate between the servers (Parley, ngIRCd, Parley,
ngIRCd, …) so that a noisy moment on a shared machine hits both. The table shows the median of
the repetitions and the ratio Parley ÷ ngIRCd; the JSON file holds every run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.servers import NgircdServer, ParleyServer, Server, ngircd_available, raise_fd_limit
from bench.workloads import FanOut, WorkerPool, capacity, fan_out, idle

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "results.json"


def plan(args: argparse.Namespace) -> list[tuple[str, str, Callable[..., dict[str, Any]]]]:
    """(workload kind, label, function(pool, server)) for every workload in this run."""
    seconds = 1.0 if args.smoke else 4.0 if args.quick else 10.0
    if args.smoke:
        loads = [FanOut(10, 20, seconds)]
        capacity_clients, rates, idle_counts = 10, [20, 40], [20]
    else:
        loads = [FanOut(100, 20, seconds), FanOut(1000, 20, seconds), FanOut(1000, 200, seconds)]
        capacity_clients = 1000
        rates = [200, 400, 800, 1600, 3200] if not args.quick else [200, 800, 3200]
        idle_counts = [1000] if args.quick else [1000, 5000, 10000]
    steps: list[tuple[str, str, Callable[..., dict[str, Any]]]] = []
    if args.only in (None, "fanout"):
        for load in loads:
            steps.append(
                ("fan-out", load.label, lambda pool, server, load=load: fan_out(pool, server, load))
            )
    if args.only in (None, "capacity"):
        steps.append(
            (
                "capacity",
                f"capacity C={capacity_clients}",
                lambda pool, server: capacity(
                    pool, server, capacity_clients, rates, min(seconds, 5.0)
                ),
            )
        )
    if args.only in (None, "idle"):
        for count in idle_counts:
            steps.append(
                ("idle", f"idle N={count}", lambda pool, server, n=count: idle(pool, server, n))
            )
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, shorter runs")
    parser.add_argument("--smoke", action="store_true", help="Parley only, tiny, seconds long")
    parser.add_argument("--only", choices=["fanout", "capacity", "idle"])
    parser.add_argument("--repeat", type=int, help="interleaved repetitions (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where results go")
    parser.add_argument("--no-ngircd", action="store_true", help="measure Parley alone")
    parser.add_argument(
        "--parley-root",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the Parley checkout to run (its src/ goes on PYTHONPATH), to compare commits",
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick or args.smoke else 3)
    raise_fd_limit()

    servers: list[Callable[[], Server]] = [lambda: ParleyServer(args.parley_root.resolve())]
    names = ["Parley"]
    if not (args.smoke or args.no_ngircd):
        if not ngircd_available():
            print("ngIRCd is not installed (apt-get install ngircd), or pass --no-ngircd.")
            return 2
        servers.append(NgircdServer)
        names.append("ngIRCd")

    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    pool = WorkerPool(1 if args.smoke else args.workers)
    try:
        for repetition in range(repeat):
            for kind, label, workload in plan(args):
                for make_server in servers:
                    with make_server() as server:
                        figures = workload(pool, server)
                    runs.append(
                        {
                            "workload": label,
                            "kind": kind,
                            "server": server.name,
                            "repetition": repetition,
                            "figures": figures,
                        }
                    )
                    print(f"  {label:<28} {server.name:<7} done", file=sys.stderr, flush=True)
    finally:
        pool.close()

    summary = report.medians(runs)
    print()
    print(report.table(summary, names))
    print()
    print(
        f"Medians of {repeat} interleaved repetition(s); {time.monotonic() - started:.0f} s. "
        f"Ratios are Parley ÷ ngIRCd: below 1 is less CPU, memory or latency for Parley."
    )
    meta = {
        "repetitions": repeat,
        "workers": pool_size(args),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "parley_root": str(args.parley_root),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report.write_json(args.json, meta, runs, summary)
    print(f"Results: {args.json}")
    return 0


def pool_size(args: argparse.Namespace) -> int:
    return 1 if args.smoke else int(args.workers)


if __name__ == "__main__":
    sys.exit(main())
