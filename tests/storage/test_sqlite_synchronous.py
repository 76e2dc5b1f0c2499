"""``sqlite_synchronous``: the level a SQLite database's commits use, read back from the
writing connection, kept after the writes that skip the disk on purpose, and checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.storage import NewMessage
from parley.storage.factory import open_storage
from parley.storage.sqlite import SqliteStorage


@pytest.mark.parametrize("level", ["full", "normal"])
async def test_the_level_is_the_writing_connections(tmp_path: Path, level: str) -> None:
    storage = await open_storage(None, tmp_path, sqlite_synchronous=level)
    assert isinstance(storage, SqliteStorage)
    try:
        assert await storage.synchronous() == level
        # A write that never waits for the disk (a file ticket's) puts the level back after it.
        await storage.forget_tickets(0)
        assert await storage.synchronous() == level
        stored = await storage.append([NewMessage("#a", "Ann", "ann", "#a", "hi", "m1")])
        assert [message.seq for message in stored] == [1]
        assert await storage.synchronous() == level
    finally:
        await storage.close()


async def test_the_default_waits_for_the_disk(tmp_path: Path) -> None:
    storage = await SqliteStorage.open(tmp_path / "parley.sqlite3")
    try:
        assert await storage.synchronous() == "full"
    finally:
        await storage.close()


async def test_another_level_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite_synchronous 'off' is not one of 'full', 'normal'"):
        await SqliteStorage.open(tmp_path / "parley.sqlite3", synchronous="off")
    # Refused before anything was made.
    assert not (tmp_path / "parley.sqlite3").exists()
