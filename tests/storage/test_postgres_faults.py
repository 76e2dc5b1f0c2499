"""The real server on a PostgreSQL that misbehaves: a row locked by another session, a network
that stops answering (through a proxy that can black-hole and cut connections), a connection
cut while COMMIT is under way, and SIGTERM while the database is stalled. Users get answers in
bounded time, other rooms go on, nothing stored goes undelivered, and storage recovers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from e2e.processes import start_server
from fault_proxy import FaultProxy
from parley.config import ServerConfig
from parley.server.app import ParleyServer
from parley.storage import CommitUncertain, NewMessage, StorageUnavailable, StoredMessage
from parley.storage.postgres import PostgresStorage, Timeouts
from postgres_support import POSTGRES_URL, postgres_schema
from support import RawClient, raw_user

# Short, so that the tests wait seconds, not the defaults' tens of seconds.
FAST = Timeouts(statement_seconds=2.0, lock_seconds=1.0, operation_seconds=3.0)


@contextlib.asynccontextmanager
async def _server_on(config: ServerConfig, url: str, schema: str) -> AsyncIterator[ParleyServer]:
    storage = await PostgresStorage.open(url, schema=schema, timeouts=FAST)
    async with ParleyServer(config, storage=storage) as server:
        yield server


@contextlib.asynccontextmanager
async def _proxy() -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy.start(POSTGRES_URL)
    try:
        yield proxy
    finally:
        await proxy.close()


async def _send_until_stored(client: RawClient, **fields: Any) -> dict[str, Any]:
    """Send (the same msg_id) until it is stored: storage recovers by itself, a moment after
    the network does."""
    for _ in range(20):
        reply = await client.request("send", **fields)
        if reply["type"] == "sent":
            return reply
        assert reply["code"] == "unavailable", reply
        await asyncio.sleep(0.5)
    raise AssertionError("storage did not recover")


async def test_a_locked_room_refuses_its_own_messages_and_holds_up_no_other(
    server_config: ServerConfig,
) -> None:
    async for schema in postgres_schema():
        async with _server_on(server_config, POSTGRES_URL, schema) as server:
            alice = await raw_user(server.port, "Alice")
            await alice.request("join", room="#a")
            bob = await raw_user(server.port, "Bob")
            await bob.request("join", room="#b")
            assert (await alice.request("send", to="#a", text="a1", msg_id="a1"))["seq"] == 1
            # Another session (another node, an operator's psql) holds #a's row.
            locker = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
            held = locker.transaction()
            await held.start()
            await locker.execute("SELECT * FROM conversations WHERE id = '#a' FOR UPDATE")
            try:
                alice.send(type="send", id=500, to="#a", text="a2", msg_id="a2")
                await asyncio.sleep(0.2)  # a2's commit is now waiting for the row
                # Nothing else waits for it: another room, a login, a join.
                sent = await bob.request("send", to="#b", text="b1", msg_id="b1")
                assert (sent["type"], sent["seq"]) == ("sent", 1)
                carol = await raw_user(server.port, "Carol")
                assert (await carol.request("join", room="#b"))["type"] == "room"
                # And #a's sender is told, while the row is still held.
                refused = await alice.expect_reply(500)
                assert refused["code"] == "unavailable"
            finally:
                await held.rollback()
                await locker.close()
            again = await alice.request("send", to="#a", text="a2", msg_id="a2")
            assert (again["type"], again["seq"], again.get("duplicate")) == ("sent", 2, None)
            for client in (alice, bob, carol):
                await client.close()


async def test_a_database_that_stops_answering_gives_unavailable_then_recovers_alone(
    server_config: ServerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    async for schema in postgres_schema():
        async with _proxy() as proxy, _server_on(server_config, proxy.url, schema) as server:
            alice = await raw_user(server.port, "Alice")
            bob = await raw_user(server.port, "Bob")
            await alice.request("send", to="#general", text="before", msg_id="1")
            with caplog.at_level(logging.INFO):
                proxy.black_hole()
                for n in range(2, 7):
                    alice.send(type="send", id=500 + n, to="#general", text="x", msg_id=f"{n}")
                # The event loop is not held: pings are answered meanwhile...
                assert (await bob.request("ping"))["type"] == "pong"
                # ...and every sender gets an answer without waiting for the network.
                for n in range(2, 7):
                    assert (await alice.expect_reply(500 + n))["code"] == "unavailable"
                proxy.restore()
                await _send_until_stored(alice, to="#general", text="after", msg_id="7")
            page = await bob.request("history", to="#general")
            assert [m["text"] for m in page["messages"]] == ["before", "after"]
            await alice.close()
            await bob.close()
    # One line when storage failed, one when it came back; no traceback per failure.
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("parley")]
    assert len([line for line in lines if line.startswith("Storage degraded")]) == 1
    assert len([line for line in lines if line.startswith("Storage recovered")]) == 1
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("parley")]


async def test_a_message_committed_as_the_connection_drops_is_acknowledged_and_delivered(
    server_config: ServerConfig,
) -> None:
    async for schema in postgres_schema():
        async with _proxy() as proxy, _server_on(server_config, proxy.url, schema) as server:
            alice = await raw_user(server.port, "Alice")
            bob = await raw_user(server.port, "Bob")
            proxy.cut_at_next_commit()
            sent = await alice.request("send", to="#general", text="in doubt", msg_id="d1")
            assert proxy.commits_cut == 1
            # It was stored: the sender is told so, and the room gets it.
            assert (sent["type"], sent["seq"], sent.get("duplicate")) == ("sent", 1, None)
            assert (await bob.event("message", msg_id="d1"))["text"] == "in doubt"
            await alice.close()
            await bob.close()


async def test_a_commit_whose_outcome_could_not_be_checked_is_delivered_on_the_retry(
    server_config: ServerConfig,
) -> None:
    async for schema in postgres_schema():
        async with _proxy() as proxy, _server_on(server_config, proxy.url, schema) as server:
            alice = await raw_user(server.port, "Alice")
            bob = await raw_user(server.port, "Bob")
            proxy.cut_at_next_commit(then_black_hole=True)
            refused = await alice.request("send", to="#general", text="in doubt", msg_id="d1")
            assert refused["code"] == "unavailable"
            proxy.restore()
            # The retry finds it stored: a duplicate for the sender, but the room never got it.
            again = await _send_until_stored(alice, to="#general", text="in doubt", msg_id="d1")
            assert (again["seq"], again["duplicate"]) == (1, True)
            assert (await bob.event("message", msg_id="d1"))["seq"] == 1
            # Published once: a second retry is only a duplicate.
            await alice.request("send", to="#general", text="in doubt", msg_id="d1")
            await alice.request("send", to="#general", text="next", msg_id="d2")
            assert (await bob.event("message"))["msg_id"] == "d2"
            await alice.close()
            await bob.close()


async def test_a_shared_commit_cut_leaves_the_locked_conversation_out_and_settles_the_rest() -> (
    None
):
    def message(text: str) -> NewMessage:
        return NewMessage(f"#{text[0]}", "Alice", "alice", f"#{text[0]}", text, text)

    def seqs(stored: list[StoredMessage | None]) -> list[tuple[int, bool] | None]:
        return [None if r is None else (r.seq, r.duplicate) for r in stored]

    async for schema in postgres_schema():
        async with _proxy() as proxy:
            storage = await PostgresStorage.open(proxy.url, schema=schema, timeouts=FAST)
            try:
                await storage.append([message(t) for t in ("a0", "b0", "c0")])
                locker = await asyncpg.connect(
                    POSTGRES_URL, server_settings={"search_path": schema}
                )
                held = locker.transaction()
                await held.start()
                await locker.execute("SELECT * FROM conversations WHERE id = '#a' FOR UPDATE")
                try:
                    # Committed, then the answer lost: found stored on another connection.
                    proxy.cut_at_next_commit()
                    batch = [message(t) for t in ("a1", "b1", "c1")]
                    assert seqs(await storage.append_free(batch)) == [None, (2, False), (2, False)]
                    assert proxy.commits_cut == 1
                    # Committed, and the lookup gets no answer either: in doubt.
                    proxy.cut_at_next_commit(then_black_hole=True)
                    batch = [message(t) for t in ("a2", "b2", "c2")]
                    with pytest.raises(CommitUncertain):
                        await storage.append_free(batch)
                    proxy.restore()
                    # The retry settles it: stored once, as duplicates; #a still left out.
                    retried = await _retry_free(storage, batch)
                    assert seqs(retried) == [None, (3, True), (3, True)]
                finally:
                    await held.rollback()
                    await locker.close()
                # #a, alone once its row is free, numbered with no gap.
                stored = await storage.append([message(t) for t in ("a1", "a2")])
                assert [r.seq for r in stored] == [2, 3]
                for conversation, last in (("#a", 3), ("#b", 3), ("#c", 3)):
                    page = await storage.history(conversation, limit=10)
                    assert [m.seq for m in page] == list(range(1, last + 1))
            finally:
                await storage.close()


async def _retry_free(
    storage: PostgresStorage, batch: list[NewMessage]
) -> list[StoredMessage | None]:
    """append_free until storage answers: it recovers by itself, a moment after the network."""
    for _ in range(20):
        try:
            return await storage.append_free(batch)
        except StorageUnavailable:
            await asyncio.sleep(0.5)
    raise AssertionError("storage did not recover")


async def test_sigterm_with_the_database_stalled_stops_the_server_within_its_grace(
    tmp_path: Path,
) -> None:
    async for schema in postgres_schema():
        admin = await asyncpg.connect(POSTGRES_URL)
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await admin.close()
        async with _proxy() as proxy:
            settings = tmp_path / "server.toml"
            settings.write_text(
                f'database = "{proxy.url}?search_path={schema}"\nshutdown_grace_seconds = 2.0\n'
            )
            server, port = await start_server(tmp_path / "server", "--config", str(settings))
            try:
                alice = await raw_user(port, "Alice")
                proxy.black_hole()
                alice.send(type="send", id=500, to="#general", text="stalled", msg_id="s1")
                await asyncio.sleep(0.5)  # its commit is waiting on the database
                server.signal(signal.SIGTERM)
                # Within the grace period (2 s) and the time storage gets to close (2 s):
                # the sender is answered, every client told, and the process exits.
                status, output, errors = await server.finish()
                assert status == 0, errors
                assert "Server stopped." in output
                assert (await alice.expect_reply(500))["code"] == "unavailable"
                await alice.expect("closing", code="server-shutdown")
                await alice.close()
            finally:
                server.kill()
