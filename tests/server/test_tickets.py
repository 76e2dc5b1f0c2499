"""The file tokens' book: one redemption each, expiry in issue order, and nothing kept after."""

from __future__ import annotations

from parley.server.tickets import TicketBook


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def now_ms(self) -> int:
        return int(self.now * 1000)

    def monotonic(self) -> float:
        return self.now


def test_a_token_opens_one_connection() -> None:
    book = TicketBook(300.0, Clock())
    token = book.issue(upload=False, file_id="f1")
    ticket = book.redeem(token)
    assert ticket is not None and (ticket.upload, ticket.file_id) == (False, "f1")
    assert book.redeem(token) is None  # used
    assert book.redeem("not-a-token") is None


def test_tokens_are_unguessable_and_distinct() -> None:
    book = TicketBook(300.0, Clock())
    tokens = {book.issue(upload=True, file_id="f") for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) >= 32 for token in tokens)


def test_a_token_expires_after_its_lifetime() -> None:
    clock = Clock()
    book = TicketBook(300.0, clock)
    early = book.issue(upload=True, file_id="early")
    clock.now += 200.0
    late = book.issue(upload=True, file_id="late")
    clock.now += 100.0  # early's lifetime is over, late has 200 s left
    assert book.redeem(early) is None
    ticket = book.redeem(late)
    assert ticket is not None and ticket.file_id == "late"


def test_expired_tokens_are_dropped_as_new_ones_come() -> None:
    clock = Clock()
    book = TicketBook(300.0, clock)
    for number in range(50_000):
        book.issue(upload=False, file_id=str(number))
    assert len(book) == 50_000
    clock.now += 301.0
    book.issue(upload=False, file_id="fresh")
    assert len(book) == 1  # the 50,000 unused ones are gone, not rebuilt around


def test_each_holder_s_unused_tokens_are_counted_until_used_or_expired() -> None:
    clock = Clock()
    book = TicketBook(300.0, clock)
    first = book.issue(upload=False, file_id="f", holder="alice")
    book.issue(upload=True, file_id="g", holder="alice")
    book.issue(upload=False, file_id="f", holder="bob")
    assert (book.held("alice"), book.held("bob"), book.held("carol")) == (2, 1, 0)
    assert book.redeem(first) is not None
    assert book.held("alice") == 1
    assert book.redeem(first) is None  # used: no count is given back twice
    assert book.held("alice") == 1
    clock.now += 200.0
    late = book.issue(upload=False, file_id="f", holder="alice")
    clock.now += 100.0  # the first ones expire
    assert (book.held("alice"), book.held("bob")) == (1, 0)
    clock.now += 300.0
    assert book.redeem(late) is None  # expired: counted off once, at expiry
    assert book.held("alice") == 0


def test_looking_at_a_token_leaves_it_good_until_it_expires() -> None:
    clock = Clock()
    book = TicketBook(300.0, clock)
    token = book.issue(upload=True, file_id="f1", holder="alice")
    seen = book.peek(token)
    assert seen is not None and (seen.upload, seen.file_id) == (True, "f1")
    assert book.held("alice") == 1  # still unused: it still counts
    assert book.redeem(token) == seen
    assert book.peek(token) is None  # used
    late = book.issue(upload=False, file_id="f2")
    clock.now += 300.0
    assert book.peek(late) is None  # expired
    assert book.peek("not-a-token") is None
