"""Reconnecting: the waits, and which failures are retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.client.conversations import Conversations
from parley.client.core import ChatClient
from parley.client.reconnect import Attempt, Backoff, GaveUp, reconnect
from parley.protocol.errors import ErrorCode, RequestRefused


def test_waits_grow_exponentially_with_jitter_up_to_a_cap() -> None:
    backoff = Backoff(first_seconds=0.5, most_seconds=30.0)
    lowest = [backoff.delay(n, lambda: 0.0) for n in range(1, 10)]
    highest = [backoff.delay(n, lambda: 0.999999) for n in range(1, 10)]
    assert lowest[:4] == [0.25, 0.5, 1.0, 2.0]
    assert highest[0] == pytest.approx(0.5)
    assert max(highest) == pytest.approx(30.0)
    assert backoff.delay(10_000, lambda: 0.5) == pytest.approx(22.5)  # no overflow


class _Fake:
    """Stands in for a lost ChatClient and the new ones: what resume() does is scripted."""

    def __init__(self, outcome: BaseException | None = None) -> None:
        self.conversations = Conversations()
        self.outcome = outcome
        self.closed = False

    async def resume(self, previous: Any) -> list[tuple[str, RequestRefused]]:
        if self.outcome is not None:
            raise self.outcome
        return []

    async def close(self) -> None:
        self.closed = True


async def _run(outcomes: list[BaseException | _Fake]) -> tuple[Any, list[Attempt], list[_Fake]]:
    made: list[_Fake] = []
    attempts: list[Attempt] = []

    async def connect(conversations: Conversations) -> ChatClient:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        made.append(outcome)
        return outcome  # type: ignore[return-value]

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    previous: Any = _Fake()
    client, _ = await reconnect(previous, connect, "lost", attempts.append, sleep=no_wait)
    return client, attempts, made


async def test_failures_to_connect_and_a_taken_nick_are_retried() -> None:
    final = _Fake()
    taken = _Fake(RequestRefused(ErrorCode.NICK_TAKEN, "taken"))
    client, attempts, _ = await _run([ConnectionRefusedError(), TimeoutError(), taken, final])
    assert client is final
    assert [a.number for a in attempts] == [1, 2, 3, 4]
    assert attempts[1].reason == "the server is not accepting connections"
    assert attempts[3].reason == "taken"
    assert taken.closed and not final.closed


async def test_a_login_refused_for_good_stops_the_retries() -> None:
    expired = _Fake(RequestRefused(ErrorCode.SESSION_EXPIRED, "Your session has expired."))
    with pytest.raises(GaveUp, match="expired"):
        await _run([expired])
    assert expired.closed
