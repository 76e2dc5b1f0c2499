"""Choosing and opening the storage a server runs on, from its ``--database`` URL.

URLs follow the convention Python users know from SQLAlchemy: ``sqlite:///relative/path``
(three slashes: relative to the current directory), ``sqlite:////absolute/path`` (four),
``sqlite:///:memory:``, and ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.parse
from pathlib import Path

from parley.clock import SYSTEM_CLOCK, Clock
from parley.storage import Storage, StorageUnavailable
from parley.storage.sqlite import SqliteStorage

DEFAULT_FILE = "parley.sqlite3"
MEMORY = ":memory:"
_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


def sqlite_path(database: str | None, data_dir: Path) -> Path | str | None:
    """The SQLite file ``database`` names (``MEMORY`` for an in-memory one), or None when it
    is a PostgreSQL URL. Raises ValueError for anything else.
    """
    if database is None:
        return data_dir / DEFAULT_FILE
    if database in ("sqlite://:memory:", "sqlite:///:memory:"):
        return MEMORY
    if database.startswith(_SQLITE) and len(database) > len(_SQLITE):
        # The prefix's third slash ends the (empty) host; a fourth starts an absolute path.
        return Path(database.removeprefix(_SQLITE))
    if database.startswith(_POSTGRES):
        return None
    raise ValueError(
        f"--database {database!r} is not a database URL: use sqlite:///relative/path, "
        "sqlite:////absolute/path or postgresql://USER@HOST/DB (default: a SQLite file in "
        "the data dir)."
    )


def describe(database: str | None, data_dir: Path) -> str:
    """The database in words for the start-up line, with no password in it."""
    path = sqlite_path(database, data_dir)
    if path == MEMORY:
        return "SQLite in memory (nothing is kept after the server stops)"
    if isinstance(path, Path):
        return f"SQLite {path.absolute()}"
    assert database is not None
    url = urllib.parse.urlsplit(database)
    user = f"{url.username}@" if url.username else ""
    port = f":{url.port}" if url.port else ""
    return f"PostgreSQL {user}{url.hostname or 'localhost'}{port}{url.path}"


async def open_storage(
    database: str | None,
    data_dir: Path,
    *,
    clock: Clock = SYSTEM_CLOCK,
    sqlite_synchronous: str = "full",
) -> Storage:
    """Open and migrate the storage named by ``database`` (see :func:`sqlite_path`); None is
    the SQLite file in ``data_dir``, which is made (mode 0700) if missing. A SQLite database
    commits with ``sqlite_synchronous`` ("full" or "normal"; PostgreSQL has its own
    ``synchronous_commit``). Raises ValueError for a URL that is not a database's, or another
    ``sqlite_synchronous``; StorageUnavailable when it cannot be opened.
    """
    path = sqlite_path(database, data_dir)
    if database is None:
        await asyncio.to_thread(data_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
    if isinstance(path, Path):
        await asyncio.to_thread(_create_private, path)
    if path is not None:
        return await SqliteStorage.open(path, clock=clock, synchronous=sqlite_synchronous)
    assert database is not None
    from parley.storage.postgres import PostgresStorage

    try:
        return await PostgresStorage.open(database, clock=clock)
    except StorageUnavailable as exc:
        raise StorageUnavailable(_postgres_refusal(database, exc.__cause__ or exc)) from exc


def _create_private(path: Path) -> None:
    """Make a new database file readable by its owner only. SQLite gives its WAL and SHM
    files the database file's mode, so they are private too, whatever the umask.
    """
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _postgres_refusal(database: str, cause: BaseException) -> str:
    """Why PostgreSQL could not be reached, and what to check, in one line."""
    url = urllib.parse.urlsplit(database)
    where = f"{url.hostname or 'localhost'}:{url.port or 5432}"
    reason = str(cause).strip()
    if isinstance(cause, TimeoutError):
        reason = "no answer within 10 seconds"
    elif isinstance(cause, ConnectionRefusedError):
        reason = "connection refused"
    elif not reason:
        reason = type(cause).__name__
    if isinstance(cause, OSError):
        check = "check that PostgreSQL runs there and that --database names the right host and port"
    else:
        check = "check the user, password and database name in --database"
    return f"Cannot connect to PostgreSQL at {where}: {reason}; {check}."
