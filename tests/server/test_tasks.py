"""cancel_and_wait: the stop path of the bus's loops, with a task that ends and one that won't."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from parley.server.tasks import cancel_and_wait


async def test_cancelled_tasks_end_and_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    tasks = [asyncio.create_task(asyncio.sleep(60), name=f"sleeper-{i}") for i in range(3)]
    await cancel_and_wait(tasks, 5.0, "the sleepers")
    assert all(task.cancelled() for task in tasks)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_task_that_swallows_cancellation_is_named_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            # The bug cancel_and_wait must survive: a loop that swallows its cancellation.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(60)

    task = asyncio.create_task(stubborn(), name="stubborn-loop")
    await asyncio.sleep(0)
    await cancel_and_wait([task], 0.2, "the stubborn loop")
    assert not task.done()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["Bug: the stubborn loop (task stubborn-loop) did not stop within 0.2 s"]
    release.set()
    task.cancel()
    await task


async def test_no_tasks_is_no_wait() -> None:
    await cancel_and_wait([], 5.0, "nothing")
