"""The Storage contract for shared files' metadata, run against every backend (see conftest.py)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from parley.storage import FIRST_FILE, Account, FileRecord, Role, Storage, StorageUnavailable
from parley.storage import postgres as postgres_backend
from parley.storage import sqlite as sqlite_backend
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema

NOW = 1_700_000_000_000
HOUR = 3_600_000
SHA = "a" * 64
OTHER_SHA = "0123456789abcdef" * 4

# Display names the server may pass on: odd Unicode, quotes, placeholders, the longest allowed.
NAMES = [
    "'; DROP TABLE files; --.txt",
    '"double" \\back\\slash %s %(x)s $1 ? :name.pdf',
    "\U0001f600 \u202eevil\u202c \u200b\ufeff.png",
    "cafe\u0301 vs caf\u00e9 \uff21\uff22\uff23 \u0130stanbul \u00df.md",
    "x" * 251 + ".bin",
    "\u4e2d" * 255,
]


def fid(n: int) -> str:
    return f"{n:032x}"


def shared(n: int, **changes: Any) -> FileRecord:
    """File number ``n``: alice's, in #room, incomplete, created at NOW + n, expiring in an hour."""
    record = FileRecord(
        file_id=fid(n),
        sha256=SHA,
        name=f"file{n}.txt",
        size=100,
        sender_key="alice",
        sender="Alice",
        conversation="#room",
        to="#Room",
        created_ms=NOW + n,
        expires_ms=NOW + HOUR,
        quota_key="alice",
    )
    return dataclasses.replace(record, **changes)


def ids(files: list[FileRecord]) -> list[str]:
    return [f.file_id for f in files]


async def test_a_file_comes_back_exactly_as_stored(storage: Storage) -> None:
    assert await storage.file(fid(1)) is None
    records = [
        shared(n, name=name, sender=name, to=name, size=n * 1_000_000_007)
        for n, name in enumerate(NAMES, start=1)
    ]
    for record in records:
        await storage.add_file(record, ["bob"])
    for record in records:
        assert await storage.file(record.file_id) == record
    done = shared(99, complete=True, size=0)
    await storage.add_file(done, [])
    assert await storage.file(fid(99)) == done


async def test_a_nul_in_a_name_is_kept_exactly_or_refused(storage: Storage) -> None:
    # The server never passes one; SQLite keeps it, PostgreSQL text cannot hold it.
    try:
        await storage.add_file(shared(1, name="a\x00b.txt"), ["bob"])
    except StorageUnavailable:
        assert await storage.file(fid(1)) is None
    else:
        assert await storage.file(fid(1)) == shared(1, name="a\x00b.txt")


async def test_a_file_id_is_stored_once(storage: Storage) -> None:
    await storage.add_file(shared(1), ["bob"])
    with pytest.raises(StorageUnavailable):
        await storage.add_file(shared(1, name="other.txt"), ["carol"])
    # Nothing of the refused call was kept.
    assert await storage.file(fid(1)) == shared(1)
    assert not await storage.may_read_file(fid(1), "carol")


async def test_readers_and_the_sender_may_read_strangers_may_not(storage: Storage) -> None:
    await storage.add_file(shared(1), ["bob", "carol", "bob"])  # a duplicate is ignored
    await storage.add_file(shared(2), [])
    for file_id in (fid(1), fid(2)):
        assert await storage.may_read_file(file_id, "alice")  # incomplete: still the sender's
    assert await storage.may_read_file(fid(1), "bob")
    assert await storage.may_read_file(fid(1), "carol")
    assert not await storage.may_read_file(fid(1), "mallory")
    assert not await storage.may_read_file(fid(2), "bob")
    assert not await storage.may_read_file(fid(3), "alice")  # no such file
    # Keys are compared exactly: the server folds case before it asks.
    assert not await storage.may_read_file(fid(1), "Bob")


async def test_a_readable_file_is_complete_unexpired_and_the_reader_s(storage: Storage) -> None:
    await storage.add_file(shared(1, complete=True), ["bob"])
    await storage.add_file(shared(2), ["bob"])  # unfinished
    await storage.add_file(shared(3, complete=True, expires_ms=NOW + 10), ["bob"])
    assert await storage.readable_file(fid(1), "bob", NOW) == shared(1, complete=True)
    assert await storage.readable_file(fid(1), "alice", NOW) == shared(1, complete=True)
    assert await storage.readable_file(fid(1), "mallory", NOW) is None
    assert await storage.readable_file(fid(1), "Bob", NOW) is None  # keys compared exactly
    assert await storage.readable_file(fid(2), "bob", NOW) is None
    assert await storage.readable_file(fid(2), "alice", NOW) is None  # even for its sender
    assert await storage.readable_file(fid(3), "bob", NOW + 9) is not None
    assert await storage.readable_file(fid(3), "bob", NOW + 10) is None  # expired
    assert await storage.readable_file(fid(4), "bob", NOW) is None  # no such file


async def test_completion_makes_a_file_listable(storage: Storage) -> None:
    await storage.add_file(shared(1, expires_ms=NOW + 10), ["bob"])
    assert await storage.readable_files("bob", None, NOW, 10) == []
    assert await storage.readable_files("alice", None, NOW, 10) == []
    assert await storage.complete_file(fid(1), NOW + 7 * 24 * HOUR)
    expected = shared(1, complete=True, expires_ms=NOW + 7 * 24 * HOUR)
    assert await storage.file(fid(1)) == expected
    assert await storage.readable_files("bob", None, NOW, 10) == [expected]
    assert await storage.readable_files("alice", None, NOW, 10) == [expected]
    assert await storage.readable_files("mallory", None, NOW, 10) == []
    assert not await storage.complete_file(fid(2), NOW)
    # Completing again only moves the expiry.
    assert await storage.complete_file(fid(1), NOW + HOUR)
    assert await storage.file(fid(1)) == shared(1, complete=True, expires_ms=NOW + HOUR)


async def test_expiry_moves_a_file_from_listable_to_expired(storage: Storage) -> None:
    await storage.add_file(shared(1, complete=True, expires_ms=NOW + 10), ["bob"])
    await storage.add_file(shared(2, expires_ms=NOW + 5), ["bob"])  # an abandoned upload
    assert ids(await storage.readable_files("bob", None, NOW + 9, 10)) == [fid(1)]
    assert await storage.expired_files(NOW + 4, 10) == []
    assert ids(await storage.expired_files(NOW + 5, 10)) == [fid(2)]
    # expires_ms is the first moment the file is gone.
    assert await storage.readable_files("bob", None, NOW + 10, 10) == []
    assert await storage.readable_files("alice", None, NOW + 10, 10) == []
    assert ids(await storage.expired_files(NOW + 10, 10)) == [fid(2), fid(1)]


async def test_readable_files_newest_first_within_a_limit(storage: Storage) -> None:
    # Two files share a creation time: file_id breaks the tie.
    for n, created in [(1, NOW), (2, NOW + 2), (3, NOW + 2), (4, NOW + 1), (5, NOW + 3)]:
        await storage.add_file(shared(n, complete=True, created_ms=created), ["bob"])
    expected = [fid(5), fid(2), fid(3), fid(4), fid(1)]
    assert ids(await storage.readable_files("bob", None, NOW, 10)) == expected
    assert ids(await storage.readable_files("bob", None, NOW, 2)) == expected[:2]
    assert ids(await storage.readable_files("alice", None, NOW, 3)) == expected[:3]


async def test_readable_files_page_after_the_last_one_seen(storage: Storage) -> None:
    # Ties on the creation time are paged through by file_id, never repeated or skipped.
    for n, created in [(1, NOW), (2, NOW + 2), (3, NOW + 2), (4, NOW + 1), (5, NOW + 3)]:
        await storage.add_file(shared(n, complete=True, created_ms=created), ["bob"])
    seen: list[str] = []
    after = FIRST_FILE
    while page := await storage.readable_files("bob", None, NOW, 2, after):
        seen += ids(page)
        after = (page[-1].created_ms, page[-1].file_id)
    assert seen == [fid(5), fid(2), fid(3), fid(4), fid(1)]
    assert ids(await storage.readable_files("bob", "#room", NOW, 10, (NOW + 2, fid(2)))) == [
        fid(3),
        fid(4),
        fid(1),
    ]


async def test_readable_files_of_one_conversation(storage: Storage) -> None:
    await storage.add_file(shared(1, complete=True), ["bob", "carol"])
    await storage.add_file(shared(2, complete=True, conversation="#other", to="#Other"), ["bob"])
    await storage.add_file(shared(3, complete=True, conversation="dm:alice:bob", to="Bob"), ["bob"])
    # Bob's own upload, with alice among its readers and bob among them too.
    await storage.add_file(
        shared(4, complete=True, sender_key="bob", sender="Bob"), ["alice", "bob", "carol"]
    )
    assert ids(await storage.readable_files("bob", None, NOW, 10)) == [
        fid(4), fid(3), fid(2), fid(1),
    ]  # fmt: skip
    assert ids(await storage.readable_files("bob", "#room", NOW, 10)) == [fid(4), fid(1)]
    assert ids(await storage.readable_files("bob", "dm:alice:bob", NOW, 10)) == [fid(3)]
    assert ids(await storage.readable_files("carol", None, NOW, 10)) == [fid(4), fid(1)]
    assert ids(await storage.readable_files("carol", "#other", NOW, 10)) == []
    assert await storage.readable_files("bob", "#nowhere", NOW, 10) == []


async def test_pending_upload_finds_only_the_exact_unfinished_one(storage: Storage) -> None:
    name = NAMES[3]
    wanted = shared(1, name=name, size=4096)
    await storage.add_file(wanted, ["bob"])
    exact = ("alice", "#room", SHA, 4096, name, NOW)
    assert await storage.pending_upload(*exact) == wanted
    misses = [
        ("bob", "#room", SHA, 4096, name),
        ("alice", "#other", SHA, 4096, name),
        ("alice", "#room", OTHER_SHA, 4096, name),
        ("alice", "#room", SHA, 4095, name),
        ("alice", "#room", SHA, 4096, name.replace("e\u0301", "\u00e9")),  # not normalised
        ("alice", "#room", SHA, 4096, name.upper()),
    ]
    for miss in misses:
        assert await storage.pending_upload(*miss, NOW) is None, miss
    assert await storage.pending_upload("alice", "#room", SHA, 4096, name, NOW + HOUR) is None
    # The newest of several; a completed one is no longer pending.
    newer = shared(2, name=name, size=4096)
    await storage.add_file(newer, ["bob"])
    assert await storage.pending_upload(*exact) == newer
    assert await storage.complete_file(fid(2), NOW + HOUR)
    assert await storage.pending_upload(*exact) == wanted
    assert await storage.complete_file(fid(1), NOW + HOUR)
    assert await storage.pending_upload(*exact) is None


async def test_quota_counts_unexpired_files_complete_or_not(storage: Storage) -> None:
    assert await storage.quota_bytes("alice", NOW) == 0
    assert await storage.uploads_in_progress("alice", NOW) == 0
    big = 3 * 2**40  # beyond 32 bits, in case a backend sums in them
    await storage.add_file(shared(1, size=big, complete=True, expires_ms=NOW + 100), [])
    await storage.add_file(shared(2, size=20, expires_ms=NOW + 50), [])
    await storage.add_file(shared(3, size=300, expires_ms=NOW + 200), [])
    bobs = shared(4, size=4000, sender_key="bob", sender="Bob", quota_key="bob")
    await storage.add_file(bobs, [])
    # Guests' files count against their address's pool, whoever of them sent each.
    pool = "address:192.0.2.1"
    await storage.add_file(shared(5, size=7, sender_key="g1", quota_key=pool), [])
    await storage.add_file(shared(6, size=9, sender_key="g2", quota_key=pool), [])
    assert await storage.quota_bytes(pool, NOW) == 16
    assert await storage.uploads_in_progress("g1", NOW) == 1
    assert await storage.quota_bytes("alice", NOW) == big + 320
    assert await storage.uploads_in_progress("alice", NOW) == 2
    assert await storage.quota_bytes("alice", NOW + 50) == big + 300
    assert await storage.uploads_in_progress("alice", NOW + 50) == 1
    assert await storage.quota_bytes("alice", NOW + 100) == 300
    assert await storage.quota_bytes("alice", NOW + 200) == 0
    assert await storage.uploads_in_progress("alice", NOW + 200) == 0
    assert await storage.quota_bytes("bob", NOW) == 4000
    assert await storage.uploads_in_progress("bob", NOW) == 1
    assert await storage.complete_file(fid(4), NOW + HOUR)
    assert await storage.uploads_in_progress("bob", NOW) == 0
    assert await storage.quota_bytes("bob", NOW) == 4000


async def test_deleting_a_file_takes_its_readers(storage: Storage) -> None:
    await storage.add_file(shared(1, complete=True), ["bob"])
    await storage.add_file(shared(2, complete=True), ["bob"])
    assert await storage.delete_file(fid(1)) == shared(1, complete=True)
    assert await storage.delete_file(fid(1)) is None
    assert await storage.file(fid(1)) is None
    assert not await storage.may_read_file(fid(1), "bob")
    assert not await storage.may_read_file(fid(1), "alice")
    assert ids(await storage.readable_files("bob", None, NOW, 10)) == [fid(2)]
    # The id is free again, and bob is not a reader of what takes it.
    await storage.add_file(shared(1), ["carol"])
    assert not await storage.may_read_file(fid(1), "bob")
    assert await storage.may_read_file(fid(1), "carol")
    assert await storage.may_read_file(fid(2), "bob")


async def test_a_blob_is_in_use_until_its_last_file_goes(storage: Storage) -> None:
    assert not await storage.blob_in_use(SHA)
    await storage.add_file(shared(1, complete=True), ["bob"])
    await storage.add_file(shared(2), ["carol"])  # the same content, still uploading
    await storage.add_file(shared(3, sha256=OTHER_SHA), [])
    assert await storage.blob_in_use(SHA)
    assert await storage.delete_file(fid(1)) is not None
    assert await storage.blob_in_use(SHA)
    assert await storage.delete_file(fid(2)) is not None
    assert not await storage.blob_in_use(SHA)
    assert await storage.blob_in_use(OTHER_SHA)


async def test_expired_files_longest_expired_first_within_a_limit(storage: Storage) -> None:
    for n, expires in [(1, NOW + 3), (2, NOW + 1), (3, NOW + 2), (4, NOW + 1), (5, NOW + 9)]:
        await storage.add_file(shared(n, complete=n % 2 == 0, expires_ms=expires), [])
    assert ids(await storage.expired_files(NOW + 3, 10)) == [fid(2), fid(4), fid(3), fid(1)]
    assert ids(await storage.expired_files(NOW + 3, 2)) == [fid(2), fid(4)]
    # The sweeper deletes what it got and asks again.
    for record in await storage.expired_files(NOW + 3, 2):
        assert await storage.delete_file(record.file_id) == record
    assert ids(await storage.expired_files(NOW + 3, 10)) == [fid(3), fid(1)]


async def test_a_closed_storage_refuses_file_calls(storage: Storage) -> None:
    await storage.close()
    with pytest.raises(StorageUnavailable):
        await storage.add_file(shared(1), [])
    with pytest.raises(StorageUnavailable):
        await storage.readable_files("alice", None, NOW, 10)


# --- migrations ---------------------------------------------------------------------------


def _before_files(migrations: list[str]) -> int:
    """The schema version just before the one that added the files tables."""
    return next(n for n, script in enumerate(migrations) if "CREATE TABLE files" in script)


async def _files_work(storage: Storage) -> None:
    await storage.add_file(shared(1, complete=True), ["bob"])
    assert ids(await storage.readable_files("bob", None, NOW, 10)) == [fid(1)]


async def test_an_sqlite_database_from_before_files_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    version = _before_files(sqlite_backend.MIGRATIONS)
    old = sqlite3.connect(path, isolation_level=None)
    for script in sqlite_backend.MIGRATIONS[:version]:
        old.executescript(script)
    old.execute(f"PRAGMA user_version = {version}")
    old.execute("INSERT INTO accounts VALUES ('alice', 'Alice', 'hash', 'user', 1)")
    old.close()
    storage = await SqliteStorage.open(path)
    try:
        alice = await storage.account("alice")
        assert alice is not None
        assert alice == Account("alice", "Alice", "hash", Role.USER, 1, alice.id)
        await _files_work(storage)
    finally:
        await storage.close()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_backend.MIGRATIONS)
    finally:
        check.close()
    # Opening the upgraded database again migrates nothing and loses nothing.
    storage = await SqliteStorage.open(path)
    try:
        assert await storage.file(fid(1)) == shared(1, complete=True)
        assert await storage.may_read_file(fid(1), "bob")
    finally:
        await storage.close()


async def test_a_postgres_schema_from_before_files_is_upgraded() -> None:
    async for schema in postgres_schema():
        version = _before_files(postgres_backend.MIGRATIONS)
        old = await asyncpg.connect(POSTGRES_URL)
        try:
            await old.execute(f'CREATE SCHEMA "{schema}"')
            await old.execute(f'SET search_path TO "{schema}"')
            for script in postgres_backend.MIGRATIONS[:version]:
                await old.execute(script)
            await old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            await old.execute("INSERT INTO schema_version VALUES ($1)", version)
            await old.execute("INSERT INTO accounts VALUES ('alice', 'Alice', 'hash', 'user', 1)")
        finally:
            await old.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        try:
            alice = await storage.account("alice")
            assert alice is not None
            assert alice == Account("alice", "Alice", "hash", Role.USER, 1, alice.id)
            await _files_work(storage)
        finally:
            await storage.close()
        storage = await PostgresStorage.open(POSTGRES_URL, schema=schema)
        try:
            assert await storage.file(fid(1)) == shared(1, complete=True)
            assert await storage.may_read_file(fid(1), "bob")
        finally:
            await storage.close()
        check = await asyncpg.connect(POSTGRES_URL)
        try:
            versions = await check.fetch(
                f'SELECT version FROM "{schema}".schema_version ORDER BY version'
            )
            assert [row[0] for row in versions] == list(
                range(version, len(postgres_backend.MIGRATIONS) + 1)
            )
        finally:
            await check.close()
