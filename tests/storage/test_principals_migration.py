"""Upgrading a database made by the previous release, where everything was keyed by nickname,
to principals: each backend, from the schema version just before principals, with data in it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from parley.server.conversations import private_conversation
from parley.storage import NewMessage, SanctionKind, Storage
from parley.storage import postgres as postgres_backend
from parley.storage import sqlite as sqlite_backend
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema

NOW = 1_700_000_000_000
LATER = NOW + 86_400_000

# What the previous release kept: accounts alice and bob; a guest named eve (no account) who
# talked privately with bob, sent him a file and was sent one, made a room and was banned from
# another; alice's room, and alice and bob's own conversation.
OLD_ROWS = [
    "INSERT INTO accounts VALUES ('alice', 'Alice', 'h1', 'user', 1)",
    "INSERT INTO accounts VALUES ('bob', 'Bob', 'h2', 'moderator', 2)",
    "INSERT INTO conversations VALUES ('dm:alice:bob', 2)",
    "INSERT INTO conversations VALUES ('dm:bob:eve', 1)",
    "INSERT INTO messages VALUES ('dm:alice:bob', 1, 10, 'Alice', 'alice', 'Bob', 'hi bob', 'm1')",
    "INSERT INTO messages VALUES ('dm:alice:bob', 2, 11, 'Bob', 'bob', 'Alice', 'hi alice', 'm2')",
    "INSERT INTO messages VALUES ('dm:bob:eve', 1, 12, 'Eve', 'eve', 'Bob', 'secret', 'm3')",
    "INSERT INTO participants VALUES ('dm:alice:bob', 'alice')",
    "INSERT INTO participants VALUES ('dm:alice:bob', 'bob')",
    "INSERT INTO participants VALUES ('dm:bob:eve', 'bob')",
    "INSERT INTO participants VALUES ('dm:bob:eve', 'eve')",
    "INSERT INTO read_markers VALUES ('bob', 'dm:alice:bob', 1)",
    "INSERT INTO rooms VALUES ('#eves', '#Eves', '', '', 0, 'eve', 5, NULL)",
    "INSERT INTO rooms VALUES ('#alices', '#Alices', '', '', 0, 'alice', 6, NULL)",
    "INSERT INTO members VALUES ('#alices', 'alice', TRUE)",
    "INSERT INTO sanctions VALUES ('#alices', 'eve', 'ban', NULL, 'Alice', '', 7)",
    "INSERT INTO sanctions VALUES ('#alices', 'bob', 'mute', NULL, 'Alice', '', 8)",
    "INSERT INTO files VALUES "
    f"('{'1' * 32}', '{'a' * 64}', 'eve.txt', 5, 'eve', 'Eve', 'dm:bob:eve', 'Bob', 9, "
    f"{LATER}, TRUE)",
    "INSERT INTO files VALUES "
    f"('{'2' * 32}', '{'b' * 64}', 'bob.txt', 6, 'bob', 'Bob', 'dm:bob:eve', 'Eve', 9, "
    f"{LATER}, TRUE)",
    f"INSERT INTO file_readers VALUES ('{'1' * 32}', 'bob')",
    f"INSERT INTO file_readers VALUES ('{'2' * 32}', 'eve')",
]


def _before_principals(migrations: list[str]) -> int:
    """The schema version just before the one that brought principals."""
    return next(n for n, script in enumerate(migrations) if "ADD COLUMN id" in script)


async def _check_upgraded(storage: Storage) -> None:
    alice = await storage.account("alice")
    bob = await storage.account("bob")
    assert alice is not None and bob is not None
    assert len(alice.id) == 32 and len(bob.id) == 32 and alice.id != bob.id
    assert int(alice.id, 16) >= 0  # lowercase hex
    assert await storage.account_by_id(bob.id) == bob

    # The accounts' own conversation is theirs, whole, under their ids.
    theirs = private_conversation(alice.id, bob.id)
    assert [m.text for m in await storage.history(theirs, limit=10)] == ["hi bob", "hi alice"]
    unread = await storage.unread("bob", "", 100)
    assert [(u.conversation, u.read_seq, u.last_seq) for u in unread] == [
        (theirs, 1, 2),
        (private_conversation(bob.id, "xeve"), 0, 1),
    ]
    # The guest's side went to a principal no one can be: a new guest or account named eve
    # gets a fresh id, and with it none of this.
    with_eve = await storage.history(private_conversation(bob.id, "xeve"), limit=5)
    assert [(m.sender, m.text) for m in with_eve] == [("Eve", "secret")]

    # Files: bob keeps what he may read and what he sent; "eve" is no one's name any more.
    eves_file, bobs_file = "1" * 32, "2" * 32
    assert await storage.may_read_file(eves_file, bob.id)
    assert not await storage.may_read_file(eves_file, "eve")
    assert not await storage.may_read_file(bobs_file, "eve")
    sent = await storage.file(bobs_file)
    assert sent is not None and sent.sender_key == bob.id and sent.quota_key == bob.id
    assert sent.conversation == private_conversation(bob.id, "xeve")
    readable = await storage.readable_files(bob.id, None, NOW, 10)
    assert [f.file_id for f in readable] == [eves_file, bobs_file]  # same time: by id
    assert await storage.quota_bytes(bob.id, NOW) == 6

    # Rooms and sanctions: by principal; the guest's room has a creator no one can be.
    eves_room, alices_room = await storage.room("#eves"), await storage.room("#alices")
    assert eves_room is not None and eves_room.created_by == "xeve"
    assert alices_room is not None and alices_room.created_by == alice.id
    assert await storage.sanction("#alices", bob.id, SanctionKind.MUTE, NOW) is not None
    assert await storage.sanction("#alices", "bob", SanctionKind.MUTE, NOW) is None
    assert await storage.sanction("#alices", "xeve", SanctionKind.BAN, NOW) is not None
    assert await storage.memberships("alice") == {"#alices": True}

    # New messages in the migrated conversation carry on its numbers; counts start empty.
    [stored] = await storage.append(
        [NewMessage(theirs, "Alice", alice.id, "Bob", "again", "m4", (alice.id, bob.id))]
    )
    assert stored.seq == 3
    assert await storage.count_attempts(["address:x"], NOW, 0) == [(1, 0)]
    assert await storage.last_account_change() == 0


async def test_an_sqlite_database_of_the_previous_release_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    version = _before_principals(sqlite_backend.MIGRATIONS)
    old = sqlite3.connect(path, isolation_level=None)
    for script in sqlite_backend.MIGRATIONS[:version]:
        old.executescript(script)
    old.execute(f"PRAGMA user_version = {version}")
    for row in OLD_ROWS:
        old.execute(row)
    old.close()
    storage = await SqliteStorage.open(path)
    try:
        await _check_upgraded(storage)
        ids = (await storage.account("alice"), await storage.account("bob"))
    finally:
        await storage.close()
    # Opened again: nothing migrates twice, the ids stay.
    storage = await SqliteStorage.open(path)
    try:
        assert (await storage.account("alice"), await storage.account("bob")) == ids
    finally:
        await storage.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_backend.MIGRATIONS)
    finally:
        check.close()


async def test_a_postgres_schema_of_the_previous_release_is_upgraded() -> None:
    async for schema in postgres_schema():
        version = _before_principals(postgres_backend.MIGRATIONS)
        old = await asyncpg.connect(POSTGRES_URL)
        try:
            await old.execute(f'CREATE SCHEMA "{schema}"')
            await old.execute(f'SET search_path TO "{schema}"')
            for script in postgres_backend.MIGRATIONS[:version]:
                await old.execute(script)
            await old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            await old.execute("INSERT INTO schema_version VALUES ($1)", version)
            for row in OLD_ROWS:
                await old.execute(row)
        finally:
            await old.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        try:
            await _check_upgraded(storage)
            ids = (await storage.account("alice"), await storage.account("bob"))
        finally:
            await storage.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        try:
            assert (await storage.account("alice"), await storage.account("bob")) == ids
        finally:
            await storage.close()
