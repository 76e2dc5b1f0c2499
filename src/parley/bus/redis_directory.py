"""Who is online on any node, in Redis: a nickname is held once in the whole cluster.

Keys (under the bus's prefix):

- ``node:ID``: the node's lease, renewed every _RENEW_SECONDS and lasting _LEASE_SECONDS. A
  node that dies stops renewing it: its users count as offline once it lapses.
- ``nick:KEY`` and ``skel:SKELETON``: ``node\\tprincipal\\tnick`` of whoever holds the name
  and its look-alikes. A name held by a node whose lease has lapsed is free.
- ``users:ID``: the nicknames online on a node, for listings.

Claims are one Lua script, so two nodes claiming at once cannot both win. When Redis cannot
be reached, claims are allowed (logins go on; the fault is logged once) and every name held
here is written again when it comes back.

Commands are bounded with ``asyncio.timeout``, not ``asyncio.wait_for`` (see
:mod:`parley.bus.redis` on why), and the lease's loop ends on ``_closing`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from parley.bus import RemoteUser
from parley.server.tasks import cancel_and_wait

log = logging.getLogger("parley.server.bus")

# A crashed node's users are offline after at most this long.
LEASE_SECONDS = 10.0
_RENEW_SECONDS = 2.0
_COMMAND_SECONDS = 2.0
# At stop, how long the renewal gets to end once told to.
_STOP_SECONDS = _RENEW_SECONDS + _COMMAND_SECONDS

T = TypeVar("T")

# KEYS: nick key, skeleton key, this node's users set. ARGV: value, node key prefix, node, nick.
# Returns the holder's value when the name is held on another live node, else sets it.
_CLAIM = """
for i = 1, 2 do
  local held = redis.call('GET', KEYS[i])
  if held then
    local node = string.match(held, '^([^\\t]*)\\t')
    if node ~= ARGV[3] and redis.call('EXISTS', ARGV[2] .. node) == 1 then
      return held
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[4])
return false
"""
# KEYS: nick key, skeleton key, users set. ARGV: node, principal, nick.
_RELEASE = """
for i = 1, 2 do
  local held = redis.call('GET', KEYS[i])
  if held and string.sub(held, 1, #ARGV[1] + #ARGV[2] + 2) == ARGV[1] .. '\\t' .. ARGV[2] .. '\\t'
  then
    redis.call('DEL', KEYS[i])
  end
end
redis.call('SREM', KEYS[3], ARGV[3])
return 1
"""

LocalUsers = Callable[[], list[tuple[str, str, str, str]]]


class RedisDirectory:
    def __init__(self, client: aioredis.Redis, prefix: str, node: str) -> None:
        self._client = client
        self._prefix = prefix
        self._node = node
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._lease: asyncio.Task[None] | None = None
        self._failing = False
        # Set by stop: the lease's loop ends at its next turn.
        self._closing = False

    @property
    def node(self) -> str:
        return self._node

    def _node_key(self, node: str) -> str:
        return f"{self._prefix}:node:{node}"

    def _keys(self, nick_key: str, skeleton: str) -> list[str]:
        return [
            f"{self._prefix}:nick:{nick_key}",
            f"{self._prefix}:skel:{skeleton}",
            f"{self._prefix}:users:{self._node}",
        ]

    async def claim(self, nick_key: str, skeleton: str, principal: str, nick: str) -> str | None:
        value = f"{self._node}\t{principal}\t{nick}"
        try:
            held = await bounded(
                self._claim(
                    keys=self._keys(nick_key, skeleton),
                    args=[value, f"{self._prefix}:node:", self._node, nick],
                )
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._fault(exc)
            return None
        self._works()
        if not held:
            return None
        return text(held).split("\t", 2)[2]

    async def release(self, nick_key: str, skeleton: str, principal: str, nick: str) -> None:
        try:
            await bounded(
                self._release(
                    keys=self._keys(nick_key, skeleton), args=[self._node, principal, nick]
                )
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._fault(exc)

    async def find(self, nick_key: str) -> RemoteUser | None:
        try:
            held = await bounded(self._client.get(f"{self._prefix}:nick:{nick_key}"))
            if not held:
                return None
            node, principal, nick = text(held).split("\t", 2)
            if node == self._node:
                return None
            alive = await bounded(self._client.exists(self._node_key(node)))
        except (RedisError, OSError, TimeoutError) as exc:
            self._fault(exc)
            return None
        return RemoteUser(principal, nick, node) if alive else None

    async def online(self) -> list[str]:
        try:
            nodes = await bounded(self._client.smembers(f"{self._prefix}:nodes"))
            names: list[str] = []
            for raw in nodes:
                node = text(raw)
                if node == self._node:
                    continue
                if not await bounded(self._client.exists(self._node_key(node))):
                    # Lapsed: forget it, so the set stays the size of the live cluster.
                    await bounded(self._client.srem(f"{self._prefix}:nodes", node))
                    continue
                members = await bounded(self._client.smembers(f"{self._prefix}:users:{node}"))
                names.extend(text(member) for member in members)
        except (RedisError, OSError, TimeoutError) as exc:
            self._fault(exc)
            return []
        return names

    async def start(self, local_users: LocalUsers) -> None:
        self._closing = False
        await self._renew()
        self._lease = asyncio.create_task(self._renew_forever(local_users), name="parley-lease")

    async def stop(self) -> None:
        self._closing = True
        if self._lease is not None:
            await cancel_and_wait([self._lease], _STOP_SECONDS, "the lease's renewal")
            self._lease = None
        # The lease ends now rather than when it lapses: this node's names are free at once.
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await bounded(
                self._client.delete(
                    self._node_key(self._node), f"{self._prefix}:users:{self._node}"
                )
            )

    async def _renew(self) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._node_key(self._node), b"1", px=int(LEASE_SECONDS * 1000))
            pipe.sadd(f"{self._prefix}:nodes", self._node)
            await bounded(pipe.execute())

    async def _renew_forever(self, local_users: LocalUsers) -> None:
        while not self._closing:
            await asyncio.sleep(_RENEW_SECONDS)
            was_failing = self._failing
            try:
                await self._renew()
                if was_failing:
                    # Redis may have lost everything (a restart): write our names again.
                    for nick_key, skeleton, principal, nick in local_users():
                        await self.claim(nick_key, skeleton, principal, nick)
            except (RedisError, OSError, TimeoutError) as exc:
                self._fault(exc)
            else:
                self._works()

    def _fault(self, exc: BaseException) -> None:
        # Named at warning level by the bus, which shares the Redis: once is enough.
        if not self._failing:
            why = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
            log.debug("The presence directory in Redis is unreachable: %s", why)
        self._failing = True

    def _works(self) -> None:
        self._failing = False


async def bounded(command: Awaitable[T]) -> T:
    """``command``, given up (TimeoutError) after _COMMAND_SECONDS (the roster's too)."""
    async with asyncio.timeout(_COMMAND_SECONDS):
        return await command


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
