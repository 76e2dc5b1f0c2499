"""The commit pipeline: every message goes to storage through its conversation's lane, and is
published on the bus once it is stored.

Group commit, across conversations: one task stores every conversation with messages waiting
in one transaction (``Storage.append_free``), and whatever is queued meanwhile goes into the
next one, so one storage round trip serves many messages of many conversations. A
conversation the database cannot write at once (another session holds its row, or it is new)
is left out of that transaction and goes alone, in a lane of its own (``Storage.append``,
which waits for the row): it holds up only itself. A lane's lock is held from storing a batch
to its last publish, and a join takes the same lock (:meth:`Commits.in_order`) for its history
read and the member's arrival: a joining member sees every message exactly once, in history or
live, and a conversation's batches are stored and published in the order they were queued.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence

from parley.bus import Bus
from parley.protocol.errors import ErrorCode
from parley.protocol.messages import Error, Sent, encode
from parley.server.conversations import as_event
from parley.server.health import StorageHealth
from parley.server.metrics import ServerMetrics
from parley.server.read_markers import Mark, ReadMarkers
from parley.server.rooms import Peer
from parley.server.tasks import TaskSet
from parley.storage import CommitUncertain, NewMessage, Storage, StorageUnavailable, StoredMessage

# Logged under the hub's name, as before it was split: log lines and filters stay the same.
log = logging.getLogger("parley.server.hub")

# Transactions storing messages at once: the shared one and the conversations gone alone.
# Below the PostgreSQL pool's size, so that logins, joins and history reads always find a
# connection, whatever the commits wait on.
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
    # A private message to an account that is not online: the sender's ``sent`` says so.
    offline: bool = False


@dataclasses.dataclass(slots=True, eq=False)
class _Lane:
    """One conversation's way to storage: the messages waiting for its next commit, and the
    lock that keeps its commits, and a join's history read, one at a time and in order.
    """

    pending: list[Pending] = dataclasses.field(default_factory=list)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    # Left out of the shared transaction (its row was busy): a task of its own stores what
    # is pending, then the lane goes back to the shared transaction.
    alone: bool = False
    # Holders (a task storing it, joins): the lane is dropped when none is left.
    users: int = 0


class Commits:
    """Store (batched), publish what is new, answer the senders."""

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
        # The shared transaction takes one; the lanes gone alone share the rest.
        self._alone_slots = asyncio.Semaphore(_CONCURRENT_COMMITS - 1)
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
        if not lane.alone:
            self._drain_soon()

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

    def _drain_soon(self) -> None:
        if not self._draining_together:
            self._draining_together = True
            self._tasks.spawn(self._drain_together(), name="parley-commit")

    def _ready(self) -> list[tuple[str, _Lane]]:
        """The lanes the shared transaction may take now: messages waiting, not gone alone,
        not held (by a join: its release calls the drain again)."""
        return [
            (conversation, lane)
            for conversation, lane in self._lanes.items()
            if lane.pending and not lane.alone and not lane.lock.locked()
        ]

    async def _drain_together(self) -> None:
        """Store every ready lane's messages in one transaction, again and again until none
        is ready. The conversations the storage left out go alone (:meth:`_drain_alone`).
        """
        try:
            while ready := self._ready():
                held: list[tuple[str, _Lane]] = []
                try:
                    for conversation, lane in ready:
                        lane.users += 1
                        try:
                            await lane.lock.acquire()  # free: at once
                        except BaseException:
                            self._release(conversation, lane)
                            raise
                        held.append((conversation, lane))
                    batch = [item for _, lane in held for item in lane.pending]
                    for _, lane in held:
                        lane.pending = []
                    left = await self._commit(batch, together=True)
                    for conversation, lane in held:
                        mine = [item for item in left if item.message.conversation == conversation]
                        if mine:
                            # Before what arrived meanwhile: the lane's order stays.
                            lane.pending[:0] = mine
                            lane.alone = True
                            lane.users += 1
                            self._tasks.spawn(
                                self._drain_alone(conversation, lane), name="parley-commit"
                            )
                finally:
                    for conversation, lane in held:
                        lane.lock.release()
                        self._release(conversation, lane)
        finally:
            self._draining_together = False

    async def _drain_alone(self, conversation: str, lane: _Lane) -> None:
        """Store a lane left out of the shared transaction in one of its own, waiting for its
        row as long as the storage does; then it goes back to the shared transaction.
        """
        try:
            async with self._alone_slots, lane.lock:
                batch, lane.pending = lane.pending, []
                await self._commit(batch, together=False)
        finally:
            lane.alone = False
            self._release(conversation, lane)

    def _release(self, conversation: str, lane: _Lane) -> None:
        lane.users -= 1
        if lane.pending:
            if not lane.alone:
                self._drain_soon()
        elif not lane.users:
            del self._lanes[conversation]

    async def _commit(self, batch: list[Pending], *, together: bool) -> list[Pending]:
        """Store one batch, publish what is new, answer the senders; return what the storage
        left out (``together`` only). Never raises but CancelledError (its senders are then
        told ``unavailable``).
        """
        try:
            with self._metrics.append_seconds.time():
                messages = [item.message for item in batch]
                stored: Sequence[StoredMessage | None] = (
                    await self._storage.append_free(messages)
                    if together
                    else await self._storage.append(messages)
                )
        except StorageUnavailable as exc:
            if isinstance(exc, CommitUncertain):
                for item in batch:
                    self._doubt(item.message)
            self._health.failed(exc, messages=len(batch))
            self._refuse(batch, ErrorCode.UNAVAILABLE)
            return []
        except asyncio.CancelledError:
            self._refuse(batch, ErrorCode.UNAVAILABLE)
            raise
        except Exception:
            log.exception("Bug: storing %d messages failed", len(batch))
            self._refuse(batch, ErrorCode.INTERNAL_ERROR)
            return []
        left = [item for item, record in zip(batch, stored, strict=True) if record is None]
        done = [
            (item, record) for item, record in zip(batch, stored, strict=True) if record is not None
        ]
        if done:
            self._health.succeeded()
            self._metrics.committed(len(done), sum(not record.duplicate for _, record in done))
        self._publish(done)
        return left

    def _publish(self, done: list[tuple[Pending, StoredMessage]]) -> None:
        read: list[Mark] = []
        for item, record in done:
            message = item.message
            # A retry of a message whose first commit ended in doubt was never published.
            identity = (message.conversation, message.sender_key, message.msg_id)
            if not record.duplicate or self._doubtful.pop(identity, False):
                try:
                    self._bus.publish(record.conversation, encode(as_event(record)), record.seq)
                except Exception:
                    log.exception("Bug: publishing to %s failed", record.conversation)
                self._markers.shown(message.participants, record.conversation, record.seq, read)
            if item.sender is None:
                continue
            if item.sender.account and not message.participants:
                # Whoever writes in a room has read it up to there (private: done above).
                read.append((item.sender.account, record.conversation, record.seq))
            item.sender.write(
                encode(
                    Sent(
                        id=item.request_id,
                        seq=record.seq,
                        ts=record.ts,
                        duplicate=record.duplicate,
                        away=item.away,
                        offline=item.offline,
                    )
                )
            )
        # A private message shown to an online account, and a room message to its sender, count
        # as read. Off the commit path.
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
