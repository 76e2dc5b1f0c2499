"""Who is in which room on every node, in Redis: ``who``, a room's member count and a big
room's summaries count the whole cluster.

Keys (under the bus's prefix), each written by its own node alone:

- ``room:NODE:KEY``: the nicknames in room KEY on node NODE (a set), read by ``who``;
- ``rooms:NODE``: room key -> how many members it has on NODE (a hash), read by the other
  nodes every _REFRESH_SECONDS for their member counts;
- ``rostered``: the nodes that have written any.

A node's members count while its lease (``node:ID``, kept by
:class:`parley.bus.redis_directory.RedisDirectory`) stands: once a dead node's lease lapses,
at most LEASE_SECONDS after it died, ``who`` leaves its members out, and member counts do
within _REFRESH_SECONDS more. The first node to see a lapsed lease deletes that node's keys; a
node that stops deletes its own at once.

Joins and parts are queued and written by one task, a pipeline per batch: a storm of joins
costs a round trip per batch, and nothing on a joiner's path waits for Redis. When Redis
cannot be reached, or the queue overflows, or this node's keys are found missing (Redis
restarted, or this node was paused past its lease and another node deleted them), every room
of this node is written again from what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from parley.bus import LocalRooms
from parley.bus.redis_directory import bounded, text
from parley.clock import SYSTEM_CLOCK, Clock
from parley.server.tasks import cancel_and_wait

log = logging.getLogger("parley.server.bus")

# How often the member counts of the other nodes are read.
_REFRESH_SECONDS = 1.0
# After a fault, writing is tried again this often.
_RETRY_SECONDS = 0.5
# Changes written in one pipeline.
_BATCH = 1000
# Changes queued past this are dropped, and every room written again once there is room.
_MAX_QUEUED = 100_000
# At stop, how long the tasks get to end once told to.
_STOP_SECONDS = 4.0
# How long the other nodes' members of a room, once read, serve the pages of ``who`` after the
# first (the same staleness as the counts): paging through a big room reads every node's set
# about once a second, not once a page.
MEMBERS_SECONDS = 1.0


class RedisRoster:
    def __init__(
        self, client: aioredis.Redis, prefix: str, node: str, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._client = client
        self._clock = clock
        self._prefix = prefix
        self._node = node
        # Room key -> members on this node, as told by joined and left.
        self._here: dict[str, int] = {}
        # (room, nick, joined) not written yet, in order.
        self._changes: list[tuple[str, str, bool]] = []
        self._rewrite = False
        self._wake = asyncio.Event()
        # Room key -> members on the other live nodes, as last read.
        self._counts: dict[str, int] = {}
        # Room key -> (when read, its members on the other live nodes then), for pages.
        self._members_read: dict[str, tuple[float, list[str]]] = {}
        self._members_pruned = 0.0
        self._local_rooms: LocalRooms = dict
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False
        # Set by stop: the loops end at their next turn.
        self._closing = False

    # --- keys ------------------------------------------------------------------------------

    def _members_key(self, node: str, room: str) -> str:
        return f"{self._prefix}:room:{node}:{room}"

    def _counts_key(self, node: str) -> str:
        return f"{self._prefix}:rooms:{node}"

    @property
    def _rostered_key(self) -> str:
        return f"{self._prefix}:rostered"

    def _lease_key(self, node: str) -> str:
        return f"{self._prefix}:node:{node}"

    # --- this node's members ---------------------------------------------------------------

    def joined(self, room: str, nick: str) -> None:
        self._here[room] = self._here.get(room, 0) + 1
        self._queue(room, nick, True)

    def left(self, room: str, nick: str) -> None:
        count = self._here.get(room, 0) - 1
        if count > 0:
            self._here[room] = count
        else:
            self._here.pop(room, None)
        self._queue(room, nick, False)

    def _queue(self, room: str, nick: str, joined: bool) -> None:
        if self._rewrite:
            return  # everything is written again anyway
        if len(self._changes) >= _MAX_QUEUED:
            self._changes.clear()
            self._rewrite = True
        else:
            self._changes.append((room, nick, joined))
        self._wake.set()

    # --- the other nodes' members ----------------------------------------------------------

    def elsewhere(self, room: str) -> int:
        return self._counts.get(room, 0)

    async def members_elsewhere(self, room: str, *, fresh: bool = True) -> list[str]:
        now = self._clock.monotonic()
        if not fresh:
            kept = self._members_read.get(room)
            if kept is not None and now - kept[0] < MEMBERS_SECONDS:
                return kept[1]
        names = await self._read_members(room)
        if names is None:
            return []  # not kept: the next request tries Redis again
        self._keep_members(now, room, names)
        return names

    def _keep_members(self, now: float, room: str, names: list[str]) -> None:
        if now - self._members_pruned >= MEMBERS_SECONDS:
            # Only the rooms read within the last second stay.
            self._members_pruned = now
            self._members_read = {
                key: kept
                for key, kept in self._members_read.items()
                if now - kept[0] < MEMBERS_SECONDS
            }
        self._members_read[room] = (now, names)

    async def _read_members(self, room: str) -> list[str] | None:
        """The nicknames in ``room`` on the other live nodes, read now; None on a fault."""
        try:
            nodes = await self._other_nodes()
            if not nodes:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for node in nodes:
                    pipe.exists(self._lease_key(node))
                    pipe.smembers(self._members_key(node, room))
                replies = await bounded(pipe.execute())
        except (RedisError, OSError, TimeoutError) as exc:
            self._fault(exc)
            return None
        names: list[str] = []
        for alive, members in zip(replies[::2], replies[1::2], strict=True):
            if alive:
                names.extend(text(member) for member in members)
        return names

    async def _other_nodes(self) -> list[str]:
        nodes = await bounded(self._client.smembers(self._rostered_key))
        return [node for node in map(text, nodes) if node != self._node]

    # --- running ---------------------------------------------------------------------------

    async def start(self, local_rooms: LocalRooms) -> None:
        self._closing = False
        self._local_rooms = local_rooms
        self._rewrite = True
        self._wake.set()
        self._tasks = [
            asyncio.create_task(self._write_forever(), name="parley-roster-write"),
            asyncio.create_task(self._refresh_forever(), name="parley-roster-read"),
        ]

    async def stop(self) -> None:
        self._closing = True
        self._wake.set()
        await cancel_and_wait(self._tasks, _STOP_SECONDS, "the roster")
        self._tasks = []
        # This node's members are gone now rather than when its lease lapses.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._forget(self._node)

    async def _write_forever(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._rewrite:
                    await self._write_all()
                while self._changes and not self._closing:
                    batch = self._changes[:_BATCH]
                    del self._changes[:_BATCH]
                    await self._write(batch)
            except (RedisError, OSError, TimeoutError) as exc:
                self._fault(exc)
                self._changes.clear()
                self._rewrite = True
                await asyncio.sleep(_RETRY_SECONDS)
                self._wake.set()

    async def _write(self, batch: list[tuple[str, str, bool]]) -> None:
        counts_key = self._counts_key(self._node)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.sadd(self._rostered_key, self._node)
            for room, nick, joined in batch:
                if joined:
                    pipe.sadd(self._members_key(self._node, room), nick)
                else:
                    pipe.srem(self._members_key(self._node, room), nick)
            for room in {room for room, _, _ in batch}:
                count = self._here.get(room, 0)
                if count:
                    pipe.hset(counts_key, room, count)
                else:
                    pipe.hdel(counts_key, room)
            await bounded(pipe.execute())
        self._works()

    async def _write_all(self) -> None:
        """Write every room of this node again, from what it holds now."""
        self._rewrite = False
        self._changes.clear()
        rooms = {room: nicks for room, nicks in self._local_rooms().items() if nicks}
        self._here = {room: len(nicks) for room, nicks in rooms.items()}
        counts_key = self._counts_key(self._node)
        stale = await bounded(self._client.hkeys(counts_key))
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(counts_key, *(self._members_key(self._node, text(room)) for room in stale))
            pipe.sadd(self._rostered_key, self._node)
            for room, nicks in rooms.items():
                pipe.sadd(self._members_key(self._node, room), *nicks)
            if rooms:
                pipe.hset(counts_key, mapping=dict(self._here.items()))
            await bounded(pipe.execute())
        self._works()

    async def _refresh_forever(self) -> None:
        while not self._closing:
            try:
                await self._refresh()
            except (RedisError, OSError, TimeoutError) as exc:
                self._fault(exc)
            await asyncio.sleep(_REFRESH_SECONDS)

    async def _refresh(self) -> None:
        """Read the other nodes' member counts; forget the nodes whose lease lapsed; write
        this node's rooms again if they are missing.
        """
        nodes = await self._other_nodes()
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.exists(self._counts_key(self._node))
            for node in nodes:
                pipe.exists(self._lease_key(node))
                pipe.hgetall(self._counts_key(node))
            mine, *replies = await bounded(pipe.execute())
        if self._here and not mine and not self._changes and not self._rewrite:
            self._rewrite = True
            self._wake.set()
        counts: dict[str, int] = {}
        for node, alive, rooms in zip(nodes, replies[::2], replies[1::2], strict=True):
            if not alive:
                await self._forget(node)
                continue
            for room, count in rooms.items():
                key = text(room)
                counts[key] = counts.get(key, 0) + int(count)
        self._counts = counts
        self._works()

    async def _forget(self, node: str) -> None:
        """Delete ``node``'s keys: it stopped, or its lease lapsed."""
        counts_key = self._counts_key(node)
        rooms = await bounded(self._client.hkeys(counts_key))
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.delete(counts_key, *(self._members_key(node, text(room)) for room in rooms))
            pipe.srem(self._rostered_key, node)
            await bounded(pipe.execute())

    def _fault(self, exc: BaseException) -> None:
        # Named at warning level by the bus, which shares the Redis: once is enough.
        if not self._failing:
            why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            log.debug("The room roster in Redis is unreachable: %s", why)
        self._failing = True

    def _works(self) -> None:
        self._failing = False
