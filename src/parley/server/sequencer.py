"""Each conversation's messages to this node's members in ``seq`` order, once each, whatever
the bus does.

With several nodes, the bus may bring a conversation's messages late, out of order, twice, or
not at all (Redis restarted, a frame dropped). Storage numbers every message and keeps it, so
it is the sequencer: this node remembers, per conversation with members here, the last
``seq`` it delivered (its cursor). A frame at the cursor + 1 is delivered; one at or below is
a duplicate and dropped; one further on means a gap, which is filled from storage (one read
per gap, a page at a time) before what came after it, held meanwhile, is delivered.

A room's cursor is set when a member comes in (:meth:`Sequencer.catch_up`, from the history
its members have seen); until then a room's frames have nobody to go to. A private
conversation's is set by the first of its frames to come here. When the link to the other
nodes comes back, every conversation is read from its cursor (:meth:`repair_all`): a frame
lost while it was down has no later frame to reveal its gap.

With one node (an ordered bus), frames are delivered as they come: nothing here is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from parley.protocol.messages import encode
from parley.server.conversations import as_event, is_private
from parley.server.tasks import TaskSet
from parley.storage import Storage, StorageUnavailable, StoredMessage

log = logging.getLogger("parley.server.sequencer")

# Messages read from storage per round of a repair.
_PAGE = 500
# Frames held per conversation while its gap is filled; past this they are dropped (the
# repair reads them from storage too, as it reads to the end).
_MAX_HELD = 10_000
# After a storage fault, a repair tries again this often.
_RETRY_SECONDS = 1.0


class Sequencer:
    """Cursors and repairs. ``deliver(conversation, frame)`` writes to the members here;
    ``audience(conversation)`` says whether anyone here may receive it.
    """

    def __init__(
        self,
        storage: Storage,
        deliver: Callable[[str, bytes], None],
        audience: Callable[[str], bool],
        members_here: Callable[[str], bool],
        tasks: TaskSet,
        *,
        ordered: bool,
    ) -> None:
        self._storage = storage
        self._deliver = deliver
        self._audience = audience
        self._members_here = members_here
        self._tasks = tasks
        self._ordered = ordered
        # Conversation -> the last seq delivered here.
        self._cursors: dict[str, int] = {}
        # Conversation -> frames held (by seq) while its repair runs; present while it does.
        self._held: dict[str, dict[int, bytes]] = {}
        self._failing = False

    def cursor(self, conversation: str) -> int | None:
        return self._cursors.get(conversation)

    def deliver(self, conversation: str, frame: bytes, seq: int) -> None:
        """What the bus calls for every frame. Never awaits."""
        if self._ordered or seq == 0:
            self._deliver(conversation, frame)
            return
        if not self._audience(conversation):
            self._cursors.pop(conversation, None)
            return
        held = self._held.get(conversation)
        if held is not None:
            if seq > self._cursors.get(conversation, 0) and len(held) < _MAX_HELD:
                held[seq] = frame
            return
        cursor = self._cursors.get(conversation)
        if cursor is None:
            if not is_private(conversation) and not self._members_here(conversation):
                # Nobody here has come in yet: the first to come sets the cursor.
                return
            cursor = seq - 1
        if seq <= cursor:
            return
        if seq == cursor + 1:
            self._cursors[conversation] = seq
            self._deliver(conversation, frame)
            return
        self._held[conversation] = {seq: frame}
        self._tasks.spawn(self._repair(conversation), name="parley-repair")

    def forget(self, conversation: str) -> None:
        """Nobody here is in ``conversation`` any more."""
        self._cursors.pop(conversation, None)

    async def catch_up(self, conversation: str, seen: int | None) -> None:
        """Before someone comes into ``conversation`` having seen up to ``seen`` (None: up to
        whatever storage has now): bring the members already here there too, so that every
        later message reaches all of them once. Raises StorageUnavailable.
        """
        if self._ordered:
            return
        if seen is None:
            if conversation in self._cursors:
                return
            latest = await self._storage.history(conversation, limit=1)
            seen = latest[-1].seq if latest else 0
        if conversation not in self._cursors:
            self._cursors[conversation] = seen
            # Frames that came while storage was read were dropped (no cursor yet): look
            # once more, after whoever is coming has come in.
            self._check(conversation)
            return
        while self._cursors.get(conversation, seen) < seen:
            records = await self._storage.history(
                conversation, limit=_PAGE, after_seq=self._cursors.get(conversation, seen)
            )
            if not records:
                break
            self._deliver_stored(conversation, records)
        if self._cursors.get(conversation, seen) < seen:
            # Storage has no more (purged): nobody here can be shown those.
            self._cursors[conversation] = seen

    def repair_all(self) -> None:
        """Read every conversation with members here from its cursor (the link came back)."""
        if self._ordered:
            return
        for conversation in list(self._cursors):
            self._check(conversation)

    def _check(self, conversation: str) -> None:
        """Read ``conversation`` from its cursor, in a task, unless a repair is under way."""
        if conversation not in self._held:
            self._held[conversation] = {}
            self._tasks.spawn(self._repair(conversation), name="parley-repair")

    def _deliver_stored(self, conversation: str, records: list[StoredMessage]) -> None:
        for record in records:
            cursor = self._cursors.get(conversation)
            if cursor is not None and record.seq <= cursor:
                continue
            self._cursors[conversation] = record.seq
            self._deliver(conversation, encode(as_event(record)))

    async def _repair(self, conversation: str) -> None:
        """Fill the gap before the frames held for ``conversation``, from storage, then
        deliver them. Retries while storage is failing, for as long as anyone here listens.
        """
        try:
            while True:
                if not self._audience(conversation) or conversation not in self._cursors:
                    return
                try:
                    records = await self._storage.history(
                        conversation, limit=_PAGE, after_seq=self._cursors[conversation]
                    )
                except StorageUnavailable as exc:
                    if not self._failing:
                        log.warning("Filling a gap from storage failed, retrying: %s", exc)
                    self._failing = True
                    await asyncio.sleep(_RETRY_SECONDS)
                    continue
                if self._failing:
                    log.warning("Filling gaps from storage works again")
                    self._failing = False
                if conversation not in self._cursors:
                    return
                self._deliver_stored(conversation, list(records))
                held = self._held[conversation]
                cursor = self._cursors[conversation]
                for seq in sorted(held):
                    frame = held.pop(seq)
                    if seq == cursor + 1:
                        cursor = seq
                        self._cursors[conversation] = seq
                        self._deliver(conversation, frame)
                    elif seq > cursor + 1:
                        held[seq] = frame
                        break
                if len(records) == _PAGE:
                    continue
                if not held:
                    return
                if not records:
                    # Storage has nothing between the cursor and what came (purged by
                    # retention): go on from what came.
                    self._cursors[conversation] = min(held) - 1
        finally:
            self._held.pop(conversation, None)
