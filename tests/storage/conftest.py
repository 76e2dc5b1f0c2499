"""One storage per test for every backend: SQLite in memory, SQLite in a file, PostgreSQL
(a schema of its own per test, dropped afterwards, so parallel and repeated runs never meet).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.storage import Storage
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgresql"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "sqlite-memory":
        opened: Storage = await SqliteStorage.open(":memory:")
        yield opened
        await opened.close()
    elif request.param == "sqlite-file":
        opened = await SqliteStorage.open(tmp_path / "parley.sqlite3")
        yield opened
        await opened.close()
    else:
        async for schema in postgres_schema():
            opened = await PostgresStorage.open(POSTGRES_URL, schema=schema)
            yield opened
            await opened.close()
