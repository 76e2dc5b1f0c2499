"""Acknowledged means stored, and shown means stored: SIGKILL the real server mid-stream,
restart it, and every message it acknowledged to its sender, or showed to another member, is
in the history exactly once, under the same ``seq``. With either ``sqlite_synchronous``: the
WAL holds a commit before it returns, whether or not it waits for the disk.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from processes import start_server

from support import RawClient

MESSAGES = 3000


async def _watch(client: RawClient, shown: dict[str, int]) -> None:
    """Note each of the writer's messages ``client`` is shown, until the connection ends."""
    try:
        while line := await client.reader.readline():
            frame: dict[str, Any] = json.loads(line)
            if frame["type"] == "message" and frame.get("msg_id", "").startswith("id"):
                shown[frame["msg_id"]] = frame["seq"]
    except (ConnectionError, OSError, ValueError):
        pass


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_every_acknowledged_or_shown_message_survives_sigkill(
    tmp_path: Path, synchronous: str
) -> None:
    config = tmp_path / "server.toml"
    # Flood control off for this one client: the point is many messages in flight at once.
    config.write_text(
        f'sqlite_synchronous = "{synchronous}"\n'
        "flood_burst_requests = 100000\nflood_rate_per_second = 100000.0\n"
        "flood_debt_requests = 100000\n"
        "request_burst_per_address = 1000000\nrequest_rate_per_address = 1000000.0\n"
        "request_burst_per_principal = 1000000\nrequest_rate_per_principal = 1000000.0\n"
        "request_burst_guests_per_address = 1000000\n"
        "request_rate_guests_per_address = 1000000.0\n"
    )
    data = ["--data-dir", str(tmp_path / "server-data"), "--config", str(config)]
    server, port = await start_server(tmp_path, *data)
    acked: dict[str, int] = {}
    shown: dict[str, int] = {}
    try:
        watcher = await RawClient.open(port)
        await watcher.login("Watcher")
        watching = asyncio.create_task(_watch(watcher, shown))
        client = await RawClient.open(port)
        await client.login("Writer")
        for n in range(MESSAGES):
            client.send(type="send", id=n + 1000, to="#general", text=f"m{n}", msg_id=f"id{n}")
        # Kill as soon as most are acknowledged: the rest are in flight inside the server.
        while len(acked) < MESSAGES * 2 // 3:
            frame = await client.frame()
            if frame["type"] == "sent":
                acked[f"id{frame['id'] - 1000}"] = frame["seq"]
        server.signal(signal.SIGKILL)
        # Acks already on the wire before the kill count too.
        try:
            while True:
                line = await asyncio.wait_for(client.reader.readline(), 5)
                if not line:
                    break
                if b'"type":"sent"' in line:
                    frame = json.loads(line)
                    acked[f"id{frame['id'] - 1000}"] = frame["seq"]
        except (ConnectionError, OSError):
            pass
        await client.close()
        await asyncio.wait_for(watching, 10)
        await watcher.close()
        await server.finish()
    finally:
        server.kill()

    server, port = await start_server(tmp_path, *data)
    try:
        reader = await RawClient.open(port)
        await reader.login("Reader")
        stored: dict[str, list[int]] = {}
        after = 0
        while True:
            page = await reader.request("history", to="#general", after=after, limit=200)
            for message in page["messages"]:
                stored.setdefault(message["msg_id"], []).append(message["seq"])
                after = message["seq"]
            if not page.get("more"):
                break
        await reader.close()
    finally:
        server.signal(signal.SIGTERM)
        await server.finish()
    assert len(acked) >= MESSAGES * 2 // 3
    for msg_id, seq in acked.items():
        assert stored.get(msg_id) == [seq], msg_id
    # A member is shown a message only once it is committed: nothing shown is missing.
    assert len(shown) >= len(acked) // 2
    for msg_id, seq in shown.items():
        assert stored.get(msg_id) == [seq], msg_id
    # Whatever was stored is stored once, numbered without gaps.
    seqs = sorted(seq for seqs in stored.values() for seq in seqs)
    assert seqs == list(range(1, len(seqs) + 1))
