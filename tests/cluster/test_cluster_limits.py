"""The limits per address and hour hold for the whole cluster: many users of one address,
spread over three nodes, asking at once, get no more registrations or new rooms between them
than one node would give them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cluster_support import NODE_SETTINGS, Cluster

from support import RawClient

PASSWORD = "correct horse battery"
USERS_PER_NODE = 5


async def users_on_every_node(cluster: Cluster, prefix: str) -> list[RawClient]:
    nodes = await asyncio.gather(*(cluster.start_node(name) for name in "abc"))
    return [
        await cluster.user(node.port, f"{prefix}{n}{i}")
        for n, node in enumerate(nodes)
        for i in range(USERS_PER_NODE)
    ]


def outcomes(replies: list[dict[str, Any]]) -> list[str]:
    return sorted(reply.get("code", reply["type"]) for reply in replies)


async def test_registrations_from_one_address_are_limited_across_nodes(cluster: Cluster) -> None:
    cluster.settings.write_text(NODE_SETTINGS + "registrations_per_address_per_hour = 3\n")
    guests = await users_on_every_node(cluster, "Guest")
    replies = await asyncio.gather(
        *(guest.request("register", password=PASSWORD) for guest in guests)
    )
    assert outcomes(replies) == ["ok"] * 3 + ["rate-limited"] * (len(guests) - 3), replies
    refused = next(reply for reply in replies if reply["type"] == "error")
    assert "Too many registrations from your address" in refused["message"]


async def test_new_rooms_from_one_address_are_limited_across_nodes(cluster: Cluster) -> None:
    cluster.settings.write_text(
        NODE_SETTINGS + "rooms_per_address_per_hour = 4\nrooms_per_principal_per_hour = 2\n"
    )
    users = await users_on_every_node(cluster, "Maker")
    replies = await asyncio.gather(
        *(user.request("join", room=f"#new{n}") for n, user in enumerate(users))
    )
    assert outcomes(replies) == ["not-permitted"] * (len(users) - 4) + ["room"] * 4, replies
    # Existing rooms are joined as ever, on any node.
    made = [reply["room"] for reply in replies if reply["type"] == "room"]
    refused = [user for user, reply in zip(users, replies, strict=True) if reply["type"] == "error"]
    refusal = next(reply for reply in replies if reply["type"] == "error")
    assert "Too many new rooms from you or your address" in refusal["message"], refusal
    for user in refused[:3]:
        assert (await user.request("join", room=made[0]))["type"] == "room"
