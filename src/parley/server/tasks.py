"""Tasks with an owner: every task the server starts belongs to a TaskSet, which logs a task
that fails and, at shutdown, waits for its tasks (for a bounded time) and cancels the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """The owner of a group of tasks. ``spawn`` starts one; :meth:`wait` waits for all of them
    (those started meanwhile too); :meth:`cancel` cancels them and awaits their end.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self, work: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name or self._name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Logged here, once, so that no failure ends as "exception was never retrieved".
            log.error("Task %s failed", task.get_name(), exc_info=task.exception())

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every task to end; True if they all did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    async def cancel(self) -> None:
        """Cancel every task and wait for them to end (a task may take its own time to)."""
        while self._tasks:
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], seconds: float, what: str) -> None:
    """Cancel ``tasks`` and wait up to ``seconds`` for them to end. One that has not ended by
    then is named as a bug and left behind: stopping must not hang on it.

    ``asyncio.wait`` with a timeout, not ``asyncio.wait_for``: it never awaits the tasks
    themselves, so a cancellation the tasks swallow cannot make this wait for ever.
    """
    pending = set(tasks)
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, running = await asyncio.wait(pending, timeout=seconds)
    for task in running:
        log.error("Bug: %s (task %s) did not stop within %g s", what, task.get_name(), seconds)


async def supervise(
    name: str, run: Callable[[], Awaitable[None]], *, restart_seconds: float
) -> None:
    """Run ``run()`` for ever: when it raises, log the failure once and start it again after
    ``restart_seconds``. Ends only when cancelled.
    """
    while True:
        try:
            await run()
        except Exception:
            log.exception("%s failed; starting it again in %g s", name, restart_seconds)
        else:
            log.error("%s ended by itself; starting it again in %g s", name, restart_seconds)
        await asyncio.sleep(restart_seconds)
