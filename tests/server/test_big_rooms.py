"""Big rooms: up to `room_announce_limit` members every join and part is announced one by one;
past it the members get a `members` summary instead, at most once per `room_summary_seconds`,
and clients still learn the count and can read every name. Over real TLS on loopback, with
a join-and-part storm from many guests of one address next to the happy paths.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.client import windows as model
from parley.client.commands import Chat
from parley.client.core import ChatClient
from parley.client.front import QUIET_ROOM_NAMES, WindowedFront
from parley.config import ServerConfig
from parley.protocol.messages import MembersChanged
from parley.server.app import ParleyServer
from support import (
    NO_SHARED_BUDGETS,
    RawClient,
    assert_still_serving,
    logged_in,
    next_of,
    raw_user,
)

LIMIT = 3
PERIOD_SECONDS = 0.3


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[ParleyServer]:
    config = dataclasses.replace(
        server_config,
        room_announce_limit=LIMIT,
        room_summary_seconds=PERIOD_SECONDS,
        flood_burst_requests=100_000,
        flood_rate_per_second=100_000.0,
        flood_debt_requests=100_000,
        **NO_SHARED_BUDGETS,
    )
    async with ParleyServer(config) as running:
        yield running


async def _frames_for(client: RawClient, seconds: float) -> list[dict[str, Any]]:
    """Every frame ``client`` gets within ``seconds`` (the ones kept by requests first)."""
    frames, client.events = client.events, []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = await asyncio.wait_for(client.reader.readline(), left)
        except TimeoutError:
            break
        assert line, "connection closed"
        frames.append(json.loads(line))
    return frames


async def _close_all(clients: list[RawClient]) -> None:
    await asyncio.gather(*(client.close() for client in clients))


async def test_a_small_room_announces_each_join_and_part(server: ParleyServer) -> None:
    watcher = await raw_user(server.port, "Watcher")
    first = await raw_user(server.port, "First")
    second = await raw_user(server.port, "Second")  # three members: at the limit, not past it
    await watcher.event("joined", room="#general", nick="First")
    await watcher.event("joined", room="#general", nick="Second")
    assert (await watcher.request("topic", room="#general")).get("quiet") is None
    await second.close()
    await watcher.event("left", room="#general", nick="Second")
    frames = await _frames_for(watcher, PERIOD_SECONDS * 3)
    assert [frame for frame in frames if frame["type"] == "members"] == []
    await _close_all([watcher, first])


async def test_past_the_limit_members_get_a_summary_and_nothing_per_join(
    server: ParleyServer,
) -> None:
    watcher = await raw_user(server.port, "Watcher")
    early = [await raw_user(server.port, f"Early{n}") for n in range(LIMIT - 1)]
    await _frames_for(watcher, 0.2)  # their joins, one by one: the room is not big yet
    late = await asyncio.gather(*(raw_user(server.port, f"Late{n}") for n in range(4)))
    # Each latecomer hears of its own join (its client opens the room), nobody else's.
    for n, client in enumerate(late):
        own = [f["nick"] for f in client.events if f["type"] == "joined"]
        own += [f["nick"] for f in await _frames_for(client, 0.05) if f["type"] == "joined"]
        assert own == [f"Late{n}"]
    frames = await _frames_for(watcher, PERIOD_SECONDS * 4)
    assert [f for f in frames if f["type"] in ("joined", "left")] == []
    summaries = [f for f in frames if f["type"] == "members"]
    assert summaries and sum(f["joined"] for f in summaries) == 4, frames
    assert summaries[-1] == {
        "type": "members", "room": "#general", "members": 7,
        "joined": summaries[-1]["joined"], "left": summaries[-1]["left"],
    }  # fmt: skip
    info = await watcher.request("topic", room="#general")
    assert (info["members"], info["quiet"]) == (7, True)
    # Parts are counted the same way; the one leaving is told itself.
    parted = await late[0].request("part", room="#general")
    assert parted["type"] == "ok"
    await late[0].event("left", room="#general", nick="Late0")
    await late[1].close()
    frames = await _frames_for(watcher, PERIOD_SECONDS * 4)
    assert [f for f in frames if f["type"] in ("joined", "left")] == []
    summaries = [f for f in frames if f["type"] == "members"]
    assert sum(f["left"] for f in summaries) == 2 and summaries[-1]["members"] == 5, frames
    # The whole list is still there for whoever reads it, page by page.
    names: list[str] = []
    after = ""
    while True:
        page = await watcher.request("who", room="#general", after=after, limit=2)
        names += page["users"]
        assert page["total"] == 5
        if not (after := page.get("next", "")):
            break
    assert sorted(names) == sorted(["Watcher", "Early0", "Early1", "Late2", "Late3"])
    # The first page is kept a second at most: a newcomer is listed after that.
    first = await raw_user(server.port, "Aaron")
    await asyncio.sleep(1.1)
    page = await watcher.request("who", room="#general", limit=2)
    assert page["users"] == ["Aaron", "Early0"] and page["total"] == 6
    await _close_all([watcher, *early, *late, first])


async def test_a_kick_in_a_big_room_is_still_announced_to_everyone(server: ParleyServer) -> None:
    operator = await raw_user(server.port, "Op")
    assert (await operator.request("join", room="#big"))["type"] == "room"
    others = [await raw_user(server.port, f"Member{n}") for n in range(LIMIT + 1)]
    for client in others:
        reply = await client.request("join", room="#big")
        assert reply["type"] == "room"
    assert reply["quiet"] is True and reply["members"] == LIMIT + 2
    assert (await operator.request("kick", room="#big", nick="Member0"))["type"] == "ok"
    for client in (operator, *others[1:]):
        await client.event("left", room="#big", nick="Member0", reason="kicked", by="Op")
    await _close_all([operator, *others])


async def test_a_join_and_part_storm_from_one_address_costs_each_member_one_frame_a_period(
    server: ParleyServer,
) -> None:
    watcher = await raw_user(server.port, "Watcher")
    assert (await watcher.request("join", room="#big"))["type"] == "room"
    # Enough members that every join and part of the storm is past the limit.
    fillers = [await raw_user(server.port, f"Filler{n}") for n in range(LIMIT)]
    for client in fillers:
        await client.request("join", room="#big")
    await _frames_for(watcher, PERIOD_SECONDS * 2)
    guests = await asyncio.gather(*(raw_user(server.port, f"Storm{n}") for n in range(20)))
    rounds = 10

    async def storm(client: RawClient) -> None:
        for _ in range(rounds):
            assert (await client.request("join", room="#big"))["type"] == "room"
            assert (await client.request("part", room="#big"))["type"] == "ok"

    started = time.monotonic()
    await asyncio.gather(*(storm(client) for client in guests))
    stormed = time.monotonic() - started
    frames = await _frames_for(watcher, PERIOD_SECONDS * 4)
    # (#general, which the guests' logins joined, has its own summaries.)
    frames = [f for f in frames if f.get("room") == "#big"]
    assert {f["type"] for f in frames} == {"members"}, frames
    # One summary per period at most (and the last one after the storm), however many came.
    assert len(frames) <= stormed / PERIOD_SECONDS + 3, (len(frames), stormed)
    assert sum(f["joined"] for f in frames) == sum(f["left"] for f in frames) == 20 * rounds
    assert frames[-1]["members"] == LIMIT + 1
    await _close_all([watcher, *fillers, *guests])
    await assert_still_serving(server.port)


async def test_a_windowed_client_shows_the_count_and_a_first_page_of_a_big_room(
    server: ParleyServer,
) -> None:
    crowd = await asyncio.gather(*(raw_user(server.port, f"Crowd{n:02}") for n in range(10)))
    client = await logged_in(server.port, "Viewer")

    async def no_secret(prompt: str) -> str | None:
        return None

    async def no_reconnect(_: object) -> ChatClient:
        raise AssertionError("not reconnecting in this test")

    front = WindowedFront(Chat(client, lambda _: None, no_secret), no_reconnect, 100)
    window = front.windows.open("#general")
    await front.refresh_room("#general")
    assert window.quiet and window.member_count == 11
    assert len(window.members) == min(11, QUIET_ROOM_NAMES)
    # The summary after more come moves the count; no line is shown for it.
    newcomers = await asyncio.gather(*(raw_user(server.port, f"New{n}") for n in range(3)))
    lines = window.added
    while window.member_count != 14:
        front.show_event(await next_of(client, MembersChanged))
    assert window.added == lines and window.kind is model.Kind.ROOM
    # Every name is still there when asked (all pages).
    everyone = await client.who("#general", page_size=4)
    assert everyone.total == 14 and len(everyone.users) == 14
    await client.close()
    await _close_all([*crowd, *newcomers])
