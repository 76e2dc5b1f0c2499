"""The cluster bus on Redis pub/sub: frames and events reach every node that is subscribed.

Why pub/sub and not Streams: PostgreSQL already numbers every message (``seq``) and keeps it;
it is the record and the sequencer. Redis only has to carry the news fast. Pub/sub costs one
``PUBLISH`` per frame and keeps nothing, so a Redis restart loses nothing that matters: a
node that sees a gap in a conversation's numbers, or whose link comes back, reads what it
missed from PostgreSQL (see :mod:`parley.server.sequencer`). Streams would keep a second
copy of every message, with trimming and consumer positions to look after, to recover what
PostgreSQL already holds.

One channel for everything a node says, so that a node's frames and events keep their order.
Each payload is ``[node, kind, conversation, seq, body]`` in msgpack; a node ignores its own
(it delivered them at once when they were published).

Every wait on Redis is bounded: a publish gives up after _COMMAND_SECONDS, a read wakes every
_POLL_SECONDS. When the link goes, it is logged once and the link handlers are told once;
when it comes back the same, and the handlers start the repair from storage.

The loops bound their waits with ``asyncio.timeout``, never ``asyncio.wait_for``: on Python
3.11, a ``wait_for`` cancelled in the instant its awaitable finishes returns the result and
drops the cancellation, so a loop around it (a read that finishes every second, or at every
frame) would go on for ever and the node would never stop. They also end on ``_closing``, so
that a cancellation lost anywhere below still cannot keep them running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from parley.bus import BusUnavailable, Delivery, EventHandler, LinkHandler
from parley.server.tasks import cancel_and_wait

log = logging.getLogger("parley.server.bus")

# A command to Redis (a publish batch, a lease renewal) that takes longer has failed.
_COMMAND_SECONDS = 2.0
# How long a subscription read waits for a frame before looking again (and noticing a stop).
_POLL_SECONDS = 1.0
# After a fault, the link is tried again this often.
_RETRY_SECONDS = 0.5
# Frames queued for Redis past this are dropped (the other nodes read them from storage):
# a Redis that does not take them must not hold this node's memory without bound.
_MAX_QUEUED = 100_000
# Frames sent in one pipeline: one round trip for many.
_BATCH = 1000
# At stop, how long the reader and the sender get to end once told to.
_STOP_SECONDS = _POLL_SECONDS + _COMMAND_SECONDS

_FRAME = "f"
_EVENT = "e"
# "Read these conversations from storage": sent by a node that dropped frames of them.
_STALE = "s"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[str, str, str, int, bytes])


def redis_client(url: str) -> tuple[aioredis.Redis, str]:
    """A client for ``url`` (``redis://HOST:PORT/DB``, optionally ``?prefix=NAME`` to share one
    Redis between clusters) and the prefix of every key and channel. Raises ValueError.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"bus {url!r} is not a Redis URL: use redis://HOST:PORT/DB")
    query = urllib.parse.parse_qs(parts.query)
    prefix = query.pop("prefix", ["parley"])[0]
    database = parts.path.strip("/") or "0"
    # Keys are per database, but channels are not: the database's number is in their names.
    prefix = f"{prefix}:{database}"
    rest = urllib.parse.urlencode({key: values[-1] for key, values in query.items()})
    clean = urllib.parse.urlunsplit(parts._replace(query=rest))
    client = aioredis.Redis.from_url(
        clean,
        socket_timeout=_COMMAND_SECONDS,
        socket_connect_timeout=_COMMAND_SECONDS,
        # Pub/sub reads wait longer than a command; the reader wakes on its own to look.
        health_check_interval=0,
        retry_on_timeout=False,
    )
    return client, prefix


def describe(url: str) -> str:
    """The Redis server in words, with no password in it."""
    parts = urllib.parse.urlsplit(url)
    return f"Redis {parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or '/0'}"


class RedisBus:
    """Frames and events through one Redis channel; a node's own arrive at once, locally."""

    def __init__(self, client: aioredis.Redis, prefix: str, where: str) -> None:
        self._client = client
        self._channel = f"{prefix}:bus"
        self._where = where
        self.node = uuid.uuid4().hex[:12]
        self._subscribers: list[Delivery] = []
        self._event_handlers: list[EventHandler] = []
        self._link_handlers: list[LinkHandler] = []
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        # Conversations whose frames were dropped on the way out: the others are told to read
        # them from storage once the link is back.
        self._dropped: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._link_up = True
        # Set by stop: the loops end at their next turn.
        self._closing = False

    @property
    def ordered(self) -> bool:
        return False

    def subscribe(self, deliver: Delivery) -> None:
        self._subscribers.append(deliver)

    def on_event(self, handler: EventHandler) -> None:
        self._event_handlers.append(handler)

    def on_link(self, handler: LinkHandler) -> None:
        self._link_handlers.append(handler)

    def publish(self, conversation: str, frame: bytes, seq: int = 0) -> None:
        for deliver in self._subscribers:
            deliver(conversation, frame, seq)
        self._send(_FRAME, conversation, seq, frame)

    def announce(self, event: bytes) -> None:
        self._send(_EVENT, "", 0, event)

    def _send(self, kind: str, conversation: str, seq: int, body: bytes) -> None:
        if self._queue.qsize() >= _MAX_QUEUED:
            if conversation:
                self._dropped.add(conversation)
            return
        self._queue.put_nowait(_encoder.encode((self.node, kind, conversation, seq, body)))

    async def start(self) -> None:
        self._closing = False
        try:
            await asyncio.wait_for(self._client.ping(), _COMMAND_SECONDS)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._client.aclose()
            raise BusUnavailable(
                f"Cannot reach the bus ({self._where}): {_why(exc)}; check that Redis runs "
                "there, or correct the bus setting (--bus, PARLEY_BUS, or bus in the settings "
                "file)."
            ) from exc
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen(ready), name="parley-bus-listen"),
            asyncio.create_task(self._send_forever(), name="parley-bus-send"),
        ]
        # Subscribed before the first frame is published here, when Redis answers in time.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), _COMMAND_SECONDS)

    async def stop(self) -> None:
        # What is queued gets a moment to leave: the other nodes would read it from storage
        # anyway, but later.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), _COMMAND_SECONDS)
        self._closing = True
        await cancel_and_wait(self._tasks, _STOP_SECONDS, "the bus")
        self._tasks = []
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self._client.aclose(), _COMMAND_SECONDS)

    # --- the link ------------------------------------------------------------------------

    def _fault(self, exc: BaseException) -> None:
        """Name a fault once, however many commands meet it."""
        if not self._link_up:
            return
        self._link_up = False
        why = f"{self._where}: {_why(exc)}"
        log.warning("The bus is unreachable (%s); retrying, other nodes' news is late", why)
        for handler in self._link_handlers:
            handler(False, why)

    def _recovered(self) -> None:
        if self._link_up:
            return
        self._link_up = True
        log.warning("The bus is reachable again (%s)", self._where)
        for handler in self._link_handlers:
            handler(True, "")

    async def _send_forever(self) -> None:
        """Publish what is queued, a pipeline per batch; a batch Redis does not take is
        dropped (it is in storage) and its conversations named once the link is back.
        """
        while not self._closing:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    if self._dropped:
                        stale = sorted(self._dropped)[:_BATCH]
                        pipe.publish(self._channel, _encoder.encode(
                            (self.node, _STALE, "", 0, _encoder.encode(stale))))  # fmt: skip
                    for payload in batch:
                        pipe.publish(self._channel, payload)
                    async with asyncio.timeout(_COMMAND_SECONDS):
                        await pipe.execute()
                self._dropped.clear()
            except (RedisError, OSError, TimeoutError) as exc:
                self._fault(exc)
                for payload in batch:
                    _, kind, conversation, _, _ = _decoder.decode(payload)
                    if kind == _FRAME and conversation:
                        self._dropped.add(conversation)
                await asyncio.sleep(_RETRY_SECONDS)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _listen(self, ready: asyncio.Event) -> None:
        """Subscribe, and deliver what other nodes publish; after a fault, subscribe again
        and tell the link handlers (they read what was missed from storage).
        """
        while not self._closing:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(_COMMAND_SECONDS):
                    await pubsub.subscribe(self._channel)
                ready.set()
                self._recovered()
                while not self._closing:
                    async with asyncio.timeout(_POLL_SECONDS + _COMMAND_SECONDS):
                        message = await pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is not None:
                        self._received(message)
            except (RedisError, OSError, TimeoutError) as exc:
                self._fault(exc)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(_COMMAND_SECONDS):
                        await pubsub.aclose()
            if not self._closing:
                await asyncio.sleep(_RETRY_SECONDS)

    def _received(self, message: dict[str, Any]) -> None:
        data = message.get("data")
        if not isinstance(data, bytes):
            return
        try:
            node, kind, conversation, seq, body = _decoder.decode(data)
        except msgspec.DecodeError:
            log.warning("The bus carried something that is not Parley's; ignored")
            return
        if node == self.node:
            return
        try:
            if kind == _FRAME:
                for deliver in self._subscribers:
                    deliver(conversation, body, seq)
            elif kind == _EVENT:
                for handler in self._event_handlers:
                    handler(body)
            elif kind == _STALE:
                # The other node could not send frames of these: treat as a link repair.
                for link in self._link_handlers:
                    link(True, "")
        except Exception:
            log.exception("Bug: handling a frame from the bus failed")


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
