"""A windowed front end's tasks on the way out: cancelled, and waited for."""

from __future__ import annotations

import asyncio
import logging

import pytest

from parley.client.core import ConnectionLost
from parley.client.front import cancel_and_wait


async def test_cancelled_tasks_have_ended_when_it_returns() -> None:
    ended: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            ended.append(name)

    tasks = [asyncio.create_task(worker(name)) for name in ("events", "input", "markers")]
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks)
    assert sorted(ended) == ["events", "input", "markers"]
    assert all(task.done() for task in tasks)


async def test_a_failure_while_stopping_is_logged_not_left_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails_on_the_way_out() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("broken clean-up")

    async def connection_gone() -> None:
        raise ConnectionLost("gone")

    tasks = [asyncio.create_task(fails_on_the_way_out()), asyncio.create_task(connection_gone())]
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="parley.client"):
        await cancel_and_wait(*tasks)
    messages = [record.getMessage() for record in caplog.records]
    assert any("broken clean-up" in message for message in messages)
    assert not any("gone" in message for message in messages)  # expected on the way out
