"""When the database cannot take a write, users get an error, the server keeps serving, and
nothing already acknowledged is lost."""

from __future__ import annotations

import asyncio
import sqlite3

from parley.server.app import ParleyServer
from parley.storage.factory import DEFAULT_FILE
from support import raw_user


async def test_a_locked_database_gives_errors_then_recovers(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("send", to="#general", text="before", msg_id="1"))["type"] == (
        "sent"
    )
    # Another process holds the write lock longer than the server waits for it.
    blocker = sqlite3.connect(server.config.data_dir / DEFAULT_FILE, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        alice.send(type="send", id=50, to="#general", text="during", msg_id="2")
        # The event loop is not blocked: other requests are answered meanwhile.
        bob = await raw_user(server.port, "Bob")
        assert (await bob.request("ping"))["type"] == "pong"
        refused = await asyncio.wait_for(alice.expect("error", id=50), 15)
        assert refused["code"] == "unavailable"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await alice.request("send", to="#general", text="during", msg_id="2"))["type"] == (
        "sent"
    )
    page = await bob.request("history", to="#general")
    assert [m["text"] for m in page["messages"]] == ["before", "during"]
    await alice.close()
    await bob.close()
