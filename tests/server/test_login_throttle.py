"""Password guessing over real TLS: counts that hold when guesses arrive all at once, that one
account's login does not clear, that keep strangers from locking the owner out, and that
outlive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections import Counter
from typing import Any

from parley.config import ServerConfig
from parley.server.app import ParleyServer
from support import FakeClock, RawClient, insecure_context

PASSWORD = "correct horse battery"
GUESSES = 200
# As docs/protocol.md states them: 5 attempts free, then waits from 1 s, doubling.
FREE_ATTEMPTS = 5
FIRST_DELAY_SECONDS = 1.0


async def _register(port: int, nick: str, address: str = "127.0.0.1") -> None:
    client = await _open_from(port, address)
    await client.login(nick)
    assert (await client.request("register", password=PASSWORD))["type"] == "ok"
    await client.close()


async def _open_from(port: int, address: str) -> RawClient:
    """A connection whose source is ``address`` (any of 127.0.0.0/8 is this host)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=insecure_context(), local_addr=(address, 0), limit=2**22
    )
    return RawClient(reader, writer)


async def _guess(port: int, nick: str, password: str, address: str = "127.0.0.1") -> str:
    client = await _open_from(port, address)
    try:
        reply: dict[str, Any] = await client.try_login(nick, password=password)
        return str(reply.get("code") or reply["type"])
    finally:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await client.close()


async def test_parallel_guesses_from_one_address_are_counted_before_they_are_checked(
    server: ParleyServer,
) -> None:
    await _register(server.port, "Alice")
    guesses = [
        _guess(server.port, "Alice", PASSWORD if n == GUESSES - 1 else f"guess {n}")
        for n in range(GUESSES)
    ]
    replies = Counter(await asyncio.gather(*guesses))
    # At most the free attempts were checked at all; the right password, sent last among
    # them, did not get through either (or at most as one of the free ones).
    checked = replies["auth-failed"] + replies["ok"]
    assert checked <= FREE_ATTEMPTS, replies
    assert replies["too-many-attempts"] >= GUESSES - FREE_ATTEMPTS, replies
    # From that address even the right password waits now...
    assert await _guess(server.port, "Alice", PASSWORD) == "too-many-attempts"
    # ...but the owner, elsewhere, is not locked out by a stranger's guessing.
    assert await _guess(server.port, "Alice", PASSWORD, "127.0.0.2") == "ok"


async def test_logging_in_to_ones_own_account_does_not_clear_the_address(
    server: ParleyServer,
) -> None:
    await _register(server.port, "Mallory")
    for n in range(FREE_ATTEMPTS):
        await _register(server.port, f"Victim{n}", f"127.0.1.{n}")  # 3 a day per address
    # One guess at each of five accounts: the address has used its free attempts...
    for n in range(FREE_ATTEMPTS):
        assert await _guess(server.port, f"Victim{n}", "guess") == "auth-failed"
    # ...so after the first delay one attempt more is checked: a login to an account of its
    # own, which succeeds and gives back that one attempt, and nothing else.
    await asyncio.sleep(FIRST_DELAY_SECONDS + 0.2)
    assert await _guess(server.port, "Mallory", PASSWORD) == "ok"
    assert await _guess(server.port, "Victim0", "another guess") == "too-many-attempts"
    # Another address sprays on unhindered by this one's count, and the victims are fine.
    assert await _guess(server.port, "Victim1", PASSWORD, "127.0.0.3") == "ok"


async def test_the_counts_outlive_a_restart(server_config: ServerConfig) -> None:
    async with ParleyServer(server_config) as server:
        await _register(server.port, "Alice")
        for n in range(FREE_ATTEMPTS):
            assert await _guess(server.port, "Alice", f"guess {n}") == "auth-failed"
    async with ParleyServer(server_config) as again:
        assert await _guess(again.port, "Alice", PASSWORD) == "too-many-attempts"
        assert await _guess(again.port, "Alice", PASSWORD, "127.0.0.2") == "ok"


async def test_retrying_after_the_wait_given_is_checked(server_config: ServerConfig) -> None:
    """The wait a refusal names is the one that holds: the refused attempt counted too, so
    retrying once it is over gets the password checked, not a longer wait.
    """
    clock = FakeClock()
    async with ParleyServer(server_config, clock=clock) as server:
        await _register(server.port, "Alice")
        for n in range(FREE_ATTEMPTS):
            assert (await _attempt(server.port, "Alice", f"guess {n}"))["code"] == "auth-failed"
        reply = await _attempt(server.port, "Alice", "one too soon")
        for _ in range(3):
            assert reply.get("code") == "too-many-attempts", reply
            told = int(re.search(r"try again in (\d+) seconds", reply["message"])[1])  # type: ignore[index]
            clock.advance(told)
            reply = await _attempt(server.port, "Alice", "still wrong")
            assert reply.get("code") == "auth-failed", (told, reply)
            reply = await _attempt(server.port, "Alice", "at once")
        clock.advance(FIRST_DELAY_SECONDS * 2**10)
        assert (await _attempt(server.port, "Alice", PASSWORD))["type"] == "ok"


async def _attempt(port: int, nick: str, password: str) -> dict[str, Any]:
    client = await _open_from(port, "127.0.0.1")
    try:
        reply: dict[str, Any] = await client.try_login(nick, password=password)
        return reply
    finally:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await client.close()


def test_the_waits_double_from_the_first_attempt_past_the_free_ones() -> None:
    from parley.accounts.throttle import KnownWaits, slow_down_seconds, wait_seconds

    assert [wait_seconds(n, 1000, 1000) for n in (1, 5)] == [0.0, 0.0]
    assert [wait_seconds(n, 1000, 1000) for n in (6, 7, 8)] == [1.0, 2.0, 4.0]
    assert wait_seconds(6, 1000, 1500) == 0.5 and wait_seconds(6, 1000, 2000) == 0.0
    assert wait_seconds(10_000, 0, 0) == 900.0  # capped, however many
    assert (slow_down_seconds(50), slow_down_seconds(51)) == (0.0, 1.0)
    known = KnownWaits(max_entries=2)
    known.learn("address:a", 10.0)
    assert known.wait(("address:a", "account:x@a"), 4.0) == 6.0
    assert known.wait(("account:x@a",), 4.0) == 0.0
    assert known.wait(("address:a",), 10.0) == 0.0  # over, and forgotten
    for n in range(3):
        known.learn(f"address:{n}", 100.0)
    assert known.wait(("address:0",), 0.0) == 0.0  # the oldest went first
