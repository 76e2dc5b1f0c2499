"""Files: one large file through Parley's file connections, next to a plain Python TLS copy.

Steps, all over TLS on loopback, in one run:

1. Baseline: the same file sent over one Python ``ssl`` stream to a receiver that writes it
   to disk (no protocol, no hashing): MB/s.
2. Parley: ``/send`` and ``/get`` through the client core (the upload, then the download),
   timed from the first byte to the last (the client hashes the file before offering it and
   after fetching it; that is reported apart). Server RSS is sampled all along: it must stay
   flat, as files stream through in chunks.
3. Chat latency: a separate process sends a message to #general every 20 ms and times its
   echo, first with nothing else going on (before the file is even made), then while the
   upload runs: p50/p99 both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import ssl
import tempfile
import threading
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import uvloop

from bench import proc, stats
from bench.outcome import Outcome
from bench.pool import WorkerPool
from bench.servers import Server

PROBE_INTERVAL_SECONDS = 0.02
QUIET_SECONDS = 4.0
_BLOCK = 1 << 20

SERVER_SETTINGS = (
    "flood_burst_requests = 1000000\nflood_rate_per_second = 1000000.0\n"
    "flood_debt_requests = 1000000\n"
    "request_burst_per_address = 1000000\nrequest_rate_per_address = 1000000.0\n"
    "request_burst_per_principal = 1000000\nrequest_rate_per_principal = 1000000.0\n"
    "request_burst_guests_per_address = 1000000\n"
    "request_rate_guests_per_address = 1000000.0\n"
    "max_file_bytes = 4294967296\nfile_quota_bytes = 8589934592\n"
)


@dataclasses.dataclass(frozen=True)
class Load:
    megabytes: int

    @property
    def label(self) -> str:
        return f"files {self.megabytes} MiB"


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(_BLOCK)
    with path.open("wb") as out:
        for _ in range(size // _BLOCK):
            out.write(block)


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- the baseline: a plain TLS copy --------------------------------------------------------


async def _plain_copy(source: Path, target: Path, cert: Path, key: Path) -> float:
    """Seconds to send ``source`` over one TLS stream to a receiver writing ``target``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    received = asyncio.Event()

    async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with target.open("wb") as out:
            while chunk := await reader.read(256 * 1024):
                out.write(chunk)
        received.set()
        writer.close()

    server = await asyncio.start_server(receive, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    began = time.monotonic()
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context())
    with source.open("rb") as file:
        while chunk := file.read(256 * 1024):
            writer.write(chunk)
            await writer.drain()
    writer.close()
    await received.wait()
    elapsed = time.monotonic() - began
    server.close()
    return elapsed


# --- the chat probe, in a process of its own -------------------------------------------------


def _probe(
    port: int, ready: EventType, stop: EventType, results: multiprocessing.Queue[list[float]]
) -> None:
    results.put(uvloop.run(_probe_run(port, ready, stop)))


async def _probe_run(port: int, ready: EventType, stop: EventType) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context())
    writer.write(b'{"type":"hello","id":1,"versions":[1]}\n{"type":"nick","id":2,"nick":"probe"}\n')
    while b'"type":"ok"' not in await reader.readline():
        pass
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def read() -> None:
        while line := await reader.readline():
            if line.startswith(b'{"type":"message"') and b'"sender":"probe"' in line:
                marker = line.split(b'"text":"', 1)[1].split(b'"', 1)[0].decode()
                if marker in sent:
                    latencies.append((time.monotonic() - sent.pop(marker)) * 1000)

    reading = asyncio.create_task(read())
    ready.set()
    number = 0
    while not stop.is_set():
        number += 1
        marker = f"probe {number}"
        sent[marker] = time.monotonic()
        # Unique across probes: a repeated msg_id would be taken for a retry and dropped.
        writer.write(
            b'{"type":"send","id":%d,"to":"#general","text":"%s","msg_id":"p%d-%d"}\n'
            % (number + 10, marker.encode(), os.getpid(), number)
        )
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
    await asyncio.sleep(0.5)
    reading.cancel()
    writer.close()
    return latencies


class _Probe:
    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop, ready = context.Event(), context.Event()
        self._results: multiprocessing.Queue[list[float]] = context.Queue()
        self._process = context.Process(
            target=_probe, args=(port, ready, self._stop, self._results)
        )
        self._process.start()
        if not ready.wait(30):
            raise RuntimeError("the chat probe did not log in")

    def finish(self) -> list[float]:
        self._stop.set()
        latencies = self._results.get(timeout=60)
        self._process.join(10)
        return sorted(latencies)


# --- Parley ----------------------------------------------------------------------------------


class _RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.before = proc.rss_bytes(pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, proc.rss_bytes(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak - self.before, 0)


async def _drive(server: Server, load: Load, work: Path) -> Outcome:
    from parley.client.core import ChatClient
    from parley.client.transfer import Progress, download, upload

    # The quiet baseline first, before a large file and its copy make the disk busy, and
    # after what earlier runs left to write out.
    await asyncio.to_thread(os.sync)
    await asyncio.sleep(1.0)
    probe = _Probe(server.port)
    await asyncio.sleep(QUIET_SECONDS)
    quiet = await asyncio.to_thread(probe.finish)

    size = load.megabytes * _BLOCK
    source = work / "big.bin"
    await asyncio.to_thread(_make_file, source, size)
    cert = server.workdir / "data" / "cert.pem"
    key = server.workdir / "data" / "key.pem"
    plain = await _plain_copy(source, work / "plain-copy.bin", cert, key)
    (work / "plain-copy.bin").unlink()
    # Written out now, the file's and the copy's pages are not flushed during the upload.
    await asyncio.to_thread(os.sync)

    client = await ChatClient.connect("127.0.0.1", server.port, pins=None)
    await client.login("sender")
    marks: dict[str, float] = {}

    def timing(progress: Progress) -> None:
        phase = "up" if progress.upload else "down"
        marks.setdefault(f"{phase}-first", time.monotonic())
        if progress.done >= progress.total:
            marks[f"{phase}-last"] = time.monotonic()

    rss = _RssSampler(server.pid)
    probe = _Probe(server.port)
    await asyncio.sleep(0.5)
    began = time.monotonic()
    file_id = await upload(client, source, "#general", timing)
    upload_total = time.monotonic() - began
    busy = await asyncio.to_thread(probe.finish)
    fetched = work / "fetched"
    fetched.mkdir()
    began = time.monotonic()
    saved = await download(client, file_id, fetched, progress=timing)
    download_total = time.monotonic() - began
    rss_growth = rss.stop()
    saved.unlink()
    await client.close()

    upload_wire = marks["up-last"] - marks["up-first"]
    download_wire = marks["down-last"] - marks["down-first"]
    megabytes = size / 1e6
    plain_rate = megabytes / plain
    quiet_p99, busy_p99 = stats.percentile(quiet, 0.99), stats.percentile(busy, 0.99)
    return Outcome(
        figures={
            "plain_tls_mb_per_second": plain_rate,
            "upload_mb_per_second": megabytes / upload_wire,
            "upload_vs_plain": (megabytes / upload_wire) / plain_rate,
            "download_mb_per_second": megabytes / download_wire,
            "download_vs_plain": (megabytes / download_wire) / plain_rate,
            "upload_seconds_with_hashing": upload_total,
            "download_seconds_with_hashing": download_total,
            "server_rss_growth_mib": rss_growth / _BLOCK,
            "chat_p50_quiet_ms": stats.percentile(quiet, 0.5),
            "chat_p99_quiet_ms": quiet_p99,
            "chat_p50_during_upload_ms": stats.percentile(busy, 0.5),
            "chat_p99_during_upload_ms": busy_p99,
            "chat_p99_rise_ms": (
                busy_p99 - quiet_p99 if busy_p99 is not None and quiet_p99 is not None else None
            ),
        },
        details={"bytes": size, "probe_messages": [len(quiet), len(busy)]},
    )


def run(pool: WorkerPool, server: Server, *, load: Load) -> Outcome:
    del pool  # one sender, one probe: throughput and latency, not load
    with tempfile.TemporaryDirectory(prefix="parley-bench-files-") as work:
        result: Outcome = uvloop.run(_drive(server, load, Path(work)))
    return result
