"""Whether storage is working, told to the log once per change of state, never once per
failure: a database that is down for a minute writes two lines, not a thousand; and whether
the server is ready to serve, for a load balancer or a service manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

from parley.clock import SYSTEM_CLOCK, Clock
from parley.storage import StorageUnavailable

log = logging.getLogger("parley.server")


class StorageHealth:
    """Counts storage failures while storage is degraded; logs the first and the recovery."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._since: float | None = None
        self._failures = 0
        self._refused = 0

    @property
    def degraded(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, *, messages: int = 0) -> None:
        """A storage call failed; ``messages`` senders were answered ``unavailable``."""
        if self._since is None:
            self._since = self._clock.monotonic()
            log.warning("Storage degraded: %s", exc)
        self._failures += 1
        self._refused += messages

    def succeeded(self) -> None:
        """A storage call worked: if storage was degraded, it has recovered."""
        if self._since is None:
            return
        log.warning(
            "Storage recovered after %.1f s: %d operations failed, %d messages refused",
            self._clock.monotonic() - self._since,
            self._failures,
            self._refused,
        )
        self._since = None
        self._failures = self._refused = 0


class Readiness:
    """Whether the server can serve: it is listening, storage is not degraded, and storage
    answers a cheap query within ``timeout_seconds``. The query's answer is kept for
    ``cache_seconds`` and shared by every caller meanwhile, so however often readiness is
    asked, storage is asked at most once per ``cache_seconds``.
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        health: StorageHealth,
        listening: Callable[[], str | None],
        *,
        timeout_seconds: float = 1.5,
        cache_seconds: float = 1.0,
        timing: Callable[[], AbstractContextManager[object]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``listening`` returns None when every listener is up, else why not; ``timing``
        (if given) is entered around each probe, to measure it.
        """
        self._probe = probe
        self._health = health
        self._listening = listening
        self._timeout = timeout_seconds
        self._cache = cache_seconds
        self._timing = timing
        self._clock = clock
        # (when it was asked, why storage is not usable or None).
        self._answer: tuple[float, str | None] | None = None
        self._asking: asyncio.Task[str | None] | None = None

    async def check(self) -> str | None:
        """None when ready, else why not, in a few words for an operator."""
        not_listening = self._listening()
        if not_listening is not None:
            return not_listening
        problem = await self._storage_problem()
        if problem is not None:
            return problem
        if self._health.degraded:
            return "storage degraded: a recent storage operation failed"
        return None

    async def _storage_problem(self) -> str | None:
        now = self._clock.monotonic()
        if self._answer is not None and now - self._answer[0] < self._cache:
            return self._answer[1]
        if self._asking is None:
            self._asking = asyncio.get_running_loop().create_task(
                self._ask(), name="parley-readiness"
            )
        # Shielded: a caller that goes away does not cancel the answer the others wait for.
        return await asyncio.shield(self._asking)

    async def _ask(self) -> str | None:
        try:
            problem: str | None = None
            try:
                with self._timing() if self._timing is not None else contextlib.nullcontext():
                    await asyncio.wait_for(self._probe(), self._timeout)
            except TimeoutError:
                problem = f"storage did not answer within {self._timeout:g} s"
                self._health.failed(TimeoutError(problem))
            except StorageUnavailable as exc:
                problem = f"storage unavailable: {exc}"
                self._health.failed(exc)
            except Exception as exc:
                log.exception("Bug: the readiness query failed")
                problem = f"the storage check failed: {type(exc).__name__}"
            else:
                self._health.succeeded()
            self._answer = (self._clock.monotonic(), problem)
            return problem
        finally:
            self._asking = None
