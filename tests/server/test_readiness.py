"""Readiness on its own: a storage query that never answers is cut at its timeout, callers at
the same moment share one query, and an answer is kept for its time, good or bad.
"""

from __future__ import annotations

import asyncio

from parley.server.health import Readiness, StorageHealth
from parley.storage import StorageUnavailable


class _Probe:
    """A storage query a test steers: it hangs, fails or answers; counts how often it ran."""

    def __init__(self) -> None:
        self.calls = 0
        self.mode = "answer"

    async def __call__(self) -> None:
        self.calls += 1
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "fail":
            raise StorageUnavailable("injected: connection refused")


def _readiness(probe: _Probe, health: StorageHealth, listening: list[str | None]) -> Readiness:
    return Readiness(probe, health, lambda: listening[0], timeout_seconds=0.2, cache_seconds=0.3)


async def test_a_query_that_never_answers_is_cut_and_marks_storage_degraded() -> None:
    probe, health = _Probe(), StorageHealth()
    readiness = _readiness(probe, health, [None])
    probe.mode = "hang"
    answers = await asyncio.gather(*(readiness.check() for _ in range(20)))
    assert answers == ["storage did not answer within 0.2 s"] * 20
    assert probe.calls == 1  # shared by every caller
    assert health.degraded
    # Kept for its time: no new query meanwhile.
    assert await readiness.check() == "storage did not answer within 0.2 s"
    assert probe.calls == 1
    probe.mode = "answer"
    await asyncio.sleep(0.35)
    assert await readiness.check() is None
    assert probe.calls == 2
    assert not health.degraded


async def test_a_failing_query_says_why() -> None:
    probe, health = _Probe(), StorageHealth()
    probe.mode = "fail"
    readiness = _readiness(probe, health, [None])
    assert await readiness.check() == "storage unavailable: injected: connection refused"
    assert health.degraded


async def test_not_listening_comes_first_and_asks_nothing_of_storage() -> None:
    probe, health = _Probe(), StorageHealth()
    listening: list[str | None] = ["shutting down"]
    readiness = _readiness(probe, health, listening)
    assert await readiness.check() == "shutting down"
    assert probe.calls == 0
    listening[0] = None
    assert await readiness.check() is None


async def test_a_caller_that_goes_away_does_not_cancel_the_others_answer() -> None:
    probe, health = _Probe(), StorageHealth()
    readiness = _readiness(probe, health, [None])
    probe.mode = "hang"
    leaving = asyncio.ensure_future(readiness.check())
    staying = asyncio.ensure_future(readiness.check())
    await asyncio.sleep(0.05)
    leaving.cancel()
    assert await staying == "storage did not answer within 0.2 s"
