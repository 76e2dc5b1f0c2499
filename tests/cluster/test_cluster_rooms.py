"""Who is in a room counts every node: ``who``, a room's member count (in ``room`` replies and
the ``rooms`` listing) and a big room's ``members`` summaries agree on all of them, and a
killed node's members drop out once its lease lapses.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from cluster_support import NODE_SETTINGS, Cluster

from parley.bus.redis_directory import LEASE_SECONDS
from parley.bus.redis_roster import MEMBERS_SECONDS
from support import RawClient

# A killed node's members are gone from ``who`` once its lease lapses, and from member
# counts one roster read (a second) later; a margin for a busy machine.
GONE_WITHIN_SECONDS = LEASE_SECONDS + 1.0 + 5.0


async def who(client: RawClient, room: str) -> dict[str, Any]:
    reply = await client.request("who", room=room)
    assert reply["type"] == "users", reply
    return reply


async def room_count(client: RawClient, room: str) -> int:
    info = await client.request("topic", room=room)
    assert info["type"] == "room", info
    members: int = info["members"]
    return members


async def listed_count(client: RawClient, room: str) -> int:
    reply = await client.request("rooms")
    assert reply["type"] == "rooms", reply
    found = [entry for entry in reply["rooms"] if entry["room"] == room]
    assert found, reply
    members: int = found[0]["members"]
    return members


async def until_all_see(askers: list[RawClient], room: str, names: set[str]) -> None:
    """Wait (a few seconds at most) until ``who``, the room's count and the listing's count
    say ``names`` through every one of ``askers``; fail with what they said otherwise.
    """
    seen: list[tuple[set[str], int, int, int]] = []
    for _ in range(60):
        seen = []
        for asker in askers:
            reply = await who(asker, room)
            counts = (
                reply["total"],
                await room_count(asker, room),
                await listed_count(asker, room),
            )
            seen.append((set(reply["users"]), *counts))
        if all(entry == (names, *(len(names),) * 3) for entry in seen):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {sorted(names)} everywhere, saw {seen}")


async def test_who_and_member_counts_cover_every_node(cluster: Cluster) -> None:
    nodes = await asyncio.gather(*(cluster.start_node(name) for name in "abc"))
    alice, bob, carol = [
        await cluster.user(node.port, nick)
        for node, nick in zip(nodes, ("Alice", "Bob", "Carol"), strict=True)
    ]
    for client in (alice, bob, carol):
        assert (await client.request("join", room="#den"))["type"] == "room"
    await until_all_see([alice, bob, carol], "#den", {"Alice", "Bob", "Carol"})
    await until_all_see([alice, bob, carol], "#general", {"Alice", "Bob", "Carol"})

    # Someone on a node where nobody is in the room sees its members too.
    dave = await cluster.user(nodes[2].port, "Dave")
    assert (await carol.request("part", room="#den"))["type"] == "ok"
    await until_all_see([alice, bob, dave], "#den", {"Alice", "Bob"})

    # Pages run across the nodes' members in one order.
    for client in (carol, dave):
        assert (await client.request("join", room="#den"))["type"] == "room"
    await until_all_see([alice, dave], "#den", {"Alice", "Bob", "Carol", "Dave"})
    first = await dave.request("who", room="#den", limit=3)
    rest = await dave.request("who", room="#den", limit=3, after=first["next"])
    assert first["users"] + rest["users"] == ["Alice", "Bob", "Carol", "Dave"], (first, rest)
    assert not rest.get("next"), rest

    # A node that is killed: its members are out once its lease lapses.
    cluster.kill("c")
    started = time.monotonic()
    await asyncio.sleep(1.0)
    assert "Carol" in (await who(alice, "#den"))["users"], "a killed node's lease still stands"
    while time.monotonic() - started < GONE_WITHIN_SECONDS:
        if (await who(alice, "#den"))["users"] == ["Alice", "Bob"]:
            break
        await asyncio.sleep(0.2)
    await until_all_see([alice, bob], "#den", {"Alice", "Bob"})
    assert time.monotonic() - started < GONE_WITHIN_SECONDS


async def test_a_node_that_stops_cleanly_frees_its_names_and_members_at_once(
    cluster: Cluster,
) -> None:
    # No drain: the member on the stopping node is still there when it stops.
    cluster.settings.write_text(NODE_SETTINGS + "shutdown_drain_seconds = 0\n")
    a, b = await asyncio.gather(cluster.start_node("a"), cluster.start_node("b"))
    alice = await cluster.user(a.port, "Alice")
    bob = await cluster.user(b.port, "Bob")
    for client in (alice, bob):
        assert (await client.request("join", room="#den"))["type"] == "room"
    await until_all_see([alice, bob], "#den", {"Alice", "Bob"})

    b.process.signal(signal.SIGTERM)
    assert await b.exited(30), "node b did not stop on SIGTERM"
    status, out, err = await b.process.finish()
    b.running = False
    assert status == 0, out + err
    # At once: no waiting for a lease to lapse.
    reply = await who(alice, "#den")
    assert (reply["users"], reply["total"]) == (["Alice"], 1), reply
    again = await cluster.connect(a.port)
    assert (await again.try_login("Bob"))["type"] == "ok"


async def test_a_big_room_summarizes_joins_on_every_node(cluster: Cluster) -> None:
    # Summaries further apart than the roster's reads: each counts the others' latest.
    cluster.settings.write_text(
        NODE_SETTINGS + "room_announce_limit = 2\nroom_summary_seconds = 1.5\n"
    )
    nodes = await asyncio.gather(*(cluster.start_node(name) for name in "abc"))
    first = [await cluster.user(node.port, f"Early{n}") for n, node in enumerate(nodes)]
    for client in first:
        assert (await client.request("join", room="#big"))["type"] == "room"
    await until_all_see(first, "#big", {"Early0", "Early1", "Early2"})

    # The room is big now (3 > 2) on every node: a join on b is told to the members on a
    # and c in a summary that counts it and every member.
    late = await cluster.user(nodes[1].port, "Late")
    reply = await late.request("join", room="#big")
    assert (reply["members"], reply["quiet"]) == (4, True), reply
    for member in (first[0], first[2]):
        summary = await member.event("members", room="#big", members=4)
        assert (summary["joined"], summary["left"]) == (1, 0), summary

    assert (await late.request("part", room="#big"))["type"] == "ok"
    for member in (first[0], first[2]):
        summary = await member.event("members", room="#big", members=3)
        assert (summary["joined"], summary["left"]) == (0, 1), summary


async def every_page(client: RawClient, room: str, limit: int) -> tuple[list[str], set[int]]:
    """``who`` of ``room`` read page by page: the names in order, and the totals the pages
    gave.
    """
    names: list[str] = []
    totals: set[int] = set()
    after = ""
    while True:
        reply = await client.request("who", room=room, limit=limit, after=after)
        assert reply["type"] == "users", reply
        names += reply["users"]
        totals.add(reply["total"])
        after = reply.get("next", "")
        if not after:
            return names, totals


async def test_paging_through_members_on_another_node(cluster: Cluster) -> None:
    a, b = await asyncio.gather(cluster.start_node("a"), cluster.start_node("b"))
    nicks = [f"Member{number:02}" for number in range(12)]
    for nick in nicks:
        client = await cluster.user(a.port, nick)
        assert (await client.request("join", room="#hall"))["type"] == "room"
    dave = await cluster.user(b.port, "Dave")
    await until_all_see([dave], "#hall", set(nicks))

    # Every name once, in order, over pages that (after the first) share one read.
    assert await every_page(dave, "#hall", 5) == (nicks, {len(nicks)})

    # A join on node a reaches the pages within the roster's delay (a second), and the
    # first page at once; a margin for a busy machine.
    zed = await cluster.user(a.port, "Zed")
    assert (await zed.request("join", room="#hall"))["type"] == "room"
    started = time.monotonic()
    while time.monotonic() - started < MEMBERS_SECONDS + 5.0:
        names, totals = await every_page(dave, "#hall", 5)
        if "Zed" in names:
            break
        await asyncio.sleep(0.1)
    assert (names, totals) == ([*nicks, "Zed"], {len(nicks) + 1})
