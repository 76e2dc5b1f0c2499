"""Look-alike account and room names in storage, against every backend (see conftest.py), and
the upgrade of databases made before skeletons were kept, which may hold look-alikes already.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg

from parley.storage import Account, Role, Room, Storage, skeletons
from parley.storage import postgres as postgres_backend
from parley.storage import sqlite as sqlite_backend
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema

CYRILLIC_ALICE = "\u0410lice"
CYRILLIC_GENERAL = "#g\u0435neral"


def account(name: str, created_ms: int = 1) -> Account:
    # A fixed id per name, so that an account read back compares equal to the one made.
    return Account(name.casefold(), name, "hash", Role.USER, created_ms, id=f"id-{name.casefold()}")


def room(name: str, created_ms: int = 1) -> Room:
    return Room(key=name.casefold(), name=name, created_by="alice", created_ms=created_ms)


async def test_an_account_that_looks_like_another_is_not_created(storage: Storage) -> None:
    assert await storage.create_account(account("Alice"))
    for look_alike in [CYRILLIC_ALICE, "aIice", "Al\u0456ce"]:
        assert not await storage.create_account(account(look_alike))
        assert await storage.account(look_alike.casefold()) is None
        assert await storage.account_like(look_alike) == account("Alice")
    assert await storage.account_like("Alice") == account("Alice")
    assert await storage.account_like("Alicia") is None
    assert await storage.create_account(account("Alicia"))
    assert [a.name for a in await storage.accounts()] == ["Alice", "Alicia"]


async def test_a_name_is_free_again_when_its_account_is_deleted(storage: Storage) -> None:
    assert await storage.create_account(account("Alice"))
    assert await storage.delete_account("alice")
    assert await storage.account_like(CYRILLIC_ALICE) is None
    assert await storage.create_account(account(CYRILLIC_ALICE))


async def test_a_room_that_looks_like_another_is_not_created(storage: Storage) -> None:
    assert await storage.create_room(room("#general"))
    assert not await storage.create_room(room(CYRILLIC_GENERAL))
    assert not await storage.create_room(room("#generaI"))
    assert await storage.room(CYRILLIC_GENERAL.casefold()) is None
    assert await storage.room_like(CYRILLIC_GENERAL) == room("#general")
    assert await storage.room_like("#generals") is None
    assert await storage.rooms() == [room("#general")]
    # The room's other columns come back as they were.
    assert await storage.set_topic("#general", "hello", "Alice", 5)
    found = await storage.room_like("#GENERAL")
    assert found is not None and (found.topic, found.topic_by, found.topic_ms) == (
        "hello",
        "Alice",
        5,
    )


# --- upgrading a database that holds look-alikes ------------------------------------------

_SKELETON_STEP = sqlite_backend.MIGRATIONS.index(sqlite_backend._keep_skeletons)
_PG_SKELETON_STEP = postgres_backend.MIGRATIONS.index(postgres_backend._keep_skeletons)

# Made by the release before skeletons: Alice first, then a look-alike of her; two rooms alike.
_OLD_ACCOUNTS = [("alice", "Alice", 1), ("\u0430lice", CYRILLIC_ALICE, 2), ("bob", "Bob", 3)]
_OLD_ROOMS = [("#general", "#general", 1), (CYRILLIC_GENERAL, CYRILLIC_GENERAL, 2)]


async def _after_upgrade(storage: Storage) -> None:
    # Everyone keeps their name; lookups find the oldest of each group.
    assert sorted(a.name for a in await storage.accounts()) == ["Alice", "Bob", CYRILLIC_ALICE]
    assert await storage.account("\u0430lice") == Account(
        "\u0430lice", CYRILLIC_ALICE, "hash", Role.USER, 2, id="id-\u0430lice"
    )
    alice = await storage.account_like("aIice")
    assert alice is not None and alice.name == "Alice"
    # New look-alikes are refused, of either.
    assert not await storage.create_account(account("A\u0406ice"))
    assert not await storage.create_account(account("B\u043eb"))
    # With the oldest gone, the later look-alike still holds the name.
    assert await storage.delete_account("alice")
    still = await storage.account_like("Alice")
    assert still is not None and still.name == CYRILLIC_ALICE
    assert not await storage.create_account(account("Alice", created_ms=9))
    assert sorted(r.name for r in await storage.rooms()) == ["#general", CYRILLIC_GENERAL]
    general = await storage.room_like("#general")
    assert general is not None and general.name == "#general"
    assert not await storage.create_room(room("#gener\u0430l"))


async def test_a_sqlite_database_with_look_alikes_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    for step in sqlite_backend.MIGRATIONS[:_SKELETON_STEP]:
        assert isinstance(step, str)
        old.executescript(step)
    old.execute(f"PRAGMA user_version = {_SKELETON_STEP}")
    for key, name, created in _OLD_ACCOUNTS:
        old.execute(
            "INSERT INTO accounts (key, name, password_hash, role, created_ms, id) "
            "VALUES (?, ?, 'hash', 'user', ?, ?)",
            (key, name, created, f"id-{key}"),
        )
    for key, name, created in _OLD_ROOMS:
        old.execute(
            "INSERT INTO rooms (key, name, topic, topic_by, topic_ms, created_by, created_ms) "
            "VALUES (?, ?, '', '', 0, 'alice', ?)",
            (key, name, created),
        )
    old.commit()
    old.close()
    storage = await SqliteStorage.open(path)
    try:
        await _after_upgrade(storage)
    finally:
        await storage.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_backend.MIGRATIONS)
    finally:
        check.close()
    # Opening it again migrates nothing and keeps what the first opening did.
    storage = await SqliteStorage.open(path)
    try:
        assert not await storage.create_account(account("Alice", created_ms=9))
    finally:
        await storage.close()


async def test_a_postgres_schema_with_look_alikes_is_upgraded() -> None:
    async for schema in postgres_schema():
        old = await asyncpg.connect(POSTGRES_URL)
        try:
            await old.execute(f'CREATE SCHEMA "{schema}"')
            await old.execute(f'SET search_path TO "{schema}"')
            for step in postgres_backend.MIGRATIONS[:_PG_SKELETON_STEP]:
                assert isinstance(step, str)
                await old.execute(step)
            await old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            await old.execute("INSERT INTO schema_version VALUES ($1)", _PG_SKELETON_STEP)
            for key, name, created in _OLD_ACCOUNTS:
                await old.execute(
                    "INSERT INTO accounts (key, name, password_hash, role, created_ms, id) "
                    "VALUES ($1, $2, 'hash', 'user', $3, $4)",
                    key,
                    name,
                    created,
                    f"id-{key}",
                )
            for key, name, created in _OLD_ROOMS:
                await old.execute(
                    "INSERT INTO rooms (key, name, topic, topic_by, topic_ms, created_by, "
                    "created_ms) VALUES ($1, $2, '', '', 0, 'alice', $3)",
                    key,
                    name,
                    created,
                )
        finally:
            await old.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        try:
            await _after_upgrade(storage)
        finally:
            await storage.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        try:
            assert not await storage.create_account(account("Alice", created_ms=9))
        finally:
            await storage.close()
        check = await asyncpg.connect(POSTGRES_URL)
        try:
            versions = await check.fetch(
                f'SELECT version FROM "{schema}".schema_version ORDER BY version'
            )
            assert [row[0] for row in versions] == list(
                range(_PG_SKELETON_STEP, len(postgres_backend.MIGRATIONS) + 1)
            )
        finally:
            await check.close()


# --- skeletons from another ICU -----------------------------------------------------------

OTHER_DATA = "ICU 1.0, Unicode 1.1"


async def test_sqlite_skeletons_from_other_data_are_computed_again(tmp_path: Path) -> None:
    path = tmp_path / "parley.sqlite3"
    storage = await SqliteStorage.open(path)
    assert await storage.create_account(account("Alice"))
    await storage.close()
    # As if another ICU had computed them.
    db = sqlite3.connect(path)
    db.execute("UPDATE accounts SET skeleton = 'other'")
    db.execute("UPDATE skeleton_data SET data = ?", (OTHER_DATA,))
    db.commit()
    db.close()
    storage = await SqliteStorage.open(path)
    try:
        assert await storage.account_like("aIice") == account("Alice")
        assert not await storage.create_account(account("aIice"))
    finally:
        await storage.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT data FROM skeleton_data").fetchall() == [(skeletons.DATA,)]
    finally:
        db.close()


async def test_postgres_skeletons_from_other_data_are_computed_again() -> None:
    async for schema in postgres_schema():
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        assert await storage.create_account(account("Alice"))
        await storage.close()
        db = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
        try:
            await db.execute("UPDATE accounts SET skeleton = 'other'")
            await db.execute("UPDATE skeleton_data SET data = $1", OTHER_DATA)
        finally:
            await db.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        try:
            assert await storage.account_like("aIice") == account("Alice")
            assert not await storage.create_account(account("aIice"))
        finally:
            await storage.close()
        db = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": schema})
        try:
            assert await db.fetchval("SELECT data FROM skeleton_data") == skeletons.DATA
        finally:
            await db.close()
