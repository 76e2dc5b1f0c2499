"""A node's Redis bus and directory stop when asked, however busy the channel is.

On Python 3.11, ``asyncio.wait_for`` cancelled in the instant its awaitable finishes drops
the cancellation: the bus's reader, which finishes a read at every frame, then went on
reading for ever, and a node under traffic did not act on SIGTERM. Here the bus is stopped
many times while another client floods its channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid

from cluster_support import REDIS_URL, require_redis

from parley.bus.redis import RedisBus, redis_client
from parley.bus.redis_directory import RedisDirectory

ROUNDS = 25
# Far more than a stop needs (it waits at most a few seconds on a Redis that does not answer):
# past this the bus is not stopping at all.
STOP_BOUND_SECONDS = 15.0


async def flood(url: str, channel: str, stop: asyncio.Event) -> None:
    """Publish small frames on ``channel`` as fast as one connection can, until ``stop``."""
    client, _ = redis_client(url)
    try:
        while not stop.is_set():
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(50):
                    pipe.publish(channel, b"not a Parley frame")
                await pipe.execute()
            await asyncio.sleep(0)
    finally:
        await client.aclose()


async def test_the_bus_stops_under_traffic() -> None:
    await require_redis(REDIS_URL)
    url = f"{REDIS_URL}?prefix=parleytest-{uuid.uuid4().hex[:12]}"
    _, prefix = redis_client(url)
    stop_flood = asyncio.Event()
    flooding = asyncio.create_task(flood(url, f"{prefix}:bus", stop_flood))
    try:
        for _ in range(ROUNDS):
            client, prefix = redis_client(url)
            bus = RedisBus(client, prefix, "test Redis")
            directory = RedisDirectory(client, prefix, bus.node)
            received: list[bytes] = []
            bus.on_event(received.append)
            await bus.start()
            await directory.start(list)
            # Stopped at a random moment of the reader's work.
            await asyncio.sleep(random.uniform(0, 0.3))
            await asyncio.wait_for(directory.stop(), STOP_BOUND_SECONDS)
            await asyncio.wait_for(bus.stop(), STOP_BOUND_SECONDS)
    finally:
        stop_flood.set()
        with contextlib.suppress(asyncio.CancelledError):
            await flooding
