"""The history epoch in storage: a run with synchronous "normal" that did not stop cleanly
raises it at the next start (and takes read markers back to what the conversations still
hold); a clean stop, "full", and PostgreSQL keep it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.storage import Account, NewMessage, Role, RunStart
from parley.storage.postgres import PostgresStorage
from parley.storage.sqlite import SqliteStorage
from postgres_support import POSTGRES_URL, postgres_schema


async def _run(path: Path, synchronous: str, *, clean: bool) -> RunStart:
    """One server run on ``path``: its start, a message, and a clean stop or none."""
    storage = await SqliteStorage.open(path, synchronous=synchronous)
    try:
        started = await storage.start_run()
        # The write that waits for the disk leaves the level as it was.
        assert await storage.synchronous() == synchronous
        await storage.append([NewMessage("#a", "Ann", "ann", "#a", "hi", f"m{started}")])
        if clean:
            await storage.end_run()
        return started
    finally:
        await storage.close()


async def test_an_unclean_normal_run_raises_the_epoch_once(tmp_path: Path) -> None:
    path = tmp_path / "parley.sqlite3"
    assert await _run(path, "normal", clean=False) == RunStart(0, raised=False)
    assert await _run(path, "normal", clean=True) == RunStart(1, raised=True)
    assert await _run(path, "normal", clean=True) == RunStart(1, raised=False)
    assert await _run(path, "normal", clean=False) == RunStart(1, raised=False)
    assert await _run(path, "full", clean=False) == RunStart(2, raised=True)
    # A "full" run that stopped uncleanly lost nothing, whatever the next one uses.
    assert await _run(path, "normal", clean=False) == RunStart(2, raised=False)
    assert await _run(path, "full", clean=True) == RunStart(3, raised=True)


@pytest.mark.parametrize("clean", [True, False])
async def test_full_runs_keep_the_epoch(tmp_path: Path, clean: bool) -> None:
    path = tmp_path / "parley.sqlite3"
    for _ in range(3):
        assert await _run(path, "full", clean=clean) == RunStart(0, raised=False)


async def test_a_raise_takes_read_markers_back_to_the_last_seq(tmp_path: Path) -> None:
    path = tmp_path / "parley.sqlite3"
    storage = await SqliteStorage.open(path, synchronous="normal")
    try:
        await storage.start_run()
        await storage.create_account(Account("ann", "Ann", "h", Role.USER, 1))
        await storage.add_member("#a", "ann")
        await storage.append(
            [NewMessage("#a", "Ann", "ann", "#a", f"m{n}", f"m{n}") for n in range(3)]
        )
        # Read up to a seq a crash took back (as if seqs 4 and 5 had been stored, then lost).
        await storage.mark_read("ann", "#a", 5)
    finally:
        await storage.close()
    storage = await SqliteStorage.open(path, synchronous="normal")
    try:
        assert (await storage.start_run()).raised
        [stored] = await storage.append([NewMessage("#a", "Bob", "bob", "#a", "new", "n1")])
        assert stored.seq == 4
        # The message that took a lost seq counts as unread.
        [unread] = await storage.unread("ann", "", 10)
        assert (unread.read_seq, unread.last_seq) == (3, 4)
    finally:
        await storage.close()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in postgres_schema():
        yield name


async def test_postgres_keeps_the_epoch_for_every_node(schema: str) -> None:
    """Nodes start and stop on their own, cleanly or not: the epoch stays what it is."""
    first = await PostgresStorage.open(POSTGRES_URL, schema=schema)
    second = await PostgresStorage.open(POSTGRES_URL, schema=schema)
    try:
        assert await first.start_run() == RunStart(0)
        assert await second.start_run() == RunStart(0)
        await first.end_run()
        assert await first.start_run() == RunStart(0)
    finally:
        await first.close()
        await second.close()
    again = await PostgresStorage.open(POSTGRES_URL, schema=schema)
    try:
        assert await again.start_run() == RunStart(0)
    finally:
        await again.close()
