"""One schema for both backends: a new database and one migrated from the first version end in
the same schema, and in what parley.storage.schema describes, on SQLite and on PostgreSQL. An
upgrade keeps the data; a column added to any table changes nothing that is read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from schema_support import differences, expected, of_postgres, of_sqlite

from parley.storage import (
    Account,
    AuditEntry,
    FileRecord,
    NewMessage,
    Role,
    Room,
    Sanction,
    SanctionKind,
    Storage,
)
from parley.storage import postgres as postgres_backend
from parley.storage import sqlite as sqlite_backend
from parley.storage.dialect import POSTGRES, SQLITE
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema

# Rows of the first schema version.
FIRST_VERSION_ROWS = [
    "INSERT INTO accounts VALUES ('alice', 'Alice', 'h1', 'user', 1)",
    "INSERT INTO rooms VALUES ('#a', '#A', 'hi', 'Alice', 2, 'alice', 3, NULL)",
    "INSERT INTO members VALUES ('#a', 'alice', TRUE)",
    "INSERT INTO sanctions VALUES ('#a', 'bob', 'ban', NULL, 'Alice', 'spam', 4)",
]

# Rows of the version before the last: sanctions' "by" column in SQLite, and messages.
PREVIOUS_VERSION_ROWS = [
    "INSERT INTO accounts (key, name, password_hash, role, created_ms, id, skeleton) "
    "VALUES ('alice', 'Alice', 'h1', 'user', 1, 'id-alice', 'alice')",
    "INSERT INTO sanctions VALUES ('#a', 'id-bob', 'mute', 99, 'Alice', 'spam', 4)",
    "INSERT INTO conversations VALUES ('#a', 1)",
    "INSERT INTO messages VALUES ('#a', 1, 5, 'Alice', 'id-alice', '#A', 'hello', 'm1')",
]


# Schemas as fixtures: dropped after the test whether it passes or fails.
@pytest.fixture
async def new_schema() -> AsyncIterator[str]:
    async for schema in postgres_schema():
        yield schema


@pytest.fixture
async def old_schema() -> AsyncIterator[str]:
    async for schema in postgres_schema():
        yield schema


def _sqlite_at(path: Path, version: int, rows: list[str]) -> None:
    """A SQLite database at schema ``version``, as the release that had it made it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for step in sqlite_backend.MIGRATIONS[:version]:
            if isinstance(step, str):
                db.executescript(step)
            else:
                step(db)
        db.execute(f"PRAGMA user_version = {version}")
        for row in rows:
            db.execute(row)
    finally:
        db.close()


async def _postgres_at(schema: str, version: int, rows: list[str]) -> None:
    db = await asyncpg.connect(POSTGRES_URL)
    try:
        await db.execute(f'CREATE SCHEMA "{schema}"')
        await db.execute(f'SET search_path TO "{schema}"')
        async with db.transaction():
            for step in postgres_backend.MIGRATIONS[:version]:
                if isinstance(step, str):
                    await db.execute(step)
                else:
                    await step(db)
        await db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        await db.execute("INSERT INTO schema_version VALUES ($1)", version)
        for row in rows:
            await db.execute(row)
    finally:
        await db.close()


async def test_both_backends_migrate_to_the_one_schema(tmp_path: Path) -> None:
    assert len(sqlite_backend.MIGRATIONS) == len(postgres_backend.MIGRATIONS)
    await (await SqliteStorage.open(tmp_path / "new.sqlite3")).close()
    _sqlite_at(tmp_path / "old.sqlite3", 1, FIRST_VERSION_ROWS)
    migrated = await SqliteStorage.open(tmp_path / "old.sqlite3")
    try:
        assert (await migrated.sanction("#a", "xbob", SanctionKind.BAN, 0)) == Sanction(
            "#a", "xbob", SanctionKind.BAN, None, "Alice", "spam", 4
        )
    finally:
        await migrated.close()
    new_shape = of_sqlite(str(tmp_path / "new.sqlite3"))
    assert differences(new_shape, expected(SQLITE)) == []
    assert differences(of_sqlite(str(tmp_path / "old.sqlite3")), new_shape) == []


async def test_both_postgres_paths_end_in_the_one_schema(new_schema: str, old_schema: str) -> None:
    await (await PostgresStorage.open(POSTGRES_URL, schema=new_schema)).close()
    await _postgres_at(old_schema, 1, FIRST_VERSION_ROWS)
    migrated = await PostgresStorage.open(POSTGRES_URL, schema=old_schema)
    try:
        assert await migrated.memberships("alice") == {"#a": True}
    finally:
        await migrated.close()
    new_shape = await of_postgres(POSTGRES_URL, new_schema)
    assert differences(new_shape, expected(POSTGRES)) == []
    assert differences(await of_postgres(POSTGRES_URL, old_schema), new_shape) == []


def test_the_schema_check_sees_a_drifted_column(tmp_path: Path) -> None:
    """The check itself: a column named otherwise than the description says is found."""
    _sqlite_at(tmp_path / "v4.sqlite3", 4, [])
    found = differences(of_sqlite(str(tmp_path / "v4.sqlite3")), expected(SQLITE))
    assert any(line.startswith("sanctions.columns") for line in found)


async def _check_previous_data(storage: Storage) -> None:
    mute = await storage.sanction("#a", "id-bob", SanctionKind.MUTE, 0)
    assert mute == Sanction("#a", "id-bob", SanctionKind.MUTE, 99, "Alice", "spam", 4)
    assert [m.text for m in await storage.history("#a", limit=5)] == ["hello"]
    # The message's identity is still unique under its index's new name: a retry is known.
    [again] = await storage.append([NewMessage("#a", "Alice", "id-alice", "#A", "hello", "m1")])
    assert again.duplicate and again.seq == 1


async def test_an_sqlite_database_of_the_previous_version_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "previous.sqlite3"
    _sqlite_at(path, len(sqlite_backend.MIGRATIONS) - 1, PREVIOUS_VERSION_ROWS)
    storage = await SqliteStorage.open(path)
    try:
        await _check_previous_data(storage)
    finally:
        await storage.close()


async def test_a_postgres_database_of_the_previous_version_keeps_its_data(
    old_schema: str,
) -> None:
    await _postgres_at(old_schema, len(postgres_backend.MIGRATIONS) - 1, PREVIOUS_VERSION_ROWS)
    storage = await PostgresStorage.open(POSTGRES_URL, schema=old_schema)
    try:
        await _check_previous_data(storage)
    finally:
        await storage.close()


# --- a column added to every table -------------------------------------------------------


async def _exercise(storage: Storage) -> None:
    """Write and read back a row of every kind."""
    alice = Account("alice", "Alice", "h", Role.ADMIN, 1, id="a" * 32)
    assert await storage.create_account(alice)
    assert await storage.account("alice") == alice
    assert await storage.accounts() == [alice]
    room = Room("#r", "#R", "topic", "Alice", 2, alice.id, 3, 7)
    assert await storage.create_room(room)
    assert await storage.room("#r") == room
    assert await storage.rooms(limit=5) == [room]
    await storage.add_member("#r", "alice", operator=True)
    assert await storage.memberships("alice") == {"#r": True}
    ban = Sanction("#r", "b" * 32, SanctionKind.BAN, None, "Alice", "why", 4)
    await storage.add_sanction(ban)
    assert await storage.sanction("#r", "b" * 32, SanctionKind.BAN, 0) == ban
    await storage.record_audit(ts=5, actor="Alice", action="ban", room="#R", target="Bob")
    assert await storage.audit_log(1) == [AuditEntry(1, 5, "Alice", "ban", "#R", "Bob", "")]
    [stored] = await storage.append([NewMessage("#r", "Alice", alice.id, "#R", "hi", "m1")])
    assert await storage.history("#r", limit=5) == [stored]
    assert [(u.conversation, u.count) for u in await storage.unread("alice", "", 100)] == [
        ("#r", 1)
    ]
    record = FileRecord("f" * 32, "0" * 64, "a.txt", 3, alice.id, "Alice", "#r", "#R", 6, 10**15,
                        True, alice.id)  # fmt: skip
    await storage.add_file(record, ["c" * 32])
    assert await storage.file(record.file_id) == record
    assert await storage.readable_files("c" * 32, "#r", 7, 5) == [record]
    assert await storage.delete_file(record.file_id) == record
    assert await storage.count_attempts(["k"], 8, 0) == [(1, 0)]
    assert await storage.update_account("alice", role=Role.USER)
    assert await storage.account_changes(0, 5) == [(1, "alice")]


ALTER = "ALTER TABLE {} ADD COLUMN added_later TEXT NOT NULL DEFAULT 'x'"


async def test_a_column_added_to_every_sqlite_table_changes_no_read(tmp_path: Path) -> None:
    path = tmp_path / "wider.sqlite3"
    await (await SqliteStorage.open(path)).close()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for table in expected(SQLITE):
            db.execute(ALTER.format(table))
    finally:
        db.close()
    storage = await SqliteStorage.open(path)
    try:
        await _exercise(storage)
    finally:
        await storage.close()


async def test_a_column_added_to_every_postgres_table_changes_no_read(new_schema: str) -> None:
    await (await PostgresStorage.open(POSTGRES_URL, schema=new_schema)).close()
    db = await asyncpg.connect(POSTGRES_URL)
    try:
        for table in expected(POSTGRES):
            await db.execute(ALTER.format(f'"{new_schema}".{table}'))
    finally:
        await db.close()
    storage = await PostgresStorage.open(POSTGRES_URL, schema=new_schema)
    try:
        await _exercise(storage)
    finally:
        await storage.close()


async def test_two_openers_of_a_new_sqlite_file_both_get_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "raced.sqlite3"
    for _ in range(20):
        for made in tmp_path.iterdir():
            made.unlink()
        first, second = await asyncio.gather(SqliteStorage.open(path), SqliteStorage.open(path))
        try:
            assert await first.create_room(Room("#r", "#R"))
            assert await second.room("#r") == Room("#r", "#R")
        finally:
            await first.close()
            await second.close()
    assert differences(of_sqlite(str(path)), expected(SQLITE)) == []
