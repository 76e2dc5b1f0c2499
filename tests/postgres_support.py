"""A PostgreSQL schema of its own for a test: at 127.0.0.1:5432 unless PARLEY_TEST_POSTGRES_URL
says otherwise; skipped without the server, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

POSTGRES_URL = os.environ.get(
    "PARLEY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema name on the test server; dropped afterwards."""
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")
    schema = f"parley_test_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def postgres_database() -> AsyncIterator[str]:
    """A ``--database`` URL whose tables go in a fresh schema of their own (made here, dropped
    afterwards): a server started on it cannot meet another test's tables, or another
    version's.
    """
    async for schema in postgres_schema():
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await admin.close()
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}search_path={schema}"
