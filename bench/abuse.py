"""A normal user's ping while others abuse the server: password guessing and room listings.

    python -m bench.abuse                         # this checkout, 3 repetitions
    python -m bench.abuse --parley-root ../old    # another checkout, for before/after

A fresh server (as shipped, SQLite) per load. One client logs in and sends ``ping`` every
100 ms for DURATION_SECONDS, timing each round trip over TLS, while a separate process runs
one load against the same server:

- **idle**: nothing (the baseline);
- **guesses**: waves of 200 connections at once from 127.0.0.2, each a ``nick`` with a wrong
  password for one account, the next wave as soon as the last has its answers;
- **rooms**: 80,000 rooms (written to the database before the server starts), and 10 clients
  each asking ``rooms`` again as soon as it has its answer (the first page, as a client shows
  it: ``rooms`` alone).

Figures per load: ping p50/p99 in ms (the median over the repetitions), pings lost, and how much
load was served (wrong guesses answered, ``rooms`` answers). Nothing here is a test: the
target (p99 under 20 ms) is read off the table.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing
import os
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import stats
from bench.servers import ParleyServer

ROOT = Path(__file__).resolve().parent.parent
DURATION_SECONDS = 15.0
# Ten a second: as often as flood control (as shipped) lets one connection ask.
PING_INTERVAL_SECONDS = 0.1
GUESSES_AT_ONCE = 200
ROOMS = 80_000
ROOM_LISTERS = 10
LOADS = ("idle", "guesses", "rooms")

# Written in the checkout's own code (its PYTHONPATH): its schema, then rooms in one batch.
_PREFILL = """
import asyncio, sqlite3, sys
from pathlib import Path
from parley.storage.sqlite import SqliteStorage

async def make(path):
    storage = await SqliteStorage.open(path)
    await storage.close()

path = Path(sys.argv[1]) / "parley.sqlite3"
path.parent.mkdir(parents=True, exist_ok=True)
asyncio.run(make(path))
db = sqlite3.connect(path)
db.executemany(
    "INSERT INTO rooms (key, name, topic, topic_by, topic_ms, created_by, created_ms) "
    "VALUES (?, ?, ?, '', 0, '', 0)",
    [(f"#room{n:06}", f"#Room{n:06}", f"topic of room {n}") for n in range(int(sys.argv[2]))],
)
db.commit()
db.close()
"""


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _login(
    port: int, nick: str, password: str = "", source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=_context(), local_addr=(source, 0), limit=8 * 1024 * 1024
    )
    nick_frame: dict[str, object] = {"type": "nick", "id": 2, "nick": nick}
    if password:
        nick_frame["password"] = password
    writer.write(b'{"type":"hello","id":1,"versions":[1]}\n' + json.dumps(nick_frame).encode())
    writer.write(b"\n")
    while True:
        line = await reader.readline()
        if not line or b'"id":2' in line:
            return reader, writer, line


async def _guesses(port: int, stop_at: float) -> int:
    answered = 0

    async def one(n: int) -> None:
        nonlocal answered
        try:
            _, writer, line = await _login(port, "target", f"wrong guess {n}", "127.0.0.2")
        except OSError:
            return
        answered += bool(line)
        writer.close()

    wave = 0
    while time.monotonic() < stop_at:
        await asyncio.gather(*(one(wave * GUESSES_AT_ONCE + n) for n in range(GUESSES_AT_ONCE)))
        wave += 1
    return answered


async def _rooms(port: int, stop_at: float) -> int:
    answered = 0

    async def lister(n: int) -> None:
        nonlocal answered
        reader, writer, _ = await _login(port, f"lister{n}", source="127.0.0.3")
        request = 10
        while time.monotonic() < stop_at:
            request += 1
            writer.write(b'{"type":"rooms","id":%d}\n' % request)
            marker = b'"id":%d' % request
            while True:
                line = await reader.readline()
                if not line:
                    return  # cut off (a reply over the slow-reader limit)
                if marker in line:
                    break
            answered += 1
        writer.close()

    await asyncio.gather(*(lister(n) for n in range(ROOM_LISTERS)))
    return answered


def _load_process(kind: str, port: int, stop_at: float, result: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    work = _guesses if kind == "guesses" else _rooms
    result.put(asyncio.run(work(port, stop_at)))


async def _pings(port: int, stop_at: float) -> tuple[list[int], int]:
    reader, writer, _ = await _login(port, "normal")
    latencies = array.array("q")
    lost = 0
    request = 10
    while time.monotonic() < stop_at:
        request += 1
        sent = time.monotonic_ns()
        writer.write(b'{"type":"ping","id":%d}\n' % request)
        marker = b'{"type":"pong","id":%d}' % request
        try:
            while not (await asyncio.wait_for(reader.readline(), 5.0)).startswith(marker):
                pass
        except TimeoutError:
            lost += 1
            continue
        latencies.append(time.monotonic_ns() - sent)
        await asyncio.sleep(PING_INTERVAL_SECONDS)
    writer.close()
    return sorted(latencies), lost


def run_once(root: Path, load: str) -> dict[str, float | int | None]:
    settings = ""
    server = ParleyServer(root, settings)
    if load == "rooms":

        def prefill(database: str | None, data_dir: Path) -> None:
            env = {**os.environ, "PYTHONPATH": str(root / "src")}
            subprocess.run(
                [sys.executable, "-c", _PREFILL, str(data_dir), str(ROOMS)], env=env, check=True
            )

        server.prefill = prefill
    with server:
        if load == "guesses":
            asyncio.run(_register(server.port))
        stop_at = time.monotonic() + DURATION_SECONDS
        result: multiprocessing.Queue[int] = multiprocessing.get_context("spawn").Queue()
        loader = None
        if load != "idle":
            loader = multiprocessing.get_context("spawn").Process(
                target=_load_process, args=(load, server.port, stop_at, result)
            )
            loader.start()
            time.sleep(0.5)  # the load under way before the first ping
        latencies, lost = asyncio.run(_pings(server.port, stop_at))
        served = 0
        if loader is not None:
            served = result.get(timeout=120)
            loader.join(timeout=30)
    p50, p99 = stats.percentile(latencies, 0.5), stats.percentile(latencies, 0.99)
    return {
        "ping_p50_ms": p50 / 1e6 if p50 is not None else None,
        "ping_p99_ms": p99 / 1e6 if p99 is not None else None,
        "pings": len(latencies),
        "pings_lost": lost,
        "load_answers": served,
    }


async def _register(port: int) -> None:
    reader, writer, _ = await _login(port, "target")
    writer.write(b'{"type":"register","id":3,"password":"the real passphrase"}\n')
    while b'"id":3' not in await reader.readline():
        pass
    writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parley-root", type=Path, default=ROOT)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=LOADS)
    args = parser.parse_args()
    loads = [args.only] if args.only else list(LOADS)
    print(f"{'load':<8}  {'ping p50 ms':>11}  {'ping p99 ms':>11}  {'lost':>4}  load answers")
    for load in loads:
        runs = [run_once(args.parley_root.resolve(), load) for _ in range(args.repeat)]

        def median(name: str, runs: list[dict[str, float | int | None]] = runs) -> float:
            values = [float(value) for run in runs if (value := run[name]) is not None]
            return statistics.median(values) if values else float("nan")

        print(
            f"{load:<8}  {median('ping_p50_ms'):>11.2f}  {median('ping_p99_ms'):>11.2f}  "
            f"{median('pings_lost'):>4.0f}  {median('load_answers'):.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
