"""The file tokens' book, on real storage: one redemption each, expiry after the lifetime, the
holder's cap, only a hash stored, and nothing kept after the sweep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parley.server.tickets import FULL_MEMO_SECONDS, TicketBook, token_hash
from parley.storage import Storage
from parley.storage.sqlite import SqliteStorage
from support import FakeClock

MOST = 20


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await SqliteStorage.open(tmp_path / "parley.sqlite3")
    yield opened
    await opened.close()


async def test_a_token_opens_one_connection(storage: Storage) -> None:
    book = TicketBook(storage, 300.0, FakeClock())
    token = await book.issue(upload=False, file_id="f1", holder="alice", most_held=MOST)
    assert token is not None
    ticket = await book.redeem(token)
    assert ticket is not None and (ticket.upload, ticket.file_id, ticket.holder) == (
        False,
        "f1",
        "alice",
    )
    assert await book.redeem(token) is None  # used
    assert await book.redeem("not-a-token") is None


async def test_tokens_are_unguessable_distinct_and_stored_only_hashed(
    storage: Storage, tmp_path: Path
) -> None:
    book = TicketBook(storage, 300.0, FakeClock())
    tokens = {
        await book.issue(upload=True, file_id="f", holder=f"p{n}", most_held=MOST)
        for n in range(200)
    }
    assert len(tokens) == 200
    assert all(token is not None and len(token) >= 32 for token in tokens)
    await storage.close()
    stored = (tmp_path / "parley.sqlite3").read_bytes()
    assert not any(token is not None and token.encode() in stored for token in tokens)
    assert any(token is not None and token_hash(token).encode() in stored for token in tokens)


async def test_a_token_expires_after_its_lifetime(storage: Storage) -> None:
    clock = FakeClock()
    book = TicketBook(storage, 300.0, clock)
    early = await book.issue(upload=True, file_id="early", holder="a", most_held=MOST)
    clock.advance(200.0)
    late = await book.issue(upload=True, file_id="late", holder="a", most_held=MOST)
    clock.advance(100.0)  # early's lifetime is over, late has 200 s left
    assert early is not None and late is not None
    assert await book.redeem(early) is None
    ticket = await book.redeem(late)
    assert ticket is not None and ticket.file_id == "late"


async def test_the_sweep_drops_expired_tokens(storage: Storage) -> None:
    clock = FakeClock()
    book = TicketBook(storage, 300.0, clock)
    for number in range(500):
        await book.issue(upload=False, file_id=str(number), holder=f"p{number}", most_held=MOST)
    clock.advance(301.0)
    fresh = await book.issue(upload=False, file_id="fresh", holder="x", most_held=MOST)
    assert await book.forget_expired() == 500
    assert await book.forget_expired() == 0
    assert fresh is not None and await book.redeem(fresh) is not None


async def test_each_holder_s_unused_tokens_are_counted_until_used_or_expired(
    storage: Storage,
) -> None:
    clock = FakeClock()
    book = TicketBook(storage, 300.0, clock)
    first = await book.issue(upload=False, file_id="f", holder="alice", most_held=2)
    await book.issue(upload=True, file_id="g", holder="alice", most_held=2)
    assert await book.issue(upload=True, file_id="g", holder="alice", most_held=2) is None
    await book.issue(upload=False, file_id="f", holder="bob", most_held=2)
    assert (
        await book.held("alice", 2),
        await book.held("bob", 2),
        await book.held("carol", 2),
    ) == (2, 1, 0)
    assert first is not None and await book.redeem(first) is not None
    assert await book.held("alice", 2) == 1
    assert await book.redeem(first) is None  # used: no count is given back twice
    assert await book.held("alice", 2) == 1
    clock.advance(200.0)
    late = await book.issue(upload=False, file_id="f", holder="alice", most_held=2)
    clock.advance(100.0)  # the first ones expire
    assert (await book.held("alice", 2), await book.held("bob", 2)) == (1, 0)
    clock.advance(300.0)
    assert late is not None and await book.redeem(late) is None  # expired
    assert await book.held("alice", 2) == 0


async def test_a_holder_found_full_is_refused_from_memory_for_a_moment(storage: Storage) -> None:
    clock = FakeClock()
    book = TicketBook(storage, 300.0, clock)
    first = await book.issue(upload=False, file_id="f", holder="alice", most_held=1)
    assert not book.known_full("alice")
    assert await book.issue(upload=False, file_id="f", holder="alice", most_held=1) is None
    assert book.known_full("alice") and not book.known_full("bob")
    # A token of hers redeemed here: she may ask again at once.
    assert first is not None and await book.redeem(first) is not None
    assert not book.known_full("alice")
    # Found full by a count, then the moment passes (a token redeemed on another node).
    await book.issue(upload=False, file_id="f", holder="alice", most_held=1)
    assert await book.held("alice", 1) == 1
    assert book.known_full("alice")
    clock.advance(FULL_MEMO_SECONDS)
    assert not book.known_full("alice")


async def test_looking_at_a_token_leaves_it_good_until_it_expires(storage: Storage) -> None:
    clock = FakeClock()
    book = TicketBook(storage, 300.0, clock)
    token = await book.issue(upload=True, file_id="f1", holder="alice", most_held=MOST)
    assert token is not None
    seen = await book.peek(token)
    assert seen is not None and (seen.upload, seen.file_id) == (True, "f1")
    assert await book.held("alice", MOST) == 1  # still unused: it still counts
    assert await book.redeem(token) == seen
    assert await book.peek(token) is None  # used
    late = await book.issue(upload=False, file_id="f2", holder="bob", most_held=MOST)
    assert late is not None
    clock.advance(300.0)
    assert await book.peek(late) is None  # expired
    assert await book.peek("not-a-token") is None
