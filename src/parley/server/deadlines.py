"""Per-connection deadlines (TLS handshake, hello, login) without a loop timer per connection.

Every deadline of one kind is "now + the same delay", so they expire in the order they were
set: a FIFO queue and one loop timer per delay serve any number of connections. A loop timer
costs about 600 bytes and a system-level timer operation per connection; an entry here costs
one small object. Cancelling marks the entry; the sweep skips it, and once cancelled entries
are most of a queue they are dropped at once (each connection cancels its handshake, hello and
login deadlines: kept until their time, those would be ~200 bytes on every idle connection).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

# Cancelled entries a queue may keep before it drops them.
_FEW = 64


class Deadline:
    """One pending deadline; :meth:`cancel` before it fires to drop it."""

    __slots__ = ("callback", "queue", "when")

    def __init__(self, queue: DeadlineQueue, when: float, callback: Callable[[], object]) -> None:
        self.queue = queue
        self.when = when
        self.callback: Callable[[], object] | None = callback

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self.queue._cancelled += 1
            self.queue._compact_if_mostly_cancelled()


class DeadlineQueue:
    """Deadlines that all lie ``delay`` seconds after they are set."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self._loop = loop
        self._delay = delay
        self._queue: collections.deque[Deadline] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._cancelled = 0

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, callback: Callable[[], object]) -> Deadline:
        """Call ``callback`` once ``delay`` seconds from now, unless cancelled first."""
        deadline = Deadline(self, self._loop.time() + self._delay, callback)
        self._queue.append(deadline)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline.when, self._expire)
        return deadline

    def _compact_if_mostly_cancelled(self) -> None:
        """Drop the cancelled entries once they are more than half the queue (and more than a
        few): each drop at least halves the queue, so this costs O(1) per entry, amortised.
        """
        if self._cancelled > _FEW and self._cancelled * 2 > len(self._queue):
            self._queue = collections.deque(d for d in self._queue if d.callback is not None)
            self._cancelled = 0

    def expire_all(self) -> None:
        """Call every pending callback now, in order (what they guard is ending)."""
        if self._timer is not None:
            self._timer.cancel()
        self._expire(everything=True)

    def _expire(self, everything: bool = False) -> None:
        self._timer = None
        now = self._loop.time()
        while self._queue:
            head = self._queue[0]
            if head.callback is None:
                self._queue.popleft()
                self._cancelled -= 1
            elif everything or head.when <= now:
                self._queue.popleft()
                callback, head.callback = head.callback, None
                try:
                    callback()
                except Exception:
                    log.exception("Deadline callback %r failed", callback)
            else:
                self._timer = self._loop.call_at(head.when, self._expire)
                return


class Deadlines:
    """One :class:`DeadlineQueue` per delay, made on first use."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[float, DeadlineQueue] = {}

    def after(self, delay: float, callback: Callable[[], object]) -> Deadline:
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = DeadlineQueue(self._loop, delay)
        return queue.add(callback)
