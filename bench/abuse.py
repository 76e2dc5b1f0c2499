"""A normal user's ``ping`` while the server is abused, one abuse at a time, on one server.

    python -m bench.abuse                            # this checkout
    python -m bench.abuse --parley-root ../old-copy  # another checkout (its src/ runs)
    python -m bench.abuse --only tokens --rounds 3

One Parley server (settings as shipped, files on any free port) is started with R rooms made
beforehand through its storage layer (80,000 by default: the protocol's own room creation would
take minutes and may be limited). Five normal users, each on an address of its own, in a
process of their own (so that the load's own work in this one does not delay them), send
``ping`` within flood control (8 a second each, one in flight) for the whole run. Each phase
reports the round trips of the pings sent while it ran (after its set-up), p50/p99/max:

- quiet: nothing else (the reference).
- guesses: 200 connections from one other address each send a ``nick`` with a wrong password
  for one account, all at once; the phase lasts until all are answered (at most 60 s).
- handshakes: 6,000 TCP connections from one address to the file port, never starting their
  TLS handshake, held 5 s. Also the server's resident memory before, at its peak and 5 s after.
- tokens: 200 guests (each on an address of its own) in a room where a file was shared take 60
  download tokens each (12,000 outstanding; not measured), then one each every 0.5 s for 10 s,
  never using them. Also the round trips of those measured ``get`` requests, by answer
  (a token, or ``too-many-tokens``): what one ``get`` costs with many tokens outstanding.
- rooms: 10 clients repeat ``rooms`` for 10 s; a client cut off (for flooding, or a reply too
  large) reconnects at once, and again at once whenever it is refused.

Every phase is bounded in count and time; the whole run takes about 2 minutes plus the room
prefill (about 40 s). Results go to bench/results/abuse.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import proc
from bench.servers import ParleyServer
from bench.stats import percentile

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "abuse.json"
PHASES = ("quiet", "guesses", "handshakes", "tokens", "rooms")

# Normal users, each on an address of its own, each pinging within flood control (10/s).
NORMAL_USERS = 5
PINGS_PER_SECOND = 8.0
GUESSER = "127.0.0.3"
HANDSHAKER = "127.0.0.5"
# Frames can be large (a `rooms` reply of 80,000 rooms is several MiB).
READ_LIMIT_BYTES = 64 * 1024 * 1024
ANSWER_SECONDS = 60.0


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Line:
    """One Parley connection speaking JSON lines; replies are matched by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._ids = itertools.count(1)

    @classmethod
    async def open(cls, port: int, source: str) -> Line:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=_context(), local_addr=(source, 0), limit=READ_LIMIT_BYTES
            ),
            ANSWER_SECONDS,
        )
        return cls(reader, writer)

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its reply (or the `closing` that came instead)."""
        request_id = next(self._ids)
        self.writer.write(json.dumps({"type": kind, "id": request_id, **fields}).encode() + b"\n")
        while True:
            line = await asyncio.wait_for(self.reader.readline(), ANSWER_SECONDS)
            if not line:
                raise ConnectionResetError("closed")
            frame: dict[str, Any] = json.loads(line)
            if frame.get("id") == request_id or frame.get("type") == "closing":
                return frame

    async def login(self, nick: str, **credentials: str) -> dict[str, Any]:
        await self.request("hello", versions=[1])
        return await self.request("nick", nick=nick, **credentials)

    def close(self) -> None:
        self.writer.close()


async def _logged_in(port: int, source: str, nick: str) -> Line:
    line = await Line.open(port, source)
    reply = await line.login(nick)
    if reply["type"] != "ok":
        raise RuntimeError(f"{nick} could not log in: {reply}")
    return line


class Pinger:
    """A normal user: one ping in flight, PINGS_PER_SECOND at most. Each sample is (when it
    was sent on the system-wide monotonic clock, round trip in ms or None when refused).
    """

    def __init__(self, line: Line) -> None:
        self.line = line
        self.samples: list[tuple[float, float | None]] = []

    async def run(self, stop: Callable[[], bool]) -> None:
        gap = 1.0 / PINGS_PER_SECOND
        while not stop():
            sent = time.monotonic()
            reply = await self.line.request("ping")
            elapsed = time.monotonic() - sent
            if reply["type"] == "closing":
                raise RuntimeError(f"a normal user was disconnected: {reply}")
            self.samples.append((sent, elapsed * 1000 if reply["type"] == "pong" else None))
            await asyncio.sleep(max(0.0, gap - elapsed))


def _ping_process(port: int, pipe: Connection) -> None:
    """The normal users, in a process of their own (the load's own work must not delay their
    pings): ping until told to stop through ``pipe``, then send the samples back through it.
    """

    async def run() -> list[tuple[float, float | None]]:
        pingers = [
            Pinger(await _logged_in(port, f"127.0.0.{20 + n}", f"Normal{n}"))
            for n in range(NORMAL_USERS)
        ]
        pipe.send("ready")
        await asyncio.gather(*(pinger.run(pipe.poll) for pinger in pingers))
        return sorted(itertools.chain.from_iterable(pinger.samples for pinger in pingers))

    pipe.send(asyncio.run(run()))


class Pings:
    """The ping process of one round, and the rounds' windows of time to report on."""

    def __init__(self, port: int) -> None:
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_ping_process, args=(port, child))
        self._process.start()
        if not self._pipe.poll(ANSWER_SECONDS) or self._pipe.recv() != "ready":
            raise RuntimeError("the normal users did not log in")

    def stop(self) -> list[tuple[float, float | None]]:
        self._pipe.send("stop")
        samples: list[tuple[float, float | None]] = self._pipe.recv()
        self._process.join(ANSWER_SECONDS)
        return samples


def _window(samples: list[tuple[float, float | None]], start: float, end: float) -> dict[str, Any]:
    """The figures of the pings sent between ``start`` and ``end``."""
    inside = [rtt for sent, rtt in samples if start <= sent < end]
    times = sorted(rtt for rtt in inside if rtt is not None)
    refused = len(inside) - len(times)
    return {
        **({"refused_pings": refused} if refused else {}),
        "pings": len(times),
        "ping_p50_ms": percentile(times, 0.50),
        "ping_p99_ms": percentile(times, 0.99),
        "ping_max_ms": times[-1] if times else None,
    }


Begin = Callable[[], None]
Load = Callable[["ParleyServer", int, Begin], Awaitable[dict[str, Any]]]


async def _measured(
    load: Callable[[Begin], Awaitable[dict[str, Any]]],
) -> tuple[dict[str, Any], float, float]:
    """Run ``load``; its figures, and the window of time from when it called its ``begin``
    argument (its set-up done) to its end.
    """
    began = time.monotonic()

    def begin() -> None:
        nonlocal began
        began = time.monotonic()

    figures = await load(begin)
    return figures, began, time.monotonic()


# --- the phases ------------------------------------------------------------------------------


async def quiet(server: ParleyServer, files_port: int, begin: Begin) -> dict[str, Any]:
    begin()
    await asyncio.sleep(5.0)
    return {}


async def guesses(
    server: ParleyServer, files_port: int, begin: Begin, count: int = 200
) -> dict[str, Any]:
    owner = await _logged_in(server.port, "127.0.0.4", "Victim")
    await owner.request("register", password="the right passphrase")
    owner.close()
    lines = await asyncio.gather(*(Line.open(server.port, GUESSER) for _ in range(count)))
    for line in lines:
        await line.request("hello", versions=[1])
    begin()
    started = time.perf_counter()

    async def guess(line: Line, number: int) -> str:
        try:
            reply = await line.request("nick", nick="Victim", password=f"wrong {number}")
        except (OSError, TimeoutError):
            return "cut"
        return str(reply.get("code") or reply["type"])

    answers = await asyncio.gather(*(guess(line, n) for n, line in enumerate(lines)))
    elapsed = time.perf_counter() - started
    for line in lines:
        line.close()
    return {"guesses": count, "answered_seconds": round(elapsed, 2), "answers": _tally(answers)}


async def handshakes(
    server: ParleyServer, files_port: int, begin: Begin, count: int = 6000
) -> dict[str, Any]:
    begin()
    loop = asyncio.get_running_loop()
    rss_before = proc.rss_bytes(server.pid)
    peak = rss_before
    sockets: list[socket.socket] = []
    slots = asyncio.Semaphore(200)
    failed = 0

    async def connect() -> None:
        nonlocal failed
        async with slots:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.bind((HANDSHAKER, 0))
                await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", files_port)), 10)
            except (OSError, TimeoutError):
                failed += 1
                sock.close()
                return
            sockets.append(sock)

    opening = asyncio.gather(*(connect() for _ in range(count)))
    while not opening.done():
        peak = max(peak, proc.rss_bytes(server.pid))
        await asyncio.sleep(0.25)
    await opening
    for _ in range(20):  # held 5 s
        peak = max(peak, proc.rss_bytes(server.pid))
        await asyncio.sleep(0.25)
    open_still = sum(1 for sock in sockets if _still_open(sock))
    for sock in sockets:
        sock.close()
    await asyncio.sleep(5.0)
    mib = 1024 * 1024
    return {
        "connections": count,
        "connect_failed": failed,
        "still_open_after_5s": open_still,
        "rss_before_mib": round(rss_before / mib, 1),
        "rss_peak_mib": round(peak / mib, 1),
        "rss_after_mib": round(proc.rss_bytes(server.pid) / mib, 1),
    }


def _still_open(sock: socket.socket) -> bool:
    """Whether the server still holds ``sock`` (it has neither closed nor reset it)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


async def tokens(
    server: ParleyServer,
    files_port: int,
    begin: Begin,
    guests: int = 200,
    held: int = 60,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Each guest first takes ``held`` tokens as fast as flood control lets it (12,000 in all),
    then one every 0.5 s for ``seconds``, measured.
    """
    sharer = await _logged_in(server.port, "127.0.0.6", "Sharer")
    await sharer.request("join", room="#general")
    members: list[Line] = []
    for number in range(guests):
        member = await _logged_in(server.port, f"127.0.1.{1 + number % 250}", f"Guest{number}")
        await member.request("join", room="#general")
        members.append(member)
    file_id = await _share(sharer, files_port, b"shared with everyone\n")
    outcomes: list[str] = []
    # Round trips (ms) of the measured requests, by answer.
    round_trips: dict[str, list[float]] = {}

    async def ask(member: Line, count: int | None, gap: float) -> None:
        deadline = time.monotonic() + seconds
        for _ in itertools.count() if count is None else range(count):
            if count is None and time.monotonic() >= deadline:
                return
            started = time.monotonic()
            try:
                reply = await member.request("get", file_id=file_id)
            except (OSError, TimeoutError):
                outcomes.append("cut")
                return
            outcome = str(reply.get("code") or reply["type"])
            outcomes.append(outcome)
            if count is None:
                round_trips.setdefault(outcome, []).append((time.monotonic() - started) * 1000)
            await asyncio.sleep(max(0.0, gap - (time.monotonic() - started)))

    await asyncio.gather(*(ask(member, held, 0.1) for member in members))
    begin()
    await asyncio.gather(*(ask(member, None, 0.5) for member in members))
    for line in [sharer, *members]:
        line.close()
    get_ms = {
        outcome: {"p50": percentile(sorted(times), 0.5), "p99": percentile(sorted(times), 0.99)}
        for outcome, times in round_trips.items()
    }
    return {
        "guests": guests,
        "tokens_held": guests * held,
        "requests": _tally(outcomes),
        "get_ms": get_ms,
    }


async def _share(line: Line, files_port: int, data: bytes) -> str:
    """Upload ``data`` to #general through the file port; returns its file id."""
    slot = await line.request(
        "share", to="#general", name="shared.txt", size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    if "token" not in slot:
        raise RuntimeError(f"share refused: {slot}")
    reader, writer = await asyncio.open_connection("127.0.0.1", slot["port"], ssl=_context())
    writer.write(json.dumps({"type": "start", "token": slot["token"], "offset": 0}).encode())
    writer.write(b"\n")
    ready = json.loads(await asyncio.wait_for(reader.readline(), ANSWER_SECONDS))
    if ready["type"] != "ready":
        raise RuntimeError(f"upload refused: {ready}")
    writer.write(data)
    done = json.loads(await asyncio.wait_for(reader.readline(), ANSWER_SECONDS))
    writer.close()
    if done["type"] != "done":
        raise RuntimeError(f"upload failed: {done}")
    return str(slot["file_id"])


async def rooms(
    server: ParleyServer, files_port: int, begin: Begin, clients: int = 10, seconds: float = 10.0
) -> dict[str, Any]:
    begin()
    deadline = time.monotonic() + seconds
    outcomes: list[str] = []
    listed: list[int] = []

    async def connect(source: str, nick: str) -> Line | None:
        """Log in from ``source`` until the deadline; None if every try was refused."""
        while time.monotonic() < deadline:
            try:
                line = await Line.open(server.port, source)
            except (OSError, TimeoutError):
                outcomes.append("connect-failed")
                continue
            try:
                reply = await line.request("hello", versions=[1])
                if reply["type"] != "closing":
                    reply = await line.request("nick", nick=nick)
            except (OSError, TimeoutError):
                reply = {"type": "closing", "code": "cut"}
            if reply["type"] == "ok":
                return line
            line.close()
            outcomes.append(f"login-{reply.get('code') or reply['type']}")
        return None

    async def repeat(number: int) -> None:
        source, nick = f"127.0.2.{1 + number}", f"Lister{number}"
        line = await connect(source, nick)
        while line is not None and time.monotonic() < deadline:
            try:
                reply = await line.request("rooms")
            except (OSError, TimeoutError):
                reply = {"type": "closing", "code": "cut"}
            if reply["type"] == "closing":
                outcomes.append(str(reply.get("code")))
                line.close()
                line = await connect(source, nick)
                continue
            outcomes.append(str(reply.get("code") or reply["type"]))
            listed.append(len(reply.get("rooms", [])))
        if line is not None:
            line.close()

    await asyncio.gather(*(repeat(number) for number in range(clients)))
    return {
        "clients": clients,
        "seconds": seconds,
        "replies": _tally(outcomes),
        "rooms_per_reply_max": max(listed, default=0),
    }


def _tally(items: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


LOADS: dict[str, Load] = {
    "quiet": quiet,
    "guesses": guesses,
    "handshakes": handshakes,
    "tokens": tokens,
    "rooms": rooms,
}


# --- running ---------------------------------------------------------------------------------


def _prefill(root: Path, count: int) -> Callable[[str | None, Path], None]:
    """Make ``count`` rooms through the storage layer of the checkout at ``root``, in a process
    of its own (so that checkout's schema is the one filled).
    """

    def fill(database: str | None, data_dir: Path) -> None:
        if not count:
            return
        env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{HERE.parent}"}
        command = [sys.executable, "-m", "bench.abuse", "--fill-rooms", str(count)]
        command += ["--data-dir", str(data_dir)]
        subprocess.run(command, env=env, check=True, timeout=600)

    return fill


async def _fill_rooms(data_dir: Path, count: int) -> None:
    from parley.storage import Room
    from parley.storage.factory import open_storage

    storage = await open_storage(None, data_dir)
    try:
        for start in range(0, count, 1000):
            await asyncio.gather(
                *(
                    storage.create_room(Room(key=f"#filler{n}", name=f"#filler{n}"))
                    for n in range(start, min(count, start + 1000))
                )
            )
    finally:
        await storage.close()


def _files_port(server: ParleyServer) -> int:
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("Files travel on port "):
            return int(line.removeprefix("Files travel on port ").rstrip("."))
    raise RuntimeError(f"the server did not say its file port: {server.log_tail()}")


async def _run(
    server: ParleyServer, phases: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[float, float]]]:
    """Each phase's figures, and the window of time its pings are taken from."""
    files_port = _files_port(server)
    results: dict[str, dict[str, Any]] = {}
    windows: dict[str, tuple[float, float]] = {}
    for phase in phases:
        load = LOADS[phase]
        started = time.monotonic()
        figures, began, ended = await _measured(functools.partial(load, server, files_port))
        results[phase] = {**figures, "phase_seconds": round(ended - started, 1)}
        windows[phase] = (began, ended)
        await asyncio.sleep(2.0)  # what the phase left behind settles before the next
    return results, windows


def _row(figures: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:8.1f}"

    rest = {k: v for k, v in figures.items() if not k.startswith("ping")}
    return (
        f"pings {figures['pings']:5d}  p50 {ms(figures['ping_p50_ms'])} ms  "
        f"p99 {ms(figures['ping_p99_ms'])} ms  max {ms(figures['ping_max_ms'])} ms  {rest}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.abuse", description="abuse workloads")
    parser.add_argument("--parley-root", type=Path, default=HERE.parent)
    parser.add_argument("--only", choices=PHASES, action="append")
    parser.add_argument("--rooms", type=int, default=80_000, help="rooms made beforehand")
    parser.add_argument("--rounds", type=int, default=1, help="fresh servers, one after another")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--fill-rooms", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill_rooms is not None:
        asyncio.run(_fill_rooms(args.data_dir, args.fill_rooms))
        return 0
    proc.raise_open_file_limit()  # 6,000 sockets, and the server inherits the limit
    phases = args.only or list(PHASES)
    runs: list[dict[str, dict[str, Any]]] = []
    for round_number in range(args.rounds):
        print(f"Round {round_number + 1}: Parley from {args.parley_root}", flush=True)
        server = ParleyServer(args.parley_root, prefill=_prefill(args.parley_root, args.rooms))
        with server:
            pings = Pings(server.port)
            try:
                time.sleep(2.0)  # past the logins
                results, windows = asyncio.run(_run(server, phases))
            finally:
                samples = pings.stop()
        for phase, (start, end) in windows.items():
            results[phase].update(_window(samples, start, end))
            print(f"{phase:<11} {_row(results[phase])}", flush=True)
        runs.append(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"root": str(args.parley_root), "runs": runs}, indent=2))
    print(f"Results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
