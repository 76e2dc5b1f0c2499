"""Terminal: how soon a key the user presses shows on screen while lines pour in.

The real full-screen client runs on a pseudo-terminal (80x24) against the server. A second
connection sends R lines/s to #general (in bursts every 10 ms). Meanwhile a typist presses
one key every 100 ms: each a different CJK character, which no incoming line contains, so its
UTF-8 bytes appearing in the client's output mark the moment it was drawn. Figures: key-to-
screen latency p50/p99 in ms with the flood and, as the baseline, without it; and the client's
CPU use under the flood (share of one core). Flood control is lifted for the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import pty
import ssl
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import uvloop

from bench import proc, stats
from bench.outcome import Outcome
from bench.pool import WorkerPool
from bench.servers import Server

COLUMNS, ROWS = 80, 24
KEY_INTERVAL_SECONDS = 0.1
# Keys typed before the line is cleared (Ctrl+U), so it never wraps.
KEYS_PER_LINE = 20
BURST_INTERVAL_SECONDS = 0.01


@dataclasses.dataclass(frozen=True)
class Load:
    lines_per_second: int
    seconds: float

    @property
    def label(self) -> str:
        return f"terminal R={self.lines_per_second}"


class _Screen:
    """The client on a pseudo-terminal; collects what it writes, with arrival times."""

    def __init__(self, root: Path, port: int, home: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = {
            **os.environ,
            "PYTHONPATH": str(root / "src"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "PROMPT_TOOLKIT_NO_CPR": "1",
            "TERM": "xterm-256color",
        }
        command = [sys.executable, "-m", "parley", "client", "--port", str(port), "--trust-new"]
        self.process = subprocess.Popen(
            [*command, "--nick", "typist"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        os.set_blocking(self.master, False)
        self.output = bytearray()
        self.waiting: dict[bytes, asyncio.Future[float]] = {}

    def start_reading(self) -> None:
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            chunk = os.read(self.master, 1 << 16)
            now = time.monotonic()
            # Keep only a tail: a marker split across two reads is still found.
            self.output = self.output[-64:] + chunk
            for marker, future in list(self.waiting.items()):
                if marker in self.output and not future.done():
                    future.set_result(now)
                    del self.waiting[marker]

    async def wait_for(self, marker: bytes, seconds: float) -> float:
        future = asyncio.get_running_loop().create_future()
        self.waiting[marker] = future
        return await asyncio.wait_for(future, seconds)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def cpu_seconds(self) -> float:
        return proc.cpu_seconds(self.process.pid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.master, b"/exit\r")
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


async def _keys(screen: _Screen, seconds: float, first: int) -> list[float]:
    """Press a key every KEY_INTERVAL_SECONDS for ``seconds``; each one's latency in ms."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    number = first
    while time.monotonic() < deadline:
        if number % KEYS_PER_LINE == 0:
            screen.type(b"\x15")  # Ctrl+U
            await asyncio.sleep(KEY_INTERVAL_SECONDS)
        key = chr(0x4E00 + number).encode()
        number += 1
        waiting = asyncio.ensure_future(screen.wait_for(key, 5.0))
        await asyncio.sleep(0)
        pressed = time.monotonic()
        screen.type(key)
        drawn = await waiting
        latencies.append((drawn - pressed) * 1000)
        await asyncio.sleep(max(0.0, KEY_INTERVAL_SECONDS - (time.monotonic() - pressed)))
    return latencies


async def _flood(port: int, load: Load, stop: asyncio.Event) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(b'{"type":"hello","id":1,"versions":[1]}\n{"type":"nick","id":2,"nick":"flood"}\n')
    while b'"type":"ok"' not in await reader.readline():
        pass

    async def drain_replies() -> None:
        while await reader.read(1 << 16):
            pass

    draining = asyncio.create_task(drain_replies())
    per_burst = max(1, round(load.lines_per_second * BURST_INTERVAL_SECONDS))
    sent, began = 0, time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - began) * load.lines_per_second)
        burst = min(per_burst * 4, due - sent)
        for _ in range(max(burst, 0)):
            sent += 1
            writer.write(
                b'{"type":"send","id":%d,"to":"#general","text":"line %d of the flood",'
                b'"msg_id":"f%d"}\n' % (sent + 10, sent, sent)
            )
        await writer.drain()
        await asyncio.sleep(BURST_INTERVAL_SECONDS)
    draining.cancel()
    writer.close()
    return sent


async def _drive(root: Path, port: int, load: Load) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="parley-bench-terminal-") as home:
        screen = _Screen(root, port, Path(home))
        screen.start_reading()
        try:
            await screen.wait_for(b"[#general]", 30.0)
            await asyncio.sleep(0.5)
            quiet = await _keys(screen, load.seconds, 1)
            stop = asyncio.Event()
            flooding = asyncio.create_task(_flood(port, load, stop))
            await asyncio.sleep(0.5)  # the flood at full rate before timing
            cpu_before, began = screen.cpu_seconds(), time.monotonic()
            busy = await _keys(screen, load.seconds, 5000)
            cpu = (screen.cpu_seconds() - cpu_before) / (time.monotonic() - began)
            stop.set()
            sent = await flooding
        finally:
            screen.close()
    quiet.sort()
    busy.sort()
    return Outcome(
        figures={
            "key_to_screen_p50_ms": stats.percentile(busy, 0.5),
            "key_to_screen_p99_ms": stats.percentile(busy, 0.99),
            "key_to_screen_idle_p50_ms": stats.percentile(quiet, 0.5),
            "key_to_screen_idle_p99_ms": stats.percentile(quiet, 0.99),
            "client_cpu_share": cpu,
        },
        details={"keys": len(busy), "lines_sent": sent, "seconds": load.seconds},
    )


def run(pool: WorkerPool, server: Server, *, root: Path, load: Load) -> Outcome:
    del pool  # one client and one sender: latency, not throughput
    result: Outcome = uvloop.run(_drive(root, server.port, load))
    return result
