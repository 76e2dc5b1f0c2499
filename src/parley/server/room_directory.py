"""The ``rooms`` listing: one page of rooms at a time, in key order, with a total counted at
most every few seconds.
"""

from __future__ import annotations

import time

import msgspec

from parley.protocol.messages import Rooms, RoomSummary
from parley.protocol.names import normalize_room, room_key
from parley.server.live_rooms import LiveRooms
from parley.storage import Storage

# A ``rooms`` page stays this small: a quarter of the slow-reader limit
# (ServerConfig.send_buffer_limit_bytes, 1 MiB by default) and of the client's frame limit.
_ROOMS_REPLY_BYTES = 256 * 1024
# How long the total in a ``rooms`` reply may be old: counting rooms reads the whole index, and
# clients paging (or hammering) ``rooms`` must not each pay for that.
_ROOM_COUNT_SECONDS = 5.0


class RoomDirectory:
    """The stored rooms, with the number of members each has on this node."""

    def __init__(self, storage: Storage, rooms: LiveRooms) -> None:
        self._storage = storage
        self._rooms = rooms
        # (when it was counted, the number of rooms).
        self._room_count: tuple[float, int] | None = None

    async def page(self, request_id: int, after: str, limit: int) -> Rooms:
        """One page of rooms in key order: the first ``limit`` after the room named ``after``
        ("" from the start), cut further to stay under _ROOMS_REPLY_BYTES. ``next`` is the name
        to ask after for the next page, "" on the last. One index range read, whatever the
        number of rooms (the total is counted at most every _ROOM_COUNT_SECONDS). Raises
        PeerError(INVALID_ROOM) for a bad ``after``.
        """
        after_key = room_key(normalize_room(after)) if after else ""
        records = await self._storage.rooms(after_key, limit + 1)
        more = len(records) > limit
        summaries: list[RoomSummary] = []
        size = 0
        for record in records[:limit]:
            live = self._rooms.get(record.key)
            summary = RoomSummary(
                room=record.name,
                members=len(live.members) if live is not None else 0,
                topic=record.topic,
            )
            size += len(msgspec.json.encode(summary)) + 1
            if size > _ROOMS_REPLY_BYTES and summaries:
                more = True
                break
            summaries.append(summary)
        total = await self._total()
        next_after = summaries[-1].room if more and summaries else ""
        return Rooms(id=request_id, rooms=summaries, total=total, next=next_after)

    async def _total(self) -> int:
        now = time.monotonic()
        if self._room_count is None or now - self._room_count[0] > _ROOM_COUNT_SECONDS:
            self._room_count = (now, await self._storage.room_count())
        return self._room_count[1]
