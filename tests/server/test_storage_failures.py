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


async def test_a_write_waiting_for_a_lock_holds_up_no_login_or_read(server: ParleyServer) -> None:
    alice = await raw_user(server.port, "Alice")
    assert (await alice.request("send", to="#general", text="before", msg_id="1"))["seq"] == 1
    blocker = sqlite3.connect(server.config.data_dir / DEFAULT_FILE, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        alice.send(type="send", id=50, to="#general", text="during", msg_id="2")
        await asyncio.sleep(0.2)  # its commit now waits for the lock (up to 5 s)

        async def newcomer() -> list[str]:
            bob = await raw_user(server.port, "Bob")
            page = await bob.request("history", to="#general")
            await bob.close()
            return [m["text"] for m in page["messages"]]

        reading = asyncio.create_task(newcomer())
        refusing = asyncio.create_task(alice.expect_reply(50))
        done, _ = await asyncio.wait({reading, refusing}, return_when=asyncio.FIRST_COMPLETED)
        # The guest's login and its history read did not queue behind the waiting write.
        assert done == {reading}
        assert reading.result() == ["before"]
        assert (await refusing)["code"] == "unavailable"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await alice.close()
