"""Storage stamps times from the clock it is given (parley.clock), on every backend: the time
of a stored message and of a recorded account change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.storage import Account, NewMessage, Role, Storage
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema
from support import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgresql"])
async def timed_storage(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Storage]:
    if request.param == "sqlite":
        opened: Storage = await SqliteStorage.open(tmp_path / "db.sqlite3", clock=clock)
        yield opened
        await opened.close()
    else:
        async for schema in postgres_schema():
            opened = await PostgresStorage.open(POSTGRES_URL, schema=schema, clock=clock)
            yield opened
            await opened.close()


async def test_messages_are_stamped_by_the_given_clock(
    timed_storage: Storage, clock: FakeClock
) -> None:
    [first] = await timed_storage.append([NewMessage("#a", "Alice", "a", "#a", "one", "m1")])
    clock.advance(3600)
    [second] = await timed_storage.append([NewMessage("#a", "Alice", "a", "#a", "two", "m2")])
    assert second.ts - first.ts == 3_600_000
    assert [m.ts for m in await timed_storage.history("#a", limit=5)] == [first.ts, second.ts]


async def test_account_changes_are_stamped_by_the_given_clock(
    timed_storage: Storage, clock: FakeClock
) -> None:
    await timed_storage.create_account(Account("alice", "Alice", "h", Role.USER, 1))
    assert await timed_storage.update_account("alice", role=Role.MODERATOR)
    changed_ms = clock.now_ms()
    clock.advance(86_400)
    assert await timed_storage.forget_account_changes(changed_ms) == 0
    assert await timed_storage.forget_account_changes(changed_ms + 1) == 1
