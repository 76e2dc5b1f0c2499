"""Pages of the room list for ``rooms`` replies, read from storage at most once a second each.

Clients page through ``rooms`` (and a hostile one repeats it): each page read turns up to 1,001
rows into objects on the event loop. Here a page's rows are read once and kept for
PAGE_SECONDS as plain (name, topic, encoded size) entries, shared by every request for the same
page meanwhile, including those that arrive while it is being read. Member counts are live: they
are looked up at every request. A topic set or a room made on this node drops every kept page
at once; one changed on another node shows within PAGE_SECONDS.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Callable

import msgspec

from parley.clock import SYSTEM_CLOCK, Clock
from parley.protocol.messages import RoomSummary
from parley.storage import Storage

# How long a page read from storage is reused.
PAGE_SECONDS = 1.0
# Pages kept at most (by ``after`` and ``limit``); the oldest go first.
MAX_PAGES = 256
# How long the total may be old: counting rooms reads the whole index.
COUNT_SECONDS = 5.0
# The encoded size of a summary's member count of 0; a larger count adds its further digits.
_ZERO_MEMBERS_BYTES = 1


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    name: str
    topic: str
    # Bytes of its summary with 0 members, and the comma or bracket after it.
    size: int


# A page's read from storage: its entries, and whether more rooms follow.
_Reading = asyncio.Future[tuple[list[_Entry], bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """One reply's rooms, and the ``after`` of the next page ("" on the last)."""

    rooms: list[RoomSummary]
    next: str


class RoomListing:
    """Pages of rooms in key order, with live member counts from ``members`` (a room's key to
    its number of members online on this node).
    """

    def __init__(
        self, storage: Storage, members: Callable[[str], int], clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._members = members
        # (after_key, limit) -> (when it was read, its entries and whether more follow)
        self._pages: collections.OrderedDict[tuple[str, int], tuple[float, _Reading]] = (
            collections.OrderedDict()
        )
        self._count: tuple[float, int] | None = None

    def forget(self) -> None:
        """Rooms or topics changed: read pages again from storage."""
        self._pages.clear()

    async def page(self, after_key: str, limit: int, most_bytes: int) -> Page:
        """The first ``limit`` rooms after ``after_key`` ("" from the first), cut further so
        that their summaries take at most ``most_bytes`` (but at least one room).
        """
        entries, more = await self._entries(after_key, limit)
        members = self._members
        rooms: list[RoomSummary] = []
        size = 0
        for entry in entries:
            count = members(entry.key)
            size += entry.size + len(str(count)) - _ZERO_MEMBERS_BYTES
            if size > most_bytes and rooms:
                more = True
                break
            rooms.append(RoomSummary(room=entry.name, members=count, topic=entry.topic))
        return Page(rooms, rooms[-1].room if more and rooms else "")

    async def total(self) -> int:
        """How many rooms there are, counted at most every COUNT_SECONDS."""
        now = self._clock.monotonic()
        if self._count is None or now - self._count[0] > COUNT_SECONDS:
            self._count = (now, await self._storage.room_count())
        return self._count[1]

    async def _entries(self, after_key: str, limit: int) -> tuple[list[_Entry], bool]:
        now = self._clock.monotonic()
        key = (after_key, limit)
        kept = self._pages.get(key)
        if kept is not None and now - kept[0] <= PAGE_SECONDS:
            # Shielded: one waiter cancelled must not cancel the read for the others.
            return await asyncio.shield(kept[1])
        reading = asyncio.ensure_future(self._read(after_key, limit))
        reading.add_done_callback(lambda done: self._failed(key, done))
        self._pages[key] = (now, reading)
        self._pages.move_to_end(key)
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)
        return await asyncio.shield(reading)

    def _failed(
        self, key: tuple[str, int], done: asyncio.Future[tuple[list[_Entry], bool]]
    ) -> None:
        """A read that failed is not kept: the next request tries storage again. (Its error
        is taken here too, so that a read nobody waits for any more is not reported.)
        """
        if done.cancelled() or done.exception() is not None:
            kept = self._pages.get(key)
            if kept is not None and kept[1] is done:
                del self._pages[key]

    async def _read(self, after_key: str, limit: int) -> tuple[list[_Entry], bool]:
        records = await self._storage.rooms(after_key, limit + 1)
        entries = [
            _Entry(
                record.key,
                record.name,
                record.topic,
                len(msgspec.json.encode(RoomSummary(record.name, 0, record.topic))) + 1,
            )
            for record in records[:limit]
        ]
        return entries, len(records) > limit
