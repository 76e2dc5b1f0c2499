"""The other nodes' members of a room, as ``who`` reads them from Redis: the first page reads
them now, the pages after it share that read for ``MEMBERS_SECONDS``, so that paging through
a big room reads every node's set about once a second instead of once a page.
"""

from __future__ import annotations

import asyncio
import uuid

from cluster_support import REDIS_URL, forget_prefix, require_redis

from parley.bus.redis import redis_client
from parley.bus.redis_directory import RedisDirectory
from parley.bus.redis_roster import MEMBERS_SECONDS, RedisRoster
from support import FakeClock

ROOM = "#big"


async def until_read(roster: RedisRoster, names: set[str]) -> None:
    """Wait (a few seconds at most) until a fresh read of ROOM gives ``names``."""
    seen: list[str] = []
    for _ in range(100):
        seen = await roster.members_elsewhere(ROOM)
        if set(seen) == names and len(seen) == len(names):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {len(names)} names, read {len(seen)}")


async def test_pages_share_one_read_for_a_second_and_the_first_page_reads_now() -> None:
    await require_redis(REDIS_URL)
    prefix_name = f"parleytest-{uuid.uuid4().hex[:12]}"
    client, prefix = redis_client(f"{REDIS_URL}?prefix={prefix_name}")
    clock = FakeClock()
    lease = RedisDirectory(client, prefix, "node-a")
    here = RedisRoster(client, prefix, "node-a")
    asker = RedisRoster(client, prefix, "node-b", clock)
    # A third node on the real clock, to tell when node a's changes are in Redis.
    watcher = RedisRoster(client, prefix, "node-c")
    # Node a's members, as its rooms would give them (written again at start).
    members: list[str] = []
    await lease.start(list)
    await here.start(lambda: {ROOM: list(members)})
    for roster in (asker, watcher):
        await roster.start(dict)
    try:
        names = [f"User{number:04}" for number in range(300)]
        for name in names:
            members.append(name)
            here.joined(ROOM, name)
        await until_read(asker, set(names))

        # A join and a part on node a, written to Redis.
        members.append("Zed")
        here.joined(ROOM, "Zed")
        members.remove("User0000")
        here.left(ROOM, "User0000")
        now = {*names[1:], "Zed"}
        await until_read(watcher, now)
        # Within the second, the pages after the first still see the read they started
        # from: no name moves between pages.
        assert sorted(await asker.members_elsewhere(ROOM, fresh=False)) == names
        # A second on, the pages see the change: the documented delay.
        clock.advance(MEMBERS_SECONDS)
        assert set(await asker.members_elsewhere(ROOM, fresh=False)) == now
        # Another room is not served from this room's read.
        assert await asker.members_elsewhere("#other", fresh=False) == []

        # A node that stops: the pages' read of a moment ago still holds its members (for a
        # second at most), a first page leaves them out at once.
        await here.stop()
        await lease.stop()
        assert set(await asker.members_elsewhere(ROOM, fresh=False)) == now
        assert await asker.members_elsewhere(ROOM) == []
        assert await asker.members_elsewhere(ROOM, fresh=False) == []
    finally:
        for roster in (watcher, asker, here):
            await roster.stop()
        await lease.stop()
        await client.aclose()
        await forget_prefix(REDIS_URL, prefix)
