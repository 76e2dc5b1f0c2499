"""The Storage contract for file tokens and file claims, run against every backend (see
conftest.py): what lets a token issued on one node be redeemed on another, and an upload on one
node keep the purge on another away from its file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from parley.storage import ClaimKind, FileTicket, Storage, StorageUnavailable
from parley.storage.sqlite import SqliteStorage

NOW = 1_700_000_000_000
MINUTE = 60_000


def ticket(holder: str = "alice", file_id: str = "f1", upload: bool = False) -> FileTicket:
    return FileTicket(upload, file_id, holder, NOW + 5 * MINUTE)


async def test_a_token_is_taken_once(storage: Storage) -> None:
    assert await storage.add_ticket("h1", ticket(upload=True), 20, NOW)
    taken = await storage.take_ticket("h1", NOW)
    assert taken == ticket(upload=True)
    assert await storage.take_ticket("h1", NOW) is None
    assert await storage.take_ticket("unknown", NOW) is None


async def test_a_token_taken_at_once_by_two_goes_to_one(storage: Storage) -> None:
    await storage.add_ticket("h1", ticket(), 20, NOW)
    results = await asyncio.gather(*(storage.take_ticket("h1", NOW) for _ in range(5)))
    assert sum(result is not None for result in results) == 1


async def test_an_expired_token_is_not_taken(storage: Storage) -> None:
    await storage.add_ticket("h1", ticket(), 20, NOW)
    assert await storage.take_ticket("h1", NOW + 5 * MINUTE) is None
    await storage.add_ticket("h2", ticket(), 20, NOW)
    assert await storage.take_ticket("h2", NOW + 5 * MINUTE - 1) is not None


async def test_each_holder_is_held_to_the_most_unexpired_tokens(storage: Storage) -> None:
    for number in range(3):
        assert await storage.add_ticket(f"a{number}", ticket(), 3, NOW)
    assert not await storage.add_ticket("a3", ticket(), 3, NOW)
    assert await storage.add_ticket("b0", ticket("bob"), 3, NOW)
    assert (await storage.tickets_held("alice", NOW), await storage.tickets_held("bob", NOW)) == (
        3,
        1,
    )
    # One used: room for one more.
    assert await storage.take_ticket("a0", NOW) is not None
    assert await storage.tickets_held("alice", NOW) == 2
    assert await storage.add_ticket("a4", ticket(), 3, NOW)
    # All expired: none counts any more, even before the sweep.
    later = NOW + 5 * MINUTE
    assert await storage.tickets_held("alice", later) == 0
    assert await storage.add_ticket("a5", FileTicket(False, "f", "alice", later + MINUTE), 3, later)


async def test_the_sweep_deletes_expired_tokens_only(storage: Storage) -> None:
    for number in range(10):
        await storage.add_ticket(f"old{number}", ticket(f"p{number}"), 20, NOW)
    fresh = FileTicket(False, "f", "carol", NOW + 10 * MINUTE)
    await storage.add_ticket("fresh", fresh, 20, NOW)
    assert await storage.forget_tickets(NOW + 5 * MINUTE) == 10
    assert await storage.forget_tickets(NOW + 5 * MINUTE) == 0
    assert await storage.take_ticket("fresh", NOW + 6 * MINUTE) == fresh


async def test_a_file_is_claimed_by_one_until_released_or_expired(storage: Storage) -> None:
    until = NOW + MINUTE
    assert await storage.claim_file("f1", ClaimKind.UPLOAD, NOW, until) is None
    assert await storage.claim_file("f1", ClaimKind.UPLOAD, NOW, until) is ClaimKind.UPLOAD
    assert await storage.claim_file("f1", ClaimKind.DELETE, NOW, until) is ClaimKind.UPLOAD
    assert await storage.claim_file("f2", ClaimKind.DELETE, NOW, until) is None
    # Releasing another kind's claim leaves it.
    await storage.release_claim("f1", ClaimKind.DELETE)
    assert await storage.claim_file("f1", ClaimKind.DELETE, NOW, until) is ClaimKind.UPLOAD
    await storage.release_claim("f1", ClaimKind.UPLOAD)
    assert await storage.claim_file("f1", ClaimKind.DELETE, NOW, until) is None


async def test_a_claim_is_a_lease_that_can_be_renewed(storage: Storage) -> None:
    assert await storage.claim_file("f1", ClaimKind.UPLOAD, NOW, NOW + MINUTE) is None
    assert await storage.renew_claim("f1", ClaimKind.UPLOAD, NOW + 2 * MINUTE)
    assert not await storage.renew_claim("f1", ClaimKind.DELETE, NOW + 3 * MINUTE)
    # Still held after the first lease would have ended...
    held = await storage.claim_file("f1", ClaimKind.DELETE, NOW + MINUTE, NOW + 3 * MINUTE)
    assert held is ClaimKind.UPLOAD
    # ...and free once the renewed one has (a node that died holding it).
    late = NOW + 2 * MINUTE
    assert await storage.claim_file("f1", ClaimKind.DELETE, late, late + MINUTE) is None
    assert not await storage.renew_claim("f1", ClaimKind.UPLOAD, late + 5 * MINUTE)


async def test_claims_taken_at_once_go_to_one(storage: Storage) -> None:
    results = await asyncio.gather(
        *(storage.claim_file("f1", ClaimKind.UPLOAD, NOW, NOW + MINUTE) for _ in range(5))
    )
    assert results.count(None) == 1


async def test_sqlite_token_writes_leave_every_other_write_durable(tmp_path: Path) -> None:
    # Token and claim writes skip the wait for the disk; the messages' writes after them must
    # not, even when a token write fails.
    storage = await SqliteStorage.open(tmp_path / "parley.sqlite3")

    def level(db: sqlite3.Connection) -> int:
        value: int = db.execute("PRAGMA synchronous").fetchone()[0]
        return value

    try:
        full = await storage._run(level, write=True)
        assert full == 2  # FULL
        await storage.add_ticket("h1", ticket(), 20, NOW)
        await storage.take_ticket("h1", NOW)
        await storage.claim_file("f1", ClaimKind.UPLOAD, NOW, NOW + MINUTE)
        assert await storage._run(level, write=True) == full
        with pytest.raises(StorageUnavailable):
            await storage._change("INSERT INTO no_such_table VALUES (1)", durable=False)
        assert await storage._run(level, write=True) == full
    finally:
        await storage.close()


async def test_a_token_can_be_looked_at_without_taking_it(storage: Storage) -> None:
    await storage.add_ticket("h1", ticket(upload=True), 20, NOW)
    assert await storage.ticket("h1", NOW) == ticket(upload=True)
    assert await storage.ticket("h1", NOW) == ticket(upload=True)
    assert await storage.ticket("h1", NOW + 5 * MINUTE) is None  # expired
    assert await storage.take_ticket("h1", NOW) == ticket(upload=True)
    assert await storage.ticket("h1", NOW) is None
    assert await storage.ticket("unknown", NOW) is None
