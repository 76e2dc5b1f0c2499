"""Idle TLS connections held by one Parley server: memory and CPU per connection.

Starts ``parley server`` as its own process on a free loopback port, opens N TLS connections
that each complete the protocol hello (so each is a real session waiting for a nickname), then
reads the server's RSS and CPU time from /proc. They do not log in: N users joining one room is
N joined events to up to N members each, a fan-out workload, not an idle one. Connections come
from several 127.0.0.x source addresses, so the per-address limit stays as shipped. Every loop
is bounded in count and time.

    python bench/idle_connections.py --connections 1000 5000 10000 --json results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONNECT_TIMEOUT_SECONDS = 30.0
PER_SOURCE_ADDRESS = 900  # below the server's default 1,000 per address


def raise_fd_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "parley", "server", "--port", "0", "--data-dir", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = (await asyncio.to_thread(process.stdout.readline)).decode()
        if line.startswith("Server is running on"):
            port = int(line.rsplit(":", 1)[1].rstrip(".\n"))
            # Keep draining the log so the server never blocks on a full pipe.
            asyncio.get_running_loop().run_in_executor(None, process.stdout.read)
            return process, port
    process.kill()
    raise RuntimeError("server did not start")


async def open_user(port: int, index: int, context: ssl.SSLContext) -> tuple[float, object]:
    source = f"127.0.0.{2 + index // PER_SOURCE_ADDRESS}"
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, local_addr=(source, 0)
    )
    connect_seconds = time.perf_counter() - started
    writer.write(b'{"type":"hello","id":1,"versions":[1]}\n')
    reply = await asyncio.wait_for(reader.readline(), CONNECT_TIMEOUT_SECONDS)
    assert b'"welcome"' in reply, reply
    return connect_seconds, (reader, writer)


async def measure(count: int) -> dict[str, float]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with tempfile.TemporaryDirectory() as data_dir:
        server, port = await start_server(Path(data_dir))
        try:
            await asyncio.sleep(0.5)
            rss_before = proc_rss_bytes(server.pid)
            cpu_before = proc_cpu_seconds(server.pid)
            semaphore = asyncio.Semaphore(200)  # connects in flight at once

            async def one(i: int) -> tuple[float, object]:
                async with semaphore:
                    return await open_user(port, i, context)

            results = await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(count))), CONNECT_TIMEOUT_SECONDS * 10
            )
            cpu_after = proc_cpu_seconds(server.pid)
            await asyncio.sleep(1.0)  # let the allocator settle
            rss_after = proc_rss_bytes(server.pid)
            connects = sorted(seconds for seconds, _ in results)
            figures = {
                "connections": count,
                "rss_per_connection_bytes": (rss_after - rss_before) / count,
                "server_cpu_ms_per_handshake": (cpu_after - cpu_before) * 1000 / count,
                "connect_p50_ms": statistics.median(connects) * 1000,
                "connect_p99_ms": connects[int(0.99 * (count - 1))] * 1000,
            }
            for _, (_, writer) in results:  # type: ignore[misc]
                writer.close()
            return figures
        finally:
            server.terminate()
            server.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1000])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    raise_fd_limit()
    rows = [await measure(count) for count in args.connections]
    print(f"{'connections':>11} {'RSS/conn':>10} {'CPU/handshake':>14} {'p50':>8} {'p99':>8}")
    for row in rows:
        print(
            f"{row['connections']:>11} {row['rss_per_connection_bytes'] / 1024:>8.1f}KB "
            f"{row['server_cpu_ms_per_handshake']:>12.2f}ms "
            f"{row['connect_p50_ms']:>6.1f}ms {row['connect_p99_ms']:>6.1f}ms"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
