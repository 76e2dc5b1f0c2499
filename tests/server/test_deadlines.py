"""Deadline queues: one loop timer for many per-connection deadlines."""

from __future__ import annotations

import asyncio

import pytest

from parley.server.deadlines import DeadlineQueue, Deadlines


async def test_deadlines_fire_in_order_after_their_delay() -> None:
    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop, 0.05)
    fired: list[tuple[str, float]] = []
    started = loop.time()
    queue.add(lambda: fired.append(("first", loop.time())))
    await asyncio.sleep(0.02)
    queue.add(lambda: fired.append(("second", loop.time())))
    await asyncio.sleep(0.2)
    assert [name for name, _ in fired] == ["first", "second"]
    # The loop's timers have millisecond resolution.
    assert fired[0][1] - started >= 0.049
    assert fired[1][1] - started >= 0.069
    assert len(queue) == 0


async def test_a_cancelled_deadline_never_fires_and_others_still_do() -> None:
    queue = DeadlineQueue(asyncio.get_running_loop(), 0.02)
    fired: list[int] = []
    first = queue.add(lambda: fired.append(1))
    queue.add(lambda: fired.append(2))
    first.cancel()
    first.cancel()  # twice is harmless
    await asyncio.sleep(0.1)
    assert fired == [2]


async def test_a_failing_callback_does_not_stop_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    queue = DeadlineQueue(asyncio.get_running_loop(), 0.01)
    fired: list[int] = []

    def broken() -> None:
        raise RuntimeError("boom")

    queue.add(broken)
    queue.add(lambda: fired.append(1))
    await asyncio.sleep(0.1)
    assert fired == [1]
    assert "boom" in caplog.text


async def test_cancelled_entries_do_not_pile_up_under_churn() -> None:
    queue = DeadlineQueue(asyncio.get_running_loop(), 300.0)
    for _ in range(10_000):
        queue.add(lambda: None).cancel()
    live = queue.add(lambda: None)
    assert len(queue) < 2_100  # compacted well before 10,000
    assert live.callback is not None


async def test_deadlines_keeps_one_queue_per_delay() -> None:
    deadlines = Deadlines(asyncio.get_running_loop())
    fired: list[str] = []
    deadlines.after(0.06, lambda: fired.append("long"))
    deadlines.after(0.01, lambda: fired.append("short"))
    await asyncio.sleep(0.15)
    assert fired == ["short", "long"]


async def test_expire_all_calls_every_pending_callback_at_once_in_order() -> None:
    queue = DeadlineQueue(asyncio.get_running_loop(), 60.0)
    fired: list[int] = []
    queue.add(lambda: fired.append(1))
    cancelled = queue.add(lambda: fired.append(2))
    queue.add(lambda: fired.append(3))
    cancelled.cancel()
    queue.expire_all()
    assert fired == [1, 3]
    assert len(queue) == 0
    queue.add(lambda: fired.append(4))  # the queue still works after
    assert fired == [1, 3]
