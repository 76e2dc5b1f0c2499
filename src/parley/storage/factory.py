"""Choosing and opening the storage a server runs on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from parley.storage import Storage
from parley.storage.sqlite import SqliteStorage

DEFAULT_FILE = "parley.sqlite3"


async def open_storage(database: str | None, data_dir: Path) -> Storage:
    """Open and migrate the storage named by ``database``: None for the SQLite file in
    ``data_dir``, ``sqlite:///PATH`` for another SQLite file, ``sqlite://:memory:`` for one that
    lasts as long as the process, ``postgresql://USER@HOST[:PORT]/DB`` for PostgreSQL. Raises
    ValueError for anything else, StorageUnavailable when it cannot be opened.
    """
    if database is None:
        await asyncio.to_thread(data_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        return await SqliteStorage.open(data_dir / DEFAULT_FILE)
    if database == "sqlite://:memory:":
        return await SqliteStorage.open(":memory:")
    if database.startswith("sqlite:///"):
        return await SqliteStorage.open(Path(database.removeprefix("sqlite://")))
    if database.startswith(("postgresql://", "postgres://")):
        from parley.storage.postgres import PostgresStorage

        return await PostgresStorage.open(database)
    raise ValueError(
        f"Unknown database {database!r}: use postgresql://USER@HOST/DB or sqlite:///PATH "
        "(default: a SQLite file in the data dir)."
    )
