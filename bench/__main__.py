"""Parley side by side with ngIRCd: fan-out, capacity and idle connections over TLS.

    python -m bench                  # everything, 3 interleaved repetitions
    python -m bench --quick          # one repetition of shorter runs
    python -m bench --only idle      # one workload
    python -m bench --smoke          # Parley alone, seconds long (run by the test suite)

Every run starts a fresh server process, and the servers take turns (Parley, ngIRCd, Parley,
ngIRCd, …) so that a busy moment on a shared machine falls on both. The table shows each
figure's median over the repetitions and the ratio Parley/ngIRCd; the JSON file holds every
run. Persistence (stored, acknowledged messages per second) is Parley's alone: IRC servers keep
no history.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import (
    capacity,
    cluster,
    fanout,
    files,
    history,
    idle,
    locked_row,
    persistence,
    proc,
    report,
    room_setup,
    terminal,
    web,
)
from bench.outcome import Outcome
from bench.pool import WorkerPool
from bench.servers import NgircdServer, ParleyServer, Server, ngircd_binary
from bench.worker import CONNECTS_IN_FLIGHT

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_JSON = RESULTS / "results.json"
CACHE = RESULTS / "cache"

FAIRNESS = [
    "ngIRCd cuts a client off once 32 KiB are queued for it (compiled in), Parley once 1 MiB: "
    "a generator too slow to read shows up as 'clients dropped' with ngIRCd first.",
    "ngIRCd listens with a backlog of 10, so connects are paced for both servers "
    f"({CONNECTS_IN_FLIGHT} in flight per generator process).",
    "ngIRCd runs with its flood penalty and per-address limits off (MaxPenaltyTime 0, "
    "MaxConnectionsIP 0); Parley's flood control is on as shipped, and no speaker sends more "
    "than 4 messages/s.",
    "Parley also echoes every room message to its sender (in its server CPU, not in its "
    "deliveries); IRC does not echo. A Parley delivery is a larger JSON frame (see bytes "
    "received per delivery).",
    "An idle IRC connection has registered (001-005, user statistics, MOTD) and joined nothing; "
    "an idle Parley connection has logged in with a nickname, as the product does, which joins "
    "#general and is announced to its members (one by one up to room_announce_limit, 300 as "
    "shipped; past it in a members summary every 2 s). ngIRCd walks its list of all clients "
    "to register one (nickname search, user counts), so its CPU per registration grows with N.",
]


@dataclasses.dataclass(frozen=True)
class Step:
    kind: str
    label: str
    # The workload, given the step's server; None when ``alone`` runs instead.
    run: Callable[[WorkerPool, Server], Outcome] | None
    # Parley alone, with these settings (TOML) and this --database (None: the default SQLite),
    # its database filled by ``prefill`` first.
    parley_only: bool = False
    settings: str = ""
    database: str | None = None
    prefill: Callable[[str | None, Path], None] | None = None
    # A workload that starts (and stops) its own servers: several nodes, PostgreSQL and Redis.
    alone: Callable[[WorkerPool], Outcome] | None = None


@dataclasses.dataclass(frozen=True)
class Sizes:
    fan_out: list[tuple[int, int]]  # (clients, messages/s)
    fan_out_seconds: float
    capacity_clients: int
    capacity_rates: list[int]
    capacity_seconds: float
    idle: list[int]  # connections
    room_setup: list[int]  # members
    persistence_senders: list[int]
    persistence_seconds: float
    history_messages: int
    history_requests: int
    terminal_lines_per_second: int
    terminal_seconds: float
    file_megabytes: int
    locked_row_seconds: float
    cluster_fan_out: cluster.FanOut
    cluster_failover: cluster.Failover
    web_path: list[tuple[int, int]]  # (members, messages/s)
    web_seconds: float


FAN_OUT = [(100, 20), (1000, 20), (1000, 200)]
FULL = Sizes(
    fan_out=FAN_OUT,
    fan_out_seconds=10.0,
    capacity_clients=1000,
    capacity_rates=capacity.doubling(200, 8),
    capacity_seconds=5.0,
    idle=[1000, 5000, 10000],
    room_setup=[1000],
    persistence_senders=[1, 100],
    persistence_seconds=5.0,
    history_messages=1_000_000,
    history_requests=1000,
    terminal_lines_per_second=1000,
    terminal_seconds=10.0,
    file_megabytes=1024,
    locked_row_seconds=20.0,
    cluster_fan_out=cluster.FanOut(clients=100, speakers=10, rate=200, seconds=5.0),
    cluster_failover=cluster.Failover(clients=150),
    web_path=[(300, 20)],
    web_seconds=10.0,
)
QUICK = Sizes(
    fan_out=FAN_OUT,
    fan_out_seconds=4.0,
    capacity_clients=1000,
    capacity_rates=capacity.doubling(200, 6),
    capacity_seconds=3.0,
    idle=[1000],
    room_setup=[1000],
    persistence_senders=[1, 100],
    persistence_seconds=3.0,
    history_messages=100_000,
    history_requests=300,
    terminal_lines_per_second=1000,
    terminal_seconds=5.0,
    file_megabytes=256,
    locked_row_seconds=10.0,
    cluster_fan_out=cluster.FanOut(clients=100, speakers=10, rate=200, seconds=3.0),
    cluster_failover=cluster.Failover(clients=90),
    web_path=[(300, 20)],
    web_seconds=5.0,
)
SMOKE = Sizes(
    fan_out=[(10, 20)],
    fan_out_seconds=1.0,
    capacity_clients=10,
    capacity_rates=[20],
    capacity_seconds=1.0,
    idle=[20],
    room_setup=[10],
    persistence_senders=[1],
    persistence_seconds=1.0,
    history_messages=1_000,
    history_requests=20,
    terminal_lines_per_second=100,
    terminal_seconds=1.0,
    file_megabytes=4,
    locked_row_seconds=2.0,
    cluster_fan_out=cluster.FanOut(clients=9, speakers=2, rate=20, seconds=1.0),
    cluster_failover=cluster.Failover(clients=9),
    web_path=[(10, 10)],
    web_seconds=1.0,
)


def plan(args: argparse.Namespace) -> list[Step]:
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.idle:
        sizes = dataclasses.replace(sizes, idle=args.idle)
    if args.fan_out:
        sizes = dataclasses.replace(sizes, fan_out=args.fan_out)
    steps: list[Step] = []
    if args.only in (None, "fanout"):
        for clients, rate in sizes.fan_out:
            load = fanout.Load(clients, rate, sizes.fan_out_seconds)
            steps.append(Step("fan-out", load.label, partial(fanout.run, load=load)))
    if args.only in (None, "capacity"):
        run_capacity = partial(
            capacity.run,
            clients=sizes.capacity_clients,
            rates=sizes.capacity_rates,
            seconds=sizes.capacity_seconds,
        )
        steps.append(Step("capacity", f"capacity C={sizes.capacity_clients}", run_capacity))
    if args.only in (None, "idle"):
        for count in sizes.idle:
            steps.append(Step("idle", f"idle N={count}", partial(idle.run, connections=count)))
    if args.only in (None, "setup"):
        for members in sizes.room_setup:
            filling = room_setup.Load(members)
            steps.append(Step("room-setup", filling.label, partial(room_setup.run, load=filling)))
    if args.only in (None, "persistence"):
        backends = ["sqlite"] if args.smoke or args.no_postgres else ["sqlite", "postgresql"]
        for backend in backends:
            for senders in sizes.persistence_senders:
                stored = persistence.Load(senders, sizes.persistence_seconds, backend)
                steps.append(
                    Step(
                        "persistence",
                        stored.label,
                        partial(persistence.run, load=stored),
                        parley_only=True,
                        settings=persistence.SERVER_SETTINGS,
                        database="postgresql" if backend == "postgresql" else None,
                    )
                )
    if args.only in (None, "history"):
        backends = ["sqlite"] if args.smoke or args.no_postgres else ["sqlite", "postgresql"]
        for backend in backends:
            reads = history.Load(sizes.history_messages, sizes.history_requests, backend)
            steps.append(
                Step(
                    "history",
                    reads.label,
                    partial(history.run, load=reads),
                    parley_only=True,
                    settings=persistence.SERVER_SETTINGS,
                    database="postgresql" if backend == "postgresql" else None,
                    prefill=history.prefill(reads.messages),
                )
            )
    if args.only in (None, "terminal"):
        typing = terminal.Load(sizes.terminal_lines_per_second, sizes.terminal_seconds)
        steps.append(
            Step(
                "terminal",
                typing.label,
                partial(terminal.run, root=args.parley_root.resolve(), load=typing),
                parley_only=True,
                settings=persistence.SERVER_SETTINGS,
            )
        )
    if args.only in (None, "locked-row") and not (args.smoke or args.no_postgres):
        holding = locked_row.Load(sizes.locked_row_seconds)
        steps.append(
            Step(
                "locked-row",
                holding.label,
                partial(locked_row.run, load=holding),
                parley_only=True,
                settings=locked_row.SERVER_SETTINGS,
                database="postgresql",
            )
        )
    # Not in the plain smoke run (it needs PostgreSQL and Redis): `--smoke --only cluster`.
    if (args.only == "cluster" or (args.only is None and not args.smoke)) and not args.no_postgres:
        root = args.parley_root.resolve()
        spread = sizes.cluster_fan_out
        steps.append(
            Step(
                "cluster",
                spread.label,
                None,
                parley_only=True,
                alone=partial(cluster.run_fanout, load=spread, root=root),
            )
        )
        failing = sizes.cluster_failover
        steps.append(
            Step(
                "cluster-failover",
                failing.label,
                None,
                parley_only=True,
                alone=partial(cluster.run_failover, load=failing, root=root),
            )
        )
    if args.only in (None, "files"):
        moving = files.Load(sizes.file_megabytes)
        steps.append(
            Step(
                "files",
                moving.label,
                partial(files.run, load=moving),
                parley_only=True,
                settings=files.SERVER_SETTINGS,
            )
        )
    if args.only in (None, "web"):
        for members, rate in sizes.web_path:
            # The two transports alternate, each on a fresh server with its web port on.
            for transport in web.TRANSPORTS:
                path = web.Load(members, rate, sizes.web_seconds, transport)
                steps.append(
                    Step(
                        "web-path",
                        path.label,
                        partial(web.run, load=path),
                        parley_only=True,
                        settings=web.SERVER_SETTINGS,
                    )
                )
    return steps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Results also go to a JSON file; see bench/README.md for what each figure means.",
    )
    parser.add_argument("--quick", action="store_true", help="one repetition of shorter runs")
    parser.add_argument("--smoke", action="store_true", help="Parley alone, tiny, seconds long")
    parser.add_argument(
        "--only",
        choices=[
            "fanout",
            "capacity",
            "idle",
            "setup",
            "persistence",
            "history",
            "terminal",
            "files",
            "locked-row",
            "cluster",
            "web",
        ],
        help="one workload",
    )
    parser.add_argument(
        "--repeat", type=int, help="interleaved repetitions (default 3; 1 with --quick, --smoke)"
    )
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--idle",
        type=int,
        action="append",
        metavar="N",
        help="idle workload with N connections instead of the usual sizes (repeatable)",
    )
    parser.add_argument(
        "--fan-out",
        type=_fan_out_size,
        action="append",
        metavar="C:R",
        help="fan-out with C clients at R messages/s instead of the usual sizes (repeatable)",
    )
    parser.add_argument(
        "--parley-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a server setting (TOML value) for every Parley run, e.g. sqlite_synchronous='normal'",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})"
    )
    parser.add_argument("--no-ngircd", action="store_true", help="measure Parley alone")
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help="persistence on SQLite only (PostgreSQL: PARLEY_BENCH_POSTGRES_URL, default local)",
    )
    parser.add_argument(
        "--parley-root",
        type=Path,
        default=HERE.parent,
        help="the Parley checkout to run, its src/ first on PYTHONPATH (to compare commits)",
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick or args.smoke else 3
    if args.repeat < 1 or args.workers < 1:
        parser.error("--repeat and --workers must be at least 1")
    if args.idle and min(args.idle) < 1:
        parser.error("--idle must be at least 1 connection")
    if not (args.parley_root / "src" / "parley").is_dir():
        parser.error(f"{args.parley_root} is not a Parley checkout (no src/parley)")
    return args


def parley_settings(step: Step, args: argparse.Namespace) -> str:
    """The settings file of a Parley run: the workload's, then each ``--parley-setting``."""
    return step.settings + "".join(f"\n{line}\n" for line in args.parley_setting)


def _fan_out_size(text: str) -> tuple[int, int]:
    clients, _, rate = text.partition(":")
    try:
        size = int(clients), int(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected CLIENTS:RATE, e.g. 1000:200"
        ) from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: clients and rate must be at least 1")
    return size


def _command_output(command: list[str], env: dict[str, str] | None = None) -> str:
    """The first line a short command prints when it succeeds, else "" (for the record only)."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=10, check=False, env=env
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = done.stdout.strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else ""


def _meta(args: argparse.Namespace, ngircd: str | None, servers: list[str]) -> dict[str, Any]:
    root = args.parley_root.resolve()
    commit = _command_output(["git", "-C", str(root), "describe", "--always", "--dirty"])
    return {
        "servers": servers,
        "repetitions": args.repeat,
        "quick": args.quick,
        "smoke": args.smoke,
        "only": args.only,
        "workers": args.workers,
        "parley_settings": args.parley_setting,
        "parley_root": str(root),
        "parley_commit": commit,
        "parley_package": _command_output(
            [sys.executable, "-c", "import parley; print(parley.__file__)"],
            env={**os.environ, "PYTHONPATH": str(root / "src")},
        ),
        "ngircd": _command_output([ngircd, "--version"]) if ngircd else None,
        "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proc.raise_open_file_limit()
    root = args.parley_root.resolve()
    factories: list[tuple[str, Callable[[Step], Server]]] = [
        (
            "Parley",
            lambda step: ParleyServer(
                root, parley_settings(step, args), step.database, step.prefill
            ),
        )
    ]
    ngircd = None
    if not (args.smoke or args.no_ngircd):
        ngircd = ngircd_binary()
        if ngircd is None:
            print(
                "ngIRCd is not installed: run `make bench` (it installs it with apt-get), "
                "or `apt-get install ngircd`, or pass --no-ngircd.",
                file=sys.stderr,
            )
            return 2
        binary = ngircd
        factories.append(("ngIRCd", lambda step: NgircdServer(binary, CACHE)))
    names = [name for name, _ in factories]
    meta = _meta(args, ngircd, names)
    steps = plan(args)
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    pool = WorkerPool(args.workers)
    try:
        for repetition in range(args.repeat):
            for step in steps:
                for name, make_server in factories[:1] if step.parley_only else factories:
                    runs.append(_run_one(pool, step, name, make_server, repetition, args.repeat))
    except KeyboardInterrupt:
        print("Interrupted: the table and the JSON hold the runs finished so far.", file=sys.stderr)
    finally:
        pool.close()
    wall = time.monotonic() - started
    meta["wall_seconds"] = wall
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    # Only the servers that ran something get a column (--only web: Parley's alone).
    shown = report.servers_that_ran(runs, names)
    meta["fairness_notes"] = FAIRNESS if len(shown) > 1 else []
    summary = report.medians(runs)
    # The file first: a closed stdout must not cost the results.
    report.write_json(args.json, meta, runs, summary)
    print()
    print(report.table(summary, shown))
    print()
    ratio = f"; ratios are {shown[0]}/{shown[1]}" if len(shown) == 2 else ""
    print(f"Medians of {args.repeat} interleaved repetition(s){ratio}. Wall time {wall:.0f} s.")
    lines = report.web_ratios(summary) + report.notes(runs) + (FAIRNESS if len(shown) > 1 else [])
    if lines:
        print()
        print("Notes:")
        print("\n".join(f"  {line}" for line in lines))
    print(f"\nResults: {args.json}")
    return 1 if any(run.get("error") for run in runs) else 0


def _run_one(
    pool: WorkerPool,
    step: Step,
    name: str,
    make_server: Callable[[Step], Server],
    repetition: int,
    repeat: int,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "workload": step.label,
        "kind": step.kind,
        "server": name,
        "repetition": repetition,
        "figures": {},
        "details": {},
        "notes": [],
        "error": None,
    }
    began = time.monotonic()
    try:
        if step.alone is not None:
            outcome, tail = step.alone(pool), ""
        else:
            assert step.run is not None, "a step has a workload"
            with make_server(step) as server:
                outcome = step.run(pool, server)
                tail = server.log_tail()
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    else:
        record.update(figures=outcome.figures, details=outcome.details, notes=outcome.notes)
        if outcome.notes:
            record["details"]["server_log_tail"] = tail
    record["seconds"] = time.monotonic() - began
    status = f"FAILED: {record['error']}" if record["error"] else "done"
    print(
        f"[{repetition + 1}/{repeat}] {step.label:<22} {name:<7} {record['seconds']:6.1f} s",
        status,
        file=sys.stderr,
        flush=True,
    )
    return record


if __name__ == "__main__":
    sys.exit(main())
