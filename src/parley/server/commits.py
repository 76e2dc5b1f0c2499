"""The commit pipeline: every message goes to storage through one lane per conversation, and
is published on the bus once it is stored.

Each lane commits its own batches one at a time, in the order they were queued, and lanes do
not wait for one another. Group commit: whatever is queued in a conversation while its batch
is being stored goes into its next batch, so one storage round trip serves many messages of a
busy conversation. A lane's lock is held from storing a batch to its last publish, and a join
takes the same lock (:meth:`Commits.in_order`) for its history read and the member's arrival:
a joining member sees every message exactly once, in history or live.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from parley.bus import Bus
from parley.protocol.errors import ErrorCode
from parley.protocol.messages import Error, Sent, encode
from parley.server.conversations import as_event
from parley.server.health import StorageHealth
from parley.server.metrics import ServerMetrics
from parley.server.read_markers import Mark, ReadMarkers
from parley.server.rooms import Peer
from parley.server.tasks import TaskSet
from parley.storage import CommitUncertain, NewMessage, Storage, StorageUnavailable

# Logged under the hub's name, as before it was split: log lines and filters stay the same.
log = logging.getLogger("parley.server.hub")

# Conversations with a commit in flight at once. Below the PostgreSQL pool's size, so that
# logins, joins and history reads always find a connection, whatever the commits wait on.
_CONCURRENT_COMMITS = 4
# Messages whose commit ended in doubt, remembered so that a retry finding them stored
# publishes them (they were never delivered). Bounded: past it the oldest are forgotten.
_MAX_DOUBTFUL = 10_000


@dataclasses.dataclass(slots=True)
class Pending:
    message: NewMessage
    # None for what the server writes itself (a file's announcement): no one to reply to.
    sender: Peer | None
    request_id: int
    # The recipient's away text, for the sender's ``sent``.
    away: str = ""


@dataclasses.dataclass(slots=True, eq=False)
class _Lane:
    """One conversation's way to storage: the messages waiting for its next commit, and the
    lock that keeps its commits, and a join's history read, one at a time and in order.
    """

    pending: list[Pending] = dataclasses.field(default_factory=list)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    # A task is storing what is pending (it takes what arrives meanwhile too).
    draining: bool = False
    # Holders (the draining task, joins): the lane is dropped when none is left.
    users: int = 0


class Commits:
    """Store (batched per conversation), publish what is new, answer the senders."""

    def __init__(
        self,
        storage: Storage,
        bus: Bus,
        tasks: TaskSet,
        health: StorageHealth,
        markers: ReadMarkers,
        metrics: ServerMetrics,
    ) -> None:
        self._storage = storage
        self._bus = bus
        self._tasks = tasks
        self._health = health
        self._markers = markers
        self._metrics = metrics
        # Conversation -> its lane, while anything is queued or held in it.
        self._lanes: dict[str, _Lane] = {}
        self._commit_slots = asyncio.Semaphore(_CONCURRENT_COMMITS)
        # With storage that writes one transaction at a time, one task drains every lane.
        self._draining_together = False
        # (conversation, sender key, msg_id) of messages whose commit ended in doubt.
        self._doubtful: collections.OrderedDict[tuple[str, str, str], bool] = (
            collections.OrderedDict()
        )

    @property
    def conversations_waiting(self) -> int:
        """Conversations with messages queued or a lane held."""
        return len(self._lanes)

    def submit(self, item: Pending) -> None:
        """Queue ``item`` for its conversation's next batch. Returns at once."""
        conversation = item.message.conversation
        lane = self._lanes.get(conversation)
        if lane is None:
            lane = self._lanes[conversation] = _Lane()
        lane.pending.append(item)
        if self._storage.serial_writes:
            if not self._draining_together:
                self._draining_together = True
                self._tasks.spawn(self._drain_together(), name="parley-commit")
        elif not lane.draining:
            lane.draining = True
            lane.users += 1
            self._tasks.spawn(self._drain(conversation, lane), name="parley-commit")

    @contextlib.asynccontextmanager
    async def in_order(self, conversation: str) -> AsyncIterator[None]:
        """Hold ``conversation``'s lane: no batch of it is stored or published meanwhile."""
        lane = self._lanes.get(conversation)
        if lane is None:
            lane = self._lanes[conversation] = _Lane()
        lane.users += 1
        try:
            async with lane.lock:
                yield
        finally:
            self._release(conversation, lane)

    async def _drain(self, conversation: str, lane: _Lane) -> None:
        """Store a conversation's queued messages until none is left, a batch at a time."""
        try:
            while lane.pending:
                async with lane.lock:
                    batch, lane.pending = lane.pending, []
                    async with self._commit_slots:
                        await self._commit(batch)
        finally:
            lane.draining = False
            self._release(conversation, lane)

    async def _drain_together(self) -> None:
        """Like :meth:`_drain`, for storage that writes one transaction at a time anyway
        (SQLite): every conversation with messages waiting goes into one batch, one commit,
        as long as its lane is free (a join may hold it: then it waits for the next batch).
        The first lane waiting is waited for, held or not, so that the task never spins: a
        join holding it holds up this batch for the time of its history read.
        """
        try:
            while waiting := [(c, lane) for c, lane in self._lanes.items() if lane.pending]:
                held: list[tuple[str, _Lane]] = []
                try:
                    for index, (conversation, lane) in enumerate(waiting):
                        if index and lane.lock.locked():
                            continue
                        lane.users += 1
                        try:
                            await lane.lock.acquire()  # at once, but for the first one
                        except BaseException:
                            self._release(conversation, lane)
                            raise
                        held.append((conversation, lane))
                    batch = [item for _, lane in held for item in lane.pending]
                    for _, lane in held:
                        lane.pending = []
                    await self._commit(batch)
                finally:
                    for conversation, lane in held:
                        lane.lock.release()
                        self._release(conversation, lane)
        finally:
            self._draining_together = False

    def _release(self, conversation: str, lane: _Lane) -> None:
        lane.users -= 1
        if not lane.users and not lane.pending:
            del self._lanes[conversation]

    async def _commit(self, batch: list[Pending]) -> None:
        """Store one batch, publish what is new, answer the senders. Never raises but
        CancelledError (its senders are then told ``unavailable``).
        """
        try:
            with self._metrics.append_seconds.time():
                stored = await self._storage.append([item.message for item in batch])
        except StorageUnavailable as exc:
            if isinstance(exc, CommitUncertain):
                for item in batch:
                    self._doubt(item.message)
            self._health.failed(exc, messages=len(batch))
            self._refuse(batch, ErrorCode.UNAVAILABLE)
            return
        except asyncio.CancelledError:
            self._refuse(batch, ErrorCode.UNAVAILABLE)
            raise
        except Exception:
            log.exception("Bug: storing %d messages failed", len(batch))
            self._refuse(batch, ErrorCode.INTERNAL_ERROR)
            return
        self._health.succeeded()
        self._metrics.committed(len(batch), sum(not record.duplicate for record in stored))
        read: list[Mark] = []
        for item, record in zip(batch, stored, strict=True):
            message = item.message
            # A retry of a message whose first commit ended in doubt was never published.
            identity = (message.conversation, message.sender_key, message.msg_id)
            if not record.duplicate or self._doubtful.pop(identity, False):
                try:
                    self._bus.publish(record.conversation, encode(as_event(record)))
                except Exception:
                    log.exception("Bug: publishing to %s failed", record.conversation)
                self._markers.shown(message.participants, record.conversation, record.seq, read)
            if item.sender is None:
                continue
            item.sender.write(
                encode(
                    Sent(
                        id=item.request_id,
                        seq=record.seq,
                        ts=record.ts,
                        duplicate=record.duplicate,
                        away=item.away,
                    )
                )
            )
        # A private message shown to an online account counts as read. Off the commit path.
        self._markers.mark(read)

    def _doubt(self, message: NewMessage) -> None:
        self._doubtful[(message.conversation, message.sender_key, message.msg_id)] = True
        while len(self._doubtful) > _MAX_DOUBTFUL:
            self._doubtful.popitem(last=False)

    def _refuse(self, batch: list[Pending], code: ErrorCode) -> None:
        for item in batch:
            if item.sender is None:
                log.error("A file announcement was not stored: %s", item.message.msg_id)
                continue
            item.sender.write(
                encode(
                    Error(
                        id=item.request_id,
                        code=code,
                        message="The message could not be stored; send it again.",
                    )
                )
            )
